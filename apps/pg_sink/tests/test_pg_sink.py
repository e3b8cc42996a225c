"""The sink against real Kafka (SASL_SSL, ACLs) and PostgreSQL (TLS): rows equal events accepted, redeliveries do not
double, poison records are parked with their reason, and a sink killed mid-batch loses and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest
from analytics_common.events import EventRecord, utcnow
from confluent_kafka import Consumer, Producer
from pg_sink.config import load_config
from pg_sink.sink import Sink

pytestmark = pytest.mark.integration


def record(marker, **kw):
    now = utcnow()
    base = dict(event_id=uuid.uuid4(), event_type="page_view", session_id="s-1", timestamp=now, received_at=now,
                properties={"marker": marker}, metadata={"ip_address": "192.0.2.1"})  # fmt: skip
    base.update(kw)
    return EventRecord(**base)


def produce(kafka, values):
    p = Producer(kafka.conf("admin", **{"acks": "all", "enable.idempotence": True}))
    for v in values:
        p.produce("analytics-events", v)
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
    recs = [record(marker) for _ in range(500)]
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


def test_health_ready_and_metrics(running_sink):
    import urllib.request

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
    metrics = urllib.request.urlopen(base + "/metrics").read().decode()
    assert 'consumer_records_written_total{service="pg-sink"}' in metrics
    assert 'kafka_consumer_lag{group="pg-sink"' in metrics


def test_poison_records_are_parked_and_the_sink_keeps_going(kafka, postgres, running_sink):
    marker = str(uuid.uuid4())
    poison = [b"{not json", json.dumps({"event_type": "x", "marker": marker}).encode(), b"\xff\xfe"]
    produce(kafka, [*poison, record(marker).to_kafka(), record(marker).to_kafka()])
    assert wait_for(lambda: count(postgres, marker), (2, 2)) == (2, 2)
    c = Consumer(kafka.conf("admin", **{"group.id": f"dlq-{uuid.uuid4()}", "auto.offset.reset": "earliest"}))
    c.subscribe(["analytics-events-dlq"])
    parked, deadline = {}, time.time() + 30
    while time.time() < deadline and not all(p in parked for p in poison):
        m = c.poll(0.5)
        if m is not None and not m.error():
            parked[m.value()] = dict(m.headers() or [])
    c.close()
    assert set(poison) <= set(parked)
    reasons = {v: parked[v]["dlq-reason"].decode() for v in poison}
    assert reasons[poison[1]].startswith("received_at")  # names the missing field
    assert all(parked[v]["dlq-consumer"] == b"pg-sink" for v in poison)


def test_killed_mid_batch_loses_and_duplicates_nothing(kafka, postgres, sink_env):
    """SIGKILL the sink while it works through 6000 events, start it again: exactly 6000 rows."""
    marker = str(uuid.uuid4())
    total = 6000
    env = {**os.environ, **sink_env, "PGSINK_BATCH_SIZE": "150", "PYTHONPATH": os.pathsep.join(sys.path)}

    def start():
        return subprocess.Popen([sys.executable, "-m", "pg_sink.main"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip

    proc = start()
    try:
        produce(kafka, [record(marker).to_kafka() for _ in range(total)])
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
    r = subprocess.run([sys.executable, "-m", "pg_sink.main"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("pg-sink: configuration error: PGSINK_PG_PORT is malformed ('port')")
