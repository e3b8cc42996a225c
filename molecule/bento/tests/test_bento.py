"""Bento run for real: the binary built from its Go module (scripts/build-artifacts.sh, AP_BUILD_BENTO=1), reading
analytics-events from Kafka over SASL_SSL as its own SCRAM user and writing PostgreSQL over verify-full TLS. No pg_sink
runs here, so every row with a test's marker was written by Bento."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

from confluent_kafka import Consumer, Producer, TopicPartition
from conftest import address, http, lab_ca, lab_host, lab_secret, psql, wait_for

STREAM, BENTO = "stream-a", "stream-c"  # the PostgreSQL primary; the Bento host
KAFKA = ("stream-a", "stream-b", "stream-c")
TOPIC, DLQ = "analytics-events", "analytics-events-dlq"
INSTANCES = (1, 2)  # bento_instances: 2 in molecule.yml


def conf(user: str, password: str, **extra) -> dict:
    return {
        "bootstrap.servers": ",".join(f"{address(n)}:9092" for n in KAFKA),
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
        "ssl.ca.location": lab_ca(),
        **extra,
    }


def event(marker: str, i: int) -> dict:
    """A record as the API produces it (analytics_common.events.EventRecord's JSON)."""
    now = datetime.now(UTC).isoformat()
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "bento_check",
        "session_id": f"s-{i % 50}",
        "user_id": f"u-{i % 7}",
        "timestamp": now,
        "page": "/bento",
        "properties": {"marker": marker, "i": i},
        "received_at": now,
        "metadata": {"source": "molecule"},
    }


def produce(values: list[bytes], pause_every: int = 0) -> None:
    """Produce as the API's user and wait until every record is acknowledged."""
    errors = []
    p = Producer(conf("analytics-api", lab_secret("kafka_analytics_api"), acks="all"))
    for n, value in enumerate(values, 1):
        p.produce(TOPIC, value=value, on_delivery=lambda err, _msg: errors.append(err) if err else None)
        p.poll(0)
        if pause_every and n % pause_every == 0:
            time.sleep(0.05)
    assert p.flush(60) == 0, "records were never delivered"
    assert not errors, errors[:3]


def stored(marker: str) -> tuple[int, int]:
    """(rows, distinct event ids) in PostgreSQL carrying the marker."""
    out = psql(
        lab_host(STREAM),
        f"SELECT count(*), count(DISTINCT event_id) FROM analytics_events WHERE properties->>'marker' = '{marker}'",
    )
    rows, ids = out.split("|")
    return int(rows), int(ids)


def lag(group: str = "bento") -> int:
    """Records of the topic past the group's committed offsets. Bento commits a record's offset only after its INSERT
    (or its dead letter) went through, so a batch it keeps retrying shows here even when later batches are stored."""
    c = Consumer(conf("admin", lab_secret("kafka_admin"), **{"group.id": group, "enable.auto.commit": False}))
    try:
        parts = [TopicPartition(TOPIC, p) for p in c.list_topics(TOPIC, timeout=15).topics[TOPIC].partitions]
        behind = 0
        for tp in c.committed(parts, timeout=15):
            low, high = c.get_watermark_offsets(tp, timeout=15)
            behind += high - (tp.offset if tp.offset >= 0 else low)
        return behind
    finally:
        c.close()


def settled(marker: str, expected: int, timeout: float = 180) -> tuple[int, int]:
    """Wait until the expected rows are there and Bento has committed the whole topic (nothing left retrying), then a
    little longer: a duplicate would show up after the count."""
    wait_for(lambda: stored(marker)[0] >= expected, timeout=timeout, step=2)
    assert wait_for(lambda: lag() == 0, timeout=90, step=3), f"Bento is {lag()} records behind: a batch is stuck"
    time.sleep(5)
    return stored(marker)


def test_the_built_binary_runs_both_instances():
    host = lab_host(BENTO)
    assert "1.20.0" in host.check_output("/usr/local/bin/bento --version")
    for n in INSTANCES:
        assert host.service(f"bento@{n}").is_running, f"bento@{n} is not running"


