"""The API against a real single-node Kafka over SASL_SSL with ACLs: 202 only after Kafka acknowledged, batches in
one transaction (all or nothing for read_committed consumers), readiness follows Kafka."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import pytest
from analytics_api.app import create_app
from analytics_api.config import load_config
from analytics_api.keys import KeyStore
from analytics_api.producer import EventProducer, KafkaUnavailable
from analytics_common.events import Event, EventRecord, Stamp, utcnow
from confluent_kafka import Consumer
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration
H = {"x-api-key": "test-key-0123456789abcdefghijkl"}  # conftest.py's web key


@pytest.fixture
def kafka_env(api_env, kafka):
    return {**api_env, **kafka.env("API_", "analytics-api")}


def read_all(kafka, marker, expect, timeout=30):
    c = Consumer(
        kafka.conf(
            "admin",
            **{"group.id": f"t-{uuid.uuid4()}", "auto.offset.reset": "earliest", "isolation.level": "read_committed"},
        )
    )
    c.subscribe(["analytics-events"])
    found, deadline = [], time.time() + timeout
    while time.time() < deadline and len(found) < expect:
        m = c.poll(0.5)
        if m is not None and not m.error():
            rec = EventRecord.model_validate_json(m.value())
            if rec.properties.get("marker") == marker:
                found.append(rec)
    # Keep reading a little: anything more would be a duplicate or an uncommitted record.
    end = time.time() + 2
    while time.time() < end:
        m = c.poll(0.2)
        if m is not None and not m.error():
            rec = EventRecord.model_validate_json(m.value())
            if rec.properties.get("marker") == marker:
                found.append(rec)
    c.close()
    return found


def test_single_and_batch_round_trip(kafka_env, kafka):
    from fastapi.testclient import TestClient

    cfg = load_config(kafka_env)
    app = create_app(cfg, KeyStore.from_file(cfg.keys_file))
    marker = str(uuid.uuid4())
    with TestClient(app) as client:
        # Ready once the producer has reached the broker (seconds on a loaded machine: polled, not assumed at once).
        deadline = time.monotonic() + 20
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert client.get("/ready").status_code == 200
        one = client.post(
            "/analytics",
            json={"event_type": "page_view", "session_id": "s1", "properties": {"marker": marker}},
            headers=H,
        )
        assert one.status_code == 202
        batch = client.post(
            "/analytics/batch",
            json={
                "events": [
                    {"event_type": "click", "session_id": f"s{i}", "properties": {"marker": marker}} for i in range(20)
                ]
            },
            headers=H,
        )
        assert batch.status_code == 202
    got = read_all(kafka, marker, 21)
    assert len(got) == 21
    ids = {str(r.event_id) for r in got}
    assert one.json()["event_id"] in ids
    assert set(batch.json()["event_ids"]) <= ids
    assert all(r.metadata["api_key"] == "web" for r in got)


def test_failed_batch_is_invisible_to_consumers(kafka_env, kafka):
    """A batch whose transaction aborts (here: a record over the broker's size limit, refused by the broker after the
    batch's other records were written) leaves nothing readable."""
    cfg = load_config(kafka_env)
    marker = str(uuid.uuid4())

    def rec(size=0):
        return kafka_record(marker, size)

    async def go():
        p = EventProducer(cfg)
        await p.start()
        try:
            with pytest.raises(KafkaUnavailable):
                await p.send_batch([rec(), rec(), rec(2 * 1024 * 1024)])
            await p.send_batch([rec()])  # the producer recovers for the next batch
        finally:
            await p.stop()

    asyncio.run(go())
    got = read_all(kafka, marker, 1)
    assert len(got) == 1, "records of the aborted batch were visible"


def kafka_record(marker, size=0, session="s"):
    now = utcnow()
    e = Event.model_validate({"event_type": "t", "session_id": session, "properties": {"marker": marker}})
    if size:  # past the contract's limits on purpose, and incompressible: a record the broker refuses
        e = Event.model_construct(**{**dict(e), "properties": {"marker": marker, "pad": os.urandom(size // 2).hex()}})
    return Stamp(now, {"api_key": "test"}).record(e)


def committed(outcome="committed"):
    return REGISTRY.get_sample_value("kafka_producer_transactions_total", {"outcome": outcome}) or 0.0


def test_concurrent_batches_share_transactions_and_each_stays_whole(kafka_env, kafka):
    """Group commit: 40 batches sent at once are committed in fewer transactions than batches, every record once.
    Then a batch Kafka refuses (a record over its request size) among good ones: every batch is still all or nothing
    (its request hears 202 and all of it is readable, or hears 503 and none of it is), whichever shared its group."""
    cfg = load_config(kafka_env)
    marker, bad_marker = str(uuid.uuid4()), str(uuid.uuid4())
    batches = [[kafka_record(marker, session=f"s{b}-{i % 3}") for i in range(50)] for b in range(40)]

    async def go():
        p = EventProducer(cfg)
        await p.start()
        try:
            before = committed()
            await asyncio.gather(*(p.send_batch(b) for b in batches))
            grouped = committed() - before
            first = asyncio.ensure_future(p.send_batch([kafka_record(bad_marker)]))  # in flight while the rest queue
            mixed = [[kafka_record(bad_marker, session=f"m{b}") for _i in range(10)] for b in range(12)]
            mixed[5][3] = kafka_record(bad_marker, 2 * 1024 * 1024)
            results = await asyncio.gather(first, *(p.send_batch(b) for b in mixed), return_exceptions=True)
            return grouped, [[kafka_record(bad_marker)], *mixed], results
        finally:
            await p.stop()

    grouped, mixed, results = asyncio.run(go())
    assert 1 <= grouped < len(batches), f"{grouped} transactions for {len(batches)} concurrent batches"
    got = read_all(kafka, marker, 2000)
    assert sorted(str(r.event_id) for r in got) == sorted(str(r.event_id) for b in batches for r in b)
    assert isinstance(results[6], KafkaUnavailable)
    assert all(r is None or isinstance(r, KafkaUnavailable) for r in results), results
    accepted = {str(r.event_id) for b, res in zip(mixed, results, strict=True) if res is None for r in b}
    seen = [str(r.event_id) for r in read_all(kafka, bad_marker, len(accepted))]
    assert sorted(seen) == sorted(accepted), "a batch was half in Kafka, or an accepted one missing"


def test_unreachable_kafka_gives_503_quickly(api_env):
    from fastapi.testclient import TestClient

    env = {**api_env, "API_KAFKA_BOOTSTRAP": "127.0.0.1:9", "API_KAFKA_TIMEOUT_SECONDS": "2"}
    cfg = load_config(env)
    with TestClient(create_app(cfg, KeyStore.from_file(cfg.keys_file))) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
        t0 = time.time()
        r = client.post("/analytics", json={"event_type": "x"}, headers=H)
        assert r.status_code == 503
        assert time.time() - t0 < 10


@pytest.fixture
def served_api(kafka_env):
    """The API served by uvicorn on a free port (real sockets, real concurrency), with a 2-second Kafka timeout."""
    import uvicorn
    from analytics_testing.servers import free_port

    cfg = load_config(
        {**kafka_env, "API_KAFKA_TIMEOUT_SECONDS": "2", "API_RATE_BURST": "100000", "API_RATE_LIMIT": "1000000"}
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cfg, KeyStore.from_file(cfg.keys_file)),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
        )
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.1)
    assert server.started
    yield f"http://127.0.0.1:{port}", cfg
    server.should_exit = True
    t.join(30)


def test_blackholed_kafka_answers_every_request_within_the_timeout(served_api, kafka):
    """The finding: with Kafka's packets dropped, concurrent requests queued N x the timeout behind one lock and
    batches waited on a lock no timeout covered. Now each of 40 concurrent requests gets its 503 (with Retry-After
    and the event ids to retry with) within the timeout; after the fault the retries with the same ids land."""
    import httpx
    from analytics_testing.servers import blackhole

    url, cfg = served_api
    marker = str(uuid.uuid4())

    def ev(i):
        return {
            "event_id": str(uuid.uuid4()),
            "event_type": "drill",
            "session_id": f"s{i}",
            "properties": {"marker": marker},
        }

    async def fire(bodies):
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:

            async def one(path, body):
                t0 = time.monotonic()
                r = await c.post(path, json=body, headers=H)
                return r, time.monotonic() - t0

            return await asyncio.gather(*(one(p, b) for p, b in bodies))

    warm = asyncio.run(fire([("/analytics", ev(0))]))
    assert warm[0][0].status_code == 202  # connected: the fault hits an established connection
    singles = [("/analytics", ev(i)) for i in range(30)]
    batches = [("/analytics/batch", {"events": [ev(100 + 10 * b + i) for i in range(5)]}) for b in range(10)]
    with blackhole(kafka.port):
        answers = asyncio.run(fire(singles + batches))
    slow = [(r.status_code, round(s, 2)) for r, s in answers if s > cfg.kafka_timeout_seconds + 1.5]
    assert not slow, f"answers later than the {cfg.kafka_timeout_seconds}s timeout: {slow}"
    assert {r.status_code for r, _unused in answers} == {503}, [
        r.text for r, _unused2 in answers if r.status_code != 503
    ][:3]
    assert all(r.headers["retry-after"] == "5" for r, _unused in answers)
    named = [r.json().get("event_id") or r.json().get("event_ids") for r, _unused in answers]
    assert named == [
        b["event_id"] if p == "/analytics" else [e["event_id"] for e in b["events"]] for p, b in singles + batches
    ]
    # The client retries with the same event ids once Kafka is back; the API recovers by itself.
    deadline = time.time() + 60
    while True:
        retried = asyncio.run(fire(singles + batches))
        if all(r.status_code == 202 for r, _unused in retried) or time.time() > deadline:
            break
        time.sleep(2)
    assert [r.status_code for r, _unused in retried] == [202] * len(retried)
    sent = {b["event_id"] for p, b in singles} | {e["event_id"] for p, b in batches for e in b["events"]}
    got = read_all(kafka, marker, len(sent) + 1, timeout=60)
    assert {str(r.event_id) for r in got} == sent | {warm[0][0].json()["event_id"]}
    # A 503 may still reach Kafka later (it was sent, its acknowledgement lost): only as a copy of an id the client
    # retried, which the stores keep once (test_contract_stores, test_pg_sink, test_delta_writer).


def test_an_event_without_consent_reaches_kafka_without_identifiers(kafka_env, kafka):
    from fastapi.testclient import TestClient

    cfg = load_config(kafka_env)
    marker = str(uuid.uuid4())
    with TestClient(create_app(cfg, KeyStore.from_file(cfg.keys_file))) as client:
        body = {"event_type": "click", "user_id": "u-9", "session_id": "s-9", "properties": {"marker": marker}}
        assert client.post("/analytics", json=body, headers={**H, "sec-gpc": "1"}).status_code == 202
        assert client.post("/analytics", json=body, headers=H).status_code == 202
    got = sorted(read_all(kafka, marker, 2), key=lambda r: r.user_id or "")
    assert [(r.user_id, r.session_id) for r in got] == [(None, None), ("u-9", "s-9")]
    assert got[0].metadata == {"api_key": "web", "consent": "withheld"}
    assert "ip_address" in got[1].metadata
