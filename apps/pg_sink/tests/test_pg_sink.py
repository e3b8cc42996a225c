"""The sink against real Kafka (SASL_SSL, ACLs) and PostgreSQL (TLS): rows equal events accepted, redeliveries do not
double, poison records are parked with their reason, and a sink killed mid-batch loses and duplicates nothing."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest
from analytics_common.events import EventRecord, utcnow
from analytics_common.health import SystemdWatchdog
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from pg_sink.config import load_config
from pg_sink.sink import Sink
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration


def record(marker, **kw):
    now = utcnow()
    base = dict(
        event_id=uuid.uuid4(),
        event_type="page_view",
        session_id="s-1",
        timestamp=now,
        received_at=now,
        properties={"marker": marker},
        metadata={"ip_address": "192.0.2.1"},
    )
    base.update(kw)
    return EventRecord(**base)


def produce(kafka, values, key=None):
    p = Producer(kafka.conf("admin", **{"acks": "all", "enable.idempotence": True}))
    for v in values:
        p.produce("analytics-events", v, key=key)
    assert p.flush(30) == 0


def count(postgres, marker):
    with psycopg.connect(postgres.dsn()) as c:
        return c.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM analytics_events WHERE properties->>'marker' = %s",
            (marker,),
        ).fetchone()


def wait_for(fn, expected, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = fn()
        if got == expected:
            return got
        time.sleep(0.3)
    return fn()


@pytest.fixture
def running_sink(sink_env):
    sink = Sink(load_config(sink_env))
    t = threading.Thread(target=sink.run, daemon=True)
    t.start()
    yield sink
    sink.stop()
    t.join(30)


def test_rows_equal_events_and_redelivery_does_not_double(kafka, postgres, running_sink):
    marker = str(uuid.uuid4())
    recs = [record(marker) for _n in range(500)]
    produce(kafka, [r.to_kafka() for r in recs])
    assert wait_for(lambda: count(postgres, marker), (500, 500)) == (500, 500)
    # The same events again (a producer retry, a replay): still 500 rows.
    produce(kafka, [r.to_kafka() for r in recs[:100]])
    time.sleep(3)
    assert count(postgres, marker) == (500, 500)
    with psycopg.connect(postgres.dsn()) as c:
        row = c.execute(
            "SELECT event_type, session_id, metadata->>'ip_address' FROM analytics_events WHERE event_id = %s",
            (recs[0].event_id,),
        ).fetchone()
    assert row == ("page_view", "s-1", "192.0.2.1")


def test_health_ready_and_metrics(kafka, postgres, running_sink):
    import urllib.request

    marker = str(uuid.uuid4())  # the group's first commit: its lag is told from then on
    produce(kafka, [record(marker).to_kafka()])
    assert wait_for(lambda: count(postgres, marker), (1, 1)) == (1, 1)

    deadline = time.time() + 30
    while time.time() < deadline and not hasattr(running_sink, "http"):
        time.sleep(0.1)
    base = f"http://127.0.0.1:{running_sink.http.server_address[1]}"
    assert json.loads(urllib.request.urlopen(base + "/health").read())["status"] == "ok"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            ready = json.loads(urllib.request.urlopen(base + "/ready").read())
            break
        except OSError:  # 503 until the first batch has connected to PostgreSQL
            time.sleep(0.5)
    assert ready == {"ready": True, "store": "ok", "kafka": "ok"}
    deadline = time.time() + 30  # read from Kafka every 10 seconds
    while time.time() < deadline:
        metrics = urllib.request.urlopen(base + "/metrics").read().decode()
        if 'kafka_consumer_lag{group="pg-sink"' in metrics:
            break
        time.sleep(0.5)
    assert 'consumer_records_written_total{service="pg-sink"}' in metrics
    assert 'kafka_consumer_lag{group="pg-sink"' in metrics


def dead_letters(kafka, values, settle=3.0, timeout=30):
    """Every copy of `values` in the dead-letter topic (read committed), as value -> list of header dicts; keeps
    reading `settle` seconds after the last one was found, so that a second copy would be seen."""
    c = Consumer(kafka.conf("admin", **{"group.id": f"dlq-{uuid.uuid4()}", "auto.offset.reset": "earliest"}))
    c.subscribe(["analytics-events-dlq"])
    parked, deadline, settled = {}, time.time() + timeout, None
    while time.time() < deadline and (settled is None or time.time() < settled):
        m = c.poll(0.5)
        if m is not None and not m.error() and m.value() in values:
            parked.setdefault(m.value(), []).append(dict(m.headers() or []))
        if settled is None and set(values) <= set(parked):
            settled = time.time() + settle
    c.close()
    return parked


def test_metrics_are_served_over_tls_when_the_host_certificate_is_given(sink_env, test_pki):
    """The finding: the consumers served /metrics in plain HTTP. With the host certificate (the roles' default) the
    server speaks TLS 1.2+ only: verified HTTPS answers, plain HTTP does not."""
    import ssl
    import urllib.request

    cfg = load_config(
        {
            **sink_env,
            "PGSINK_METRICS_TLS_CERT_FILE": str(test_pki["cert"]),
            "PGSINK_METRICS_TLS_KEY_FILE": str(test_pki["key"]),
        }
    )
    sink = Sink(cfg)
    t = threading.Thread(target=sink.run, daemon=True)
    t.start()
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not hasattr(sink, "http"):
            time.sleep(0.1)
        port = sink.http.server_address[1]
        ctx = ssl.create_default_context(cafile=str(test_pki["ca"]))
        body = urllib.request.urlopen(f"https://localhost:{port}/metrics", context=ctx, timeout=10).read()
        assert b"consumer_records_consumed_total" in body
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        sink.stop()
        t.join(30)


def test_half_a_tls_pair_is_a_configuration_error(sink_env, test_pki):
    from analytics_common.config import ConfigError

    with pytest.raises(ConfigError, match="PGSINK_METRICS_TLS_CERT_FILE and PGSINK_METRICS_TLS_KEY_FILE"):
        load_config({**sink_env, "PGSINK_METRICS_TLS_CERT_FILE": str(test_pki["cert"])})


def test_poison_records_are_parked_and_the_sink_keeps_going(kafka, postgres, running_sink):
    marker = str(uuid.uuid4())
    poison = [b"{not json", json.dumps({"event_type": "x", "marker": marker}).encode(), b"\xff\xfe"]
    produce(kafka, [*poison, record(marker).to_kafka(), record(marker).to_kafka()])
    assert wait_for(lambda: count(postgres, marker), (2, 2)) == (2, 2)
    parked = dead_letters(kafka, poison)
    assert set(poison) <= set(parked)
    reasons = {v: parked[v][0]["dlq-reason"].decode() for v in poison}
    assert reasons[poison[1]].startswith("received_at")  # names the missing field
    assert all(parked[v][0]["dlq-consumer"] == b"pg-sink" for v in poison)
    assert all(parked[v][0]["dlq-stage"] == b"contract" for v in poison)


def test_a_nul_character_is_parked_and_does_not_jam_the_sink(kafka, postgres, running_sink):
    """The finding: one record with NUL stopped every later event from reaching PostgreSQL (the batch was retried
    for ever). Now it breaks the contract: it is parked once with its reason, and the events around it arrive."""
    marker = str(uuid.uuid4())
    nul = EventRecord.model_construct(**{**dict(record(marker)), "properties": {"marker": marker, "text": "a\u0000b"}})
    bad = nul.model_dump_json().encode()  # as the API wrote it before the contract (or another producer would)
    assert b"\\u0000" in bad
    before, after = [record(marker) for _unused in range(50)], [record(marker) for _unused2 in range(50)]
    produce(kafka, [r.to_kafka() for r in before] + [bad] + [r.to_kafka() for r in after])
    assert wait_for(lambda: count(postgres, marker), (100, 100)) == (100, 100)
    parked = dead_letters(kafka, [bad])
    assert len(parked[bad]) == 1
    assert parked[bad][0]["dlq-reason"].decode() == "properties.text: contains a NUL character"


@pytest.fixture
def refuse_event_type(postgres):
    """A CHECK constraint that makes PostgreSQL itself refuse rows of one event type (a data error, class 23)."""
    with psycopg.connect(postgres.dsn(), autocommit=True) as c:
        c.execute("ALTER TABLE analytics_events ADD CONSTRAINT test_refused CHECK (event_type <> 'refused_here')")
    yield "refused_here"
    with psycopg.connect(postgres.dsn(), autocommit=True) as c:
        c.execute("ALTER TABLE analytics_events DROP CONSTRAINT IF EXISTS test_refused")


def test_rows_postgresql_refuses_are_parked_once_and_the_rest_is_written(kafka, postgres, sink_env, refuse_event_type):
    marker = str(uuid.uuid4())
    good = [record(marker) for _n in range(120)]
    refused = [record(marker, event_type=refuse_event_type) for _n in range(3)]
    values = [r.to_kafka() for r in good[:40] + refused[:1] + good[40:80] + refused[1:] + good[80:]]
    sink = Sink(load_config({**sink_env, "PGSINK_BATCH_SIZE": "500", "PGSINK_BATCH_SECONDS": "2"}))
    t = threading.Thread(target=sink.run, daemon=True)
    t.start()
    try:
        produce(kafka, values)
        assert wait_for(lambda: count(postgres, marker), (120, 120)) == (120, 120)
        parked = dead_letters(kafka, [r.to_kafka() for r in refused])
    finally:
        sink.stop()
        t.join(30)
    assert sorted(len(v) for v in parked.values()) == [1, 1, 1]  # each refused row parked exactly once
    for headers in parked.values():
        assert headers[0]["dlq-stage"] == b"store"
        assert headers[0]["dlq-reason"].decode().startswith("PostgreSQL refused the row: 23514")


def test_an_outage_retries_the_batch_and_parks_nothing_twice(kafka, postgres, sink_env):
    """The finding: poison records were parked again on every retry of a batch PostgreSQL could not take. Now the
    dead letters and the offsets commit together, after the store has the batch."""
    marker = str(uuid.uuid4())
    poison = [json.dumps({"marker": marker, "n": i}).encode() for i in range(2)]
    good = [record(marker) for _n in range(20)]
    sink = Sink(load_config({**sink_env, "PGSINK_BATCH_SIZE": "100", "PGSINK_BATCH_SECONDS": "0.5"}))
    postgres.stop()
    t = threading.Thread(target=sink.run, daemon=True)
    try:
        t.start()
        produce(kafka, [poison[0], *(r.to_kafka() for r in good), poison[1]])
        time.sleep(6)  # several failed attempts (backoff 1, 2, 4 s) while PostgreSQL is down
    finally:
        postgres.start()
    try:
        assert wait_for(lambda: count(postgres, marker), (20, 20), timeout=90) == (20, 20)
        parked = dead_letters(kafka, poison)
    finally:
        sink.stop()
        t.join(30)
    assert sorted(len(v) for v in parked.values()) == [1, 1]


def lag_of(group: str) -> int | None:
    """The lag this process exports for `group` (every partition summed), None while it exports none."""
    values = [
        s.value
        for m in REGISTRY.collect()
        if m.name == "kafka_consumer_lag"
        for s in m.samples
        if s.labels.get("group") == group
    ]
    return int(sum(values)) if values else None


def test_the_lag_of_every_listed_group_is_read_from_kafka_while_the_sink_is_stuck(kafka, sink_env):
    """The finding: the lag came from the consume loop, which stops updating it while a batch is retried (the store
    down) and is gone with the process; a stuck or stopped sink showed no lag. Now a thread reads each listed group's
    committed offsets from Kafka: here the sink's own group (PostgreSQL unreachable, nothing is committed) and another
    service's group without any consumer both grow by exactly the events produced."""
    tag = uuid.uuid4().hex[:8]
    own, other = f"pg-sink-lag-{tag}", f"delta-writer-lag-{tag}"
    admin = AdminClient(kafka.conf("admin"))
    parts = [TopicPartition("analytics-events", p) for p in range(3)]
    ends = {
        tp.partition: f.result().offset
        for tp, f in admin.list_offsets({tp: OffsetSpec.latest() for tp in parts}).items()
    }
    for user, group in (("pg-sink", own), ("delta-writer", other)):  # both caught up: nothing left to consume
        c = Consumer(kafka.conf(user, **{"group.id": group, "enable.auto.commit": False}))
        for attempt in range(30):  # a fresh broker answers "not coordinator" while it loads the offsets topic
            try:
                c.commit(
                    offsets=[TopicPartition("analytics-events", p, o) for p, o in ends.items()], asynchronous=False
                )
                break
            except KafkaException:
                if attempt == 29:
                    raise
                time.sleep(1)
        c.close()
    env = {**sink_env, "PGSINK_GROUP": own, "PGSINK_LAG_GROUPS": f"{own},{other},pg-sink-never-{tag}"}
    sink = Sink(load_config({**env, "PGSINK_LAG_SECONDS": "1", "PGSINK_PG_PORT": "1"}))  # nothing listens on port 1
    t = threading.Thread(target=sink.run, daemon=True)
    t.start()
    try:
        assert wait_for(lambda: (lag_of(own), lag_of(other)), (0, 0)) == (0, 0)
        produce(kafka, [record(tag).to_kafka() for _n in range(50)])
        assert wait_for(lambda: (lag_of(own), lag_of(other)), (50, 50)) == (50, 50)
        time.sleep(3)  # the sink keeps failing its batch: the lag stays, it is not reset by the retries
        assert (lag_of(own), lag_of(other)) == (50, 50)
        assert lag_of(f"pg-sink-never-{tag}") is None  # a group that never committed is not reported
    finally:
        sink.stop()
        t.join(30)


def watchdog_socket(tmp_path, monkeypatch, usec: str) -> socket.socket:
    """A notification socket as systemd sets one up for a unit with WatchdogSec (WATCHDOG_USEC), this process's."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    return notify


def test_the_main_loop_pings_systemds_watchdog_and_only_its_own(tmp_path, monkeypatch, sink_env):
    """The finding: a Kafka client call that ignores its timeout (librdkafka's send_offsets_to_transaction while the
    group coordinator is down) jammed a sink for good, healthy to systemd. Now the units have WatchdogSec and the main
    loop pings it: here through a real notification socket, as systemd sets it up, at most every quarter period."""
    notify = watchdog_socket(tmp_path, monkeypatch, "800000")
    sink = Sink(load_config(sink_env))
    t = threading.Thread(target=sink.run, daemon=True)
    t.start()
    try:
        pings = [notify.recv(64) for _n in range(3)]  # the loop beats every half second: a ping per 0.2 s period
        assert pings == [b"WATCHDOG=1"] * 3
    finally:
        sink.stop()
        t.join(30)
    while True:  # what was sent before the stop
        notify.settimeout(0.5)
        try:
            notify.recv(64)
        except TimeoutError:
            break
    with pytest.raises(TimeoutError):  # a loop that no longer runs pings no more
        notify.recv(64)
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process's watchdog (a parent's): not this one's to ping
    assert not SystemdWatchdog().enabled
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not SystemdWatchdog().enabled


def test_a_sink_waiting_for_postgresql_keeps_pinging_the_watchdog(tmp_path, monkeypatch, sink_env, caplog):
    """The finding: between retries the loop slept its whole backoff (up to 30 s) without a beat, so a unit whose
    WatchdogSec is shorter was killed while it only waited (and with the offsets kept in PostgreSQL, a sink reads
    nothing until the database answers). Now it beats while it waits: with nothing listening on PostgreSQL's port
    for 15 s (backoffs of 1, 2, 4 and 8 s), no two pings are 2 s apart."""
    notify = watchdog_socket(tmp_path, monkeypatch, "2000000")
    sink = Sink(load_config({**sink_env, "PGSINK_PG_PORT": "1"}))
    t = threading.Thread(target=sink.run, daemon=True)
    t.start()
    try:
        times, deadline = [], time.monotonic() + 15
        while time.monotonic() < deadline:
            notify.recv(64)
            times.append(time.monotonic())
    finally:
        sink.stop()
        t.join(30)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) > 10 and max(gaps) < 2.0, gaps
    retries = [
        r
        for r in caplog.records
        if r.getMessage().startswith("offsets unknown (Kafka's committed or the store's), retrying")
    ]
    assert len(retries) >= 3, [r.getMessage() for r in caplog.records]  # it waited 1, 2 and 4 s at least


def test_a_retried_post_without_timestamp_is_stored_once(kafka, postgres, running_sink):
    """The finding: (event_id, event_time) was the only key, and a retried POST without a timestamp gets another
    server time. The same event_id, two receive times, two batches: one row, the first."""
    marker = str(uuid.uuid4())
    first = record(marker)
    produce(kafka, [first.to_kafka()])
    assert wait_for(lambda: count(postgres, marker), (1, 1)) == (1, 1)
    later = utcnow()
    retry = first.model_copy(update={"timestamp": later, "received_at": later, "page": "/retry"})
    both = record(marker)
    # Keyed as the API keys them (by session): one partition, in the order sent.
    produce(kafka, [retry.to_kafka(), both.to_kafka(), both.model_copy(update={"page": "/again"}).to_kafka()], b"s-1")
    assert wait_for(lambda: count(postgres, marker), (2, 2)) == (2, 2)
    time.sleep(2)
    assert count(postgres, marker) == (2, 2)
    with psycopg.connect(postgres.dsn()) as c:
        kept = c.execute(
            "SELECT event_time, page FROM analytics_events WHERE event_id = ANY(%s) ORDER BY event_time",
            ([first.event_id, both.event_id],),
        ).fetchall()
    assert kept == [(first.timestamp, None), (both.timestamp, None)]  # the first copy of each, in both cases


def offsets_in(postgres, group="pg-sink") -> dict[tuple[str, int], int]:
    with psycopg.connect(postgres.dsn()) as c:
        rows = c.execute(
            "SELECT topic, kafka_partition, next_offset FROM analytics_sink_offsets WHERE consumer_group = %s",
            (group,),
        ).fetchall()
    return {(t, p): o for t, p, o in rows}


def committed_in_kafka(kafka, group="pg-sink") -> dict[tuple[str, int], int]:
    c = Consumer(kafka.conf("admin", **{"group.id": group, "enable.auto.commit": False}))
    try:
        tps = c.committed([TopicPartition("analytics-events", p) for p in range(3)], timeout=10)
    finally:
        c.close()
    return {(tp.topic, tp.partition): tp.offset for tp in tps}


def test_batches_a_failover_lost_are_read_from_kafka_again(kafka, postgres, running_sink):
    """The finding (the leader-killed drill's design gap): the sink committed a batch to PostgreSQL, then moved the
    group's offsets in Kafka, so a leader promoted without the last acknowledged transactions (asynchronous
    replication) lacked those events for good. Now each batch stores its offsets in its own transaction. Here the
    server loses the last batches the way a promoted replica lacks them (their rows, their claims and the offsets
    they moved), and the sink's connection is cut as a failover cuts it: the sink reads the lost records from Kafka
    again. Every event is stored once, and the poison record among them is not parked a second time."""
    warm = str(uuid.uuid4())
    p = Producer(kafka.conf("admin", **{"acks": "all", "enable.idempotence": True}))
    for partition in range(3):  # every partition has its offset stored before the batches that are lost
        p.produce("analytics-events", record(warm).to_kafka(), partition=partition)
    assert p.flush(30) == 0
    assert wait_for(lambda: count(postgres, warm), (3, 3)) == (3, 3)
    assert wait_for(lambda: len(offsets_in(postgres)), 3) == 3
    before = offsets_in(postgres)

    marker = str(uuid.uuid4())
    lost = [record(marker) for _n in range(90)]
    poison = json.dumps({"marker": marker, "lost": True}).encode()
    for n, value in enumerate([r.to_kafka() for r in lost[:45]] + [poison] + [r.to_kafka() for r in lost[45:]]):
        p.produce("analytics-events", value, partition=n % 3)
    assert p.flush(30) == 0
    assert wait_for(lambda: count(postgres, marker), (90, 90)) == (90, 90)
    assert len(dead_letters(kafka, [poison])[poison]) == 1
    expected = {k: o + 30 + (k[1] == 0) for k, o in before.items()}  # 91 records, partition 0 has the 31st
    stored = wait_for(lambda: offsets_in(postgres), expected)
    assert stored == expected  # the batches stored the sink's place with them
    assert wait_for(lambda: committed_in_kafka(kafka), stored) == stored  # Kafka has passed the lost batches

    ids = [r.event_id for r in lost]
    with psycopg.connect(postgres.dsn(), autocommit=True) as c:
        with c.transaction():
            c.execute("DELETE FROM analytics_events WHERE event_id = ANY(%s)", (ids,))
            c.execute("DELETE FROM analytics_event_ids WHERE event_id = ANY(%s)", (ids,))
            for (topic, partition), offset in before.items():
                c.execute(
                    "UPDATE analytics_sink_offsets SET next_offset = %s"
                    " WHERE consumer_group = 'pg-sink' AND topic = %s AND kafka_partition = %s",
                    (offset, topic, partition),
                )
        cut = c.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pg-sink'"
        ).fetchone()[0]
    assert cut >= 1
    assert count(postgres, marker) == (0, 0)

    produce(kafka, [record(marker).to_kafka()])  # the next batch meets the cut connection
    assert wait_for(lambda: count(postgres, marker), (91, 91), timeout=90) == (91, 91)
    time.sleep(2)
    assert count(postgres, marker) == (91, 91)
    assert len(dead_letters(kafka, [poison])[poison]) == 1


def test_killed_mid_batch_loses_and_duplicates_nothing(kafka, postgres, sink_env):
    """SIGKILL the sink while it works through 6000 events, start it again: exactly 6000 rows."""
    marker = str(uuid.uuid4())
    total = 6000
    env = {**os.environ, **sink_env, "PGSINK_BATCH_SIZE": "150", "PYTHONPATH": os.pathsep.join(sys.path)}

    def start():
        return subprocess.Popen(
            [sys.executable, "-m", "pg_sink.main"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    proc = start()
    try:
        produce(kafka, [record(marker).to_kafka() for _n in range(total)])
        deadline = time.time() + 60
        while time.time() < deadline and count(postgres, marker)[0] < 1000:
            time.sleep(0.05)
        rows_at_kill = count(postgres, marker)[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert 0 < rows_at_kill < total, "the kill did not land mid-stream"
        proc = start()
        assert wait_for(lambda: count(postgres, marker), (total, total), timeout=120) == (total, total)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_bad_configuration_exits_2_naming_the_variable(sink_env):
    env = {**os.environ, **sink_env, "PGSINK_PG_PORT": "port", "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run(
        [sys.executable, "-m", "pg_sink.main"], env=env, capture_output=True, check=False, text=True, timeout=30
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("pg-sink: configuration error: PGSINK_PG_PORT is malformed ('port')")