def test_each_instance_is_ready_over_tls_with_its_metrics():
    host = lab_host(BENTO)
    for n in INSTANCES:
        port = 4195 + n - 1
        code, body = http(host, f"https://{address(BENTO)}:{port}/ready")
        assert code == 200, f"bento@{n} /ready answered {code}: {body[:300]}"
        code, body = http(host, f"https://{address(BENTO)}:{port}/metrics")
        assert code == 200 and "input_received" in body, f"bento@{n} /metrics: {code} {body[:300]}"


def test_every_event_lands_once_even_when_kafka_delivers_it_twice():
    marker = uuid.uuid4().hex
    events = [json.dumps(event(marker, i)).encode() for i in range(2000)]
    later = [json.dumps(event(marker, i)).encode() for i in range(2000, 2010)]
    produce(events + events[:300] + later)  # 300 records redelivered: the conflict key drops them, and Bento goes on
    assert settled(marker, 2010) == (2010, 2010)
    row = psql(
        lab_host(STREAM),
        "SELECT event_type, session_id, page, metadata->>'source', properties->>'i' FROM analytics_events "
        f"WHERE properties->>'marker' = '{marker}' AND properties->>'i' = '7'",
    )
    assert row == "bento_check|s-7|/bento|molecule|7"


def test_records_outside_the_contract_go_to_the_dead_letters_and_do_not_jam_the_partition():
    marker = uuid.uuid4().hex
    no_id = {k: v for k, v in event(marker, 0).items() if k != "event_id"}
    nul = dict(event(marker, 0), page="/a\u0000b")  # PostgreSQL text cannot hold it: the INSERT would fail
    not_uuid = dict(event(marker, 0), event_id="42")
    too_old = dict(event(marker, 0), timestamp="2020-01-01T00:00:00Z")  # no partition that far back
    bad = [b"not json " + marker.encode(), *(json.dumps(e).encode() for e in (no_id, nul, not_uuid, too_old))]
    good = [json.dumps(event(marker, i)).encode() for i in range(1, 101)]
    produce(bad + good)
    assert settled(marker, 100) == (100, 100)
    settings = {"group.id": f"verify-{marker}", "auto.offset.reset": "earliest"}
    c = Consumer(conf("admin", lab_secret("kafka_admin"), **settings))
    c.subscribe([DLQ])
    parked = {}
    deadline = time.time() + 60
    try:
        while time.time() < deadline and len(parked) < len(bad):
            msg = c.poll(1.0)
            if msg is None or msg.error() or marker.encode() not in msg.value():
                continue
            parked[msg.value()] = dict(msg.headers() or [])
    finally:
        c.close()
    assert set(parked) == set(bad), f"parked: {[v[:60] for v in parked]}"
    for value, headers in parked.items():
        assert headers.get("dlq_error"), f"{value[:40]!r} was parked without its error: {headers}"


def test_restarts_under_load_lose_and_duplicate_nothing():
    marker = uuid.uuid4().hex
    events = [json.dumps(event(marker, i)).encode() for i in range(6000)]
    failures = []

    def producing():  # ~1,500 events/s for about 4 s; a failure here would otherwise vanish with the thread
        try:
            produce(events, 200)
        except Exception as e:  # reported by the test below, whatever it was
            failures.append(repr(e))

    producer = threading.Thread(target=producing)
    producer.start()
    host = lab_host(BENTO)
    for n in INSTANCES:
        time.sleep(1)
        assert host.run(f"systemctl kill --signal=SIGKILL bento@{n}").rc == 0  # no clean shutdown, no final commit
    producer.join(120)
    assert not producer.is_alive() and not failures, failures or "the producer is still running"
    assert settled(marker, 6000, timeout=300) == (6000, 6000)
    for n in INSTANCES:
        assert wait_for(lambda n=n: host.service(f"bento@{n}").is_running, timeout=60), f"bento@{n} did not come back"
