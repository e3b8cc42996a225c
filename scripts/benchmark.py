"""Throughput of the services against real servers started here, the same ones the integration tests use: Kafka
(KRaft, SASL_SSL with SCRAM, ACLs), PostgreSQL 15 (TLS) and SeaweedFS (S3 over TLS), all on 127.0.0.1.

    make bench                                 (scripts/test-apps.sh --bench: the services' test environment)
    make bench BENCH_ARGS="--events 50000"

What is measured (docs/benchmarks.md keeps the numbers, with the date and the machine):
  - the API: events accepted per second (202 after Kafka acknowledged, acks=all, idempotent and transactional
    producer) for single-event posts and for batch posts, over HTTP from a concurrent client on the same machine,
    side by side with the design it replaces (benchmarks/peer-express: express + kafkajs as the guide describes it,
    the same Kafka, alternating rounds), and the limit of the same broker for the API's records (Kafka's own
    ProducerPerformance with the API's producer settings);
  - the sink's write strategy alone: COPY into a temporary table then one INSERT ... ON CONFLICT (what pg_sink does)
    against row-by-row INSERT ... ON CONFLICT, the same rows, the same transaction size;
  - the sink and the writer end to end: events already in Kafka until they are rows in PostgreSQL or in the Delta
    table (consumed, written, offsets committed);
  - Bento, the guide's Kafka -> PostgreSQL processor, end to end on the same kind of rows into the same table, with the
    bento role's own pipeline (its template rendered here) and the binary built by scripts/build-artifacts.sh
    (AP_BUILD_BENTO=1: make bench builds it).
The client, the servers and the service share the machine's cores: the numbers are a floor for a real deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
from analytics_api.keys import hash_key
from analytics_common.events import Event, EventRecord, Stamp, utcnow
from analytics_testing.fixtures import sink_grants
from analytics_testing.pki import make_pki
from analytics_testing.servers import Kafka, Postgres, SeaweedFS, free_port, wait_port
from confluent_kafka import Producer
from pg_sink import db as sink_db

if TYPE_CHECKING:  # a type only: the script also measures older consumers (PYTHONPATH=<their apps/*/src>)
    from analytics_common.events import StoredEvent

KEY = "bench-key-" + uuid.uuid4().hex
PEER = Path(__file__).resolve().parent.parent / "benchmarks" / "peer-express"


def event(i: int, marker: str) -> dict:
    properties = {"marker": marker, "i": i, "referrer": "https://example.com/"}
    return {
        "event_type": "page_view",
        "session_id": f"s-{i % 500}",
        "user_id": f"u-{i % 2000}",
        "page": "/pricing",
        "properties": properties,
    }


def record(i: int, marker: str) -> EventRecord:
    now = utcnow()
    return EventRecord(
        event_id=uuid.uuid4(), timestamp=now, received_at=now, metadata={"ip_address": "192.0.2.1"}, **event(i, marker)
    )


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


# --- the API --------------------------------------------------------------------------------------------------------


def start_api(kafka: Kafka, folder: Path, max_batch: int, sources: str | None = None) -> tuple[subprocess.Popen, int]:
    """The API as a process of its own; `sources` (a PYTHONPATH) runs another version of it, to compare."""
    keys = folder / "keys.json"
    keys.write_text(json.dumps({"bench": hash_key(KEY)}))
    port = free_port()
    env = {
        **os.environ,
        **kafka.env("API_", "analytics-api"),
        "API_KEYS_FILE": str(keys),
        "API_PORT": str(port),
        "API_RATE_LIMIT": "100000000",
        "API_RATE_BURST": "1000000",
        "API_MAX_BATCH": str(max_batch),
        "API_MAX_BODY_BYTES": str(4 * 1024 * 1024),
        "API_LOG_LEVEL": "warning",
    }
    if sources:
        env["PYTHONPATH"] = sources
    log = (folder / "api.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "analytics_api.main"], env=env, stdout=log, stderr=log)
    wait_port(port, 60, proc, folder / "api.log")
    deadline = time.time() + 60
    while httpx.get(f"http://127.0.0.1:{port}/ready").status_code != 200:
        if time.time() > deadline:
            raise RuntimeError("the API did not become ready (Kafka)")
        time.sleep(0.5)
    return proc, port


async def post_all(port: int, bodies: list[tuple[str, dict]], concurrency: int) -> tuple[float, list[float], dict]:
    """POST every body over `concurrency` keep-alive HTTP/1.1 connections. A minimal client on raw asyncio streams:
    an HTTP library costs more CPU per request than the API itself (httpx took 90% of a core for 170 requests/s on
    this machine), which would measure the client instead of the API."""
    latencies, statuses = [], {}
    queue = [(path, json.dumps(body).encode()) for path, body in reversed(bodies)]

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                path, body = queue.pop()
                head = (
                    f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                    f"x-api-key: {KEY}\r\ncontent-length: {len(body)}\r\n\r\n"
                )
                t = time.perf_counter()
                writer.write(head.encode() + body)
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _unused, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _n in range(concurrency)))
    return time.perf_counter() - start, latencies, statuses


def start_peer(kafka: Kafka, folder: Path) -> tuple[subprocess.Popen, int] | None:
    """The design this API replaces (benchmarks/peer-express: express + kafkajs, from the guide's description), on the
    same Kafka with the API's Kafka user. Its packages come from package-lock.json (npm ci) the first time."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        print("==> no Node.js here: the peer (express + kafkajs) is not measured", file=sys.stderr)
        return None
    if not (PEER / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--ignore-scripts"], cwd=PEER, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    env = {**os.environ, **kafka.env("PEER_", "analytics-api"), "PEER_PORT": str(port), "PEER_API_KEY": KEY}
    log = (folder / "peer.log").open("w")
    proc = subprocess.Popen([node, "server.js"], cwd=PEER, env=env, stdout=log, stderr=log)
    wait_port(port, 60, proc, folder / "peer.log")
    return proc, port


def producer_limit(kafka: Kafka, folder: Path, n: int, marker: str) -> tuple[float, str]:
    """What this broker takes from Kafka's own producer (ProducerPerformance, Java, no HTTP) with the API's settings:
    SASL_SSL, acks=all, idempotent, lz4, linger 5 ms, 256 KiB batches; the records are the API's own (the same JSON,
    so the same compression)."""
    stamp = Stamp(utcnow(), {"ip_address": "192.0.2.1", "api_key": "bench"})
    payload = folder / "payload.txt"
    payload.write_bytes(b"\n".join(stamp.record(Event.model_validate(event(i, marker))).value for i in range(2000)))
    props = folder / "perf.properties"
    props.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="analytics-api" password="{kafka.passwords["analytics-api"]}";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={kafka.pki['ca']}\n"
    )
    size = statistics.mean(len(line) for line in payload.read_bytes().split(b"\n"))
    home = kafka.home()
    cmd = [
        *("java", "-Xmx512m", "-cp", f"{home}/libs/*", f"-Dlog4j2.configurationFile={home}/config/tools-log4j2.yaml"),
        "org.apache.kafka.tools.ProducerPerformance",
        *("--topic", "analytics-events", "--num-records", str(n), "--throughput", "-1"),
        *("--payload-file", str(payload), "--producer.config", str(props), "--producer-props"),
        *("acks=all", "enable.idempotence=true", "compression.type=lz4", "linger.ms=5", "batch.size=262144"),
        f"bootstrap.servers={kafka.bootstrap}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    last = [line for line in out.splitlines() if "records sent" in line][-1]
    per_second = float(last.split(",")[1].split()[0])
    return per_second, f"{n} records of {size:.0f} bytes (the API's records); {last.split(',', 2)[2].strip()}"


def measure(port: int, bodies: list[tuple[str, dict]], concurrency: int, events: int) -> tuple[float, float, float]:
    """(events/s, p50 ms, p99 ms per request) of one run; every answer must be 202."""
    secs, lat, statuses = asyncio.run(post_all(port, bodies, concurrency))
    assert statuses == {202: len(bodies)}, statuses
    return events / secs, statistics.median(lat) * 1000, statistics.quantiles(lat, n=100)[98] * 1000


def bench_api(
    kafka: Kafka, folder: Path, n: int, concurrency: int, batch: int, rounds: int, peer: bool, sources: str | None
) -> list[tuple[str, str, str]]:
    """This API and the peer side by side, in alternating rounds on the same Kafka (the median round is reported),
    then the producer limit of the same broker."""
    targets = {"this API": start_api(kafka, folder, batch, sources)}
    if peer and (started := start_peer(kafka, folder)) is not None:
        targets["express + kafkajs"] = started
    rows, results = [], {name: {"single": [], "batch": []} for name in targets}
    batch_clients = min(concurrency, 8)
    try:
        marker = uuid.uuid4().hex
        for started in targets.values():  # warm up: connections, JIT, Kafka metadata
            asyncio.run(post_all(started[1], [("/analytics", event(i, marker)) for i in range(200)], concurrency))
        singles = [("/analytics", event(i, marker)) for i in range(n // 3)]
        batches = [
            ("/analytics/batch", {"events": [event(i * batch + j, marker) for j in range(batch)]})
            for i in range(max(n // batch, 1))
        ]
        for r in range(rounds):
            for name in list(targets)[:: 1 if r % 2 == 0 else -1]:
                port = targets[name][1]
                results[name]["single"].append(measure(port, singles, concurrency, len(singles)))
                results[name]["batch"].append(measure(port, batches, batch_clients, len(batches) * batch))
    finally:
        for started in targets.values():
            started[0].terminate()
            started[0].wait(30)
    limit, limit_notes = producer_limit(kafka, folder, n * 5, uuid.uuid4().hex)

    def median_round(name: str, kind: str) -> tuple[float, float, float]:
        runs = sorted(results[name][kind])
        return runs[len(runs) // 2]

    for kind, label, clients in (
        ("single", "single events", concurrency),
        ("batch", f"batches of {batch}", batch_clients),
    ):
        for name in targets:
            per_second, p50, p99 = median_round(name, kind)
            all_rates = ", ".join(f"{x[0]:,.0f}" for x in results[name][kind])
            of_rounds = f"median of {rounds} rounds" if rounds > 1 else "one round"
            rows.append(
                (
                    f"{name}: {label}, {clients} concurrent clients",
                    f"{per_second:,.0f} events/s",
                    f"p50 {p50:.1f} ms, p99 {p99:.1f} ms per request; {of_rounds} ({all_rates})",
                )
            )
        if "express + kafkajs" in targets:
            ours, theirs = median_round("this API", kind)[0], median_round("express + kafkajs", kind)[0]
            rows.append((f"this API over express + kafkajs, {label}", f"{ours / theirs:.2f}x", "same Kafka, same run"))
    rows.append(("Producer limit: Kafka's ProducerPerformance, API settings", f"{limit:,.0f} records/s", limit_notes))
    ours = median_round("this API", "batch")[0]
    rows.append(
        (f"this API's batches of {batch} over the producer limit", f"{ours / limit:.0%}", "same broker, same run")
    )
    return rows


# --- the sink's write strategy --------------------------------------------------------------------------------------


def copy_straight(conn: psycopg.Connection, records: list[StoredEvent]) -> int:
    """The limit: the same rows COPY-ed straight into the events table (its indexes, no claim of the event_ids, no
    conflict handling), one transaction per batch, sent as pg_sink sends them."""
    cols = ", ".join(sink_db.COLUMNS)
    with conn.transaction(), conn.cursor() as cur, cur.copy(f"COPY analytics_events ({cols}) FROM STDIN") as copy:
        copy.set_types(sink_db.COPY_TYPES)
        for r in records:
            copy.write_row(r)
    return len(records)


SINK_WRITE = "COPY + INSERT ... SELECT (pg_sink's write)"
RAW_COPY = "COPY straight into the table (the limit)"


def bench_write_strategy(postgres: Postgres, n: int, batch: int, rounds: int = 2) -> list[tuple[str, str, str]]:
    """pg_sink's write (the event_ids claimed, conflicts skipped) against the raw COPY of the same rows, alternating
    rounds on one server; the best round of each."""
    best: dict[str, float] = {}
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        for _round in range(rounds):
            for name, write in ((SINK_WRITE, sink_db.write_events), (RAW_COPY, copy_straight)):
                marker = uuid.uuid4().hex
                records = [record(i, marker).stored() for i in range(n)]
                start = time.perf_counter()
                for i in range(0, n, batch):
                    write(conn, records[i : i + batch])
                secs = time.perf_counter() - start
                got = conn.execute(
                    "SELECT count(*) FROM analytics_events WHERE properties->>'marker' = %s", (marker,)
                ).fetchone()[0]
                assert got == n, (name, got)
                best[name] = max(best.get(name, 0.0), n / secs)
    notes = f"{n} rows in batches of {batch}, one transaction each; best of {rounds} alternating rounds"
    return [
        (f"PostgreSQL write: {SINK_WRITE}", f"{best[SINK_WRITE]:,.0f} rows/s", notes),
        (f"PostgreSQL write: {RAW_COPY}", f"{best[RAW_COPY]:,.0f} rows/s", notes),
        ("pg_sink's write over the raw COPY", f"{best[SINK_WRITE] / best[RAW_COPY]:.0%}", "same rows, same server"),
    ]


# --- the consumers end to end ---------------------------------------------------------------------------------------


def fill_topic(kafka: Kafka, n: int, marker: str) -> None:
    p = Producer(kafka.conf("admin", **{"acks": "all", "enable.idempotence": True, "linger.ms": 20}))
    for i in range(n):
        r = record(i, marker)
        p.produce("analytics-events", r.to_kafka(), key=r.key())
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def run_until(consumer, counted, n: int, timeout: float = 600) -> tuple[float, float]:
    """Run a consumer until `counted()` reaches n. Returns (seconds until its first rows were visible, rows per second
    from then on): joining the consumer group takes seconds and would otherwise dominate a short run."""
    t = threading.Thread(target=consumer.run, daemon=True)
    start = time.perf_counter()
    t.start()
    first_at, first_rows = None, 0
    try:
        deadline = time.time() + timeout
        while (got := counted()) < n:
            if first_at is None and got > 0:
                first_at, first_rows = time.perf_counter(), got
            if time.time() > deadline or not t.is_alive():
                why = getattr(consumer, "failure", None) or f"after {timeout} s"
                raise RuntimeError(f"{type(consumer).__name__}: {got} of {n} rows {why}")
            time.sleep(0.2)
        end = time.perf_counter()
        if first_at is None or end - first_at < 0.5:  # everything arrived in one step: no steady state to measure
            return end - start, n / (end - start)
        return first_at - start, (n - first_rows) / (end - first_at)
    finally:
        consumer.stop()
        t.join(60)


def postgres_sink_role(postgres: Postgres) -> str:
    """(Re)create the sink's login role with what the postgresql role grants it; returns its new password."""
    password = uuid.uuid4().hex
    with psycopg.connect(postgres.dsn(), autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_roles WHERE rolname = 'analytics_sink'").fetchone()
        c.execute(f"{'ALTER' if exists else 'CREATE'} ROLE analytics_sink LOGIN PASSWORD '{password}'")
        for grant in sink_grants():  # what the postgresql role grants the sink
            c.execute(grant)
    return password


SINK_END_TO_END = "pg_sink end to end (Kafka -> PostgreSQL, batches of 5000 or 1 s)"


def bench_sink(kafka: Kafka, postgres: Postgres, n: int, group: str) -> tuple[str, str, str]:
    from pg_sink.config import load_config
    from pg_sink.sink import Sink

    marker = uuid.uuid4().hex
    fill_topic(kafka, n, marker)
    password = postgres_sink_role(postgres)
    env = {
        **kafka.env("PGSINK_", "pg-sink"),
        "PGSINK_GROUP": group,
        "PGSINK_PG_HOST": "127.0.0.1",
        "PGSINK_PG_PORT": str(postgres.port),
        "PGSINK_PG_PASSWORD": password,
        "PGSINK_PG_CA_FILE": str(postgres.pki["ca"]),
        "PGSINK_METRICS_PORT": "0",
        "PGSINK_LOG_LEVEL": "warning",
    }
    conn = psycopg.connect(postgres.dsn(), autocommit=True)

    def counted():
        q = "SELECT count(*) FROM analytics_events WHERE properties->>'marker' = %s"
        return conn.execute(q, (marker,)).fetchone()[0]

    startup, per_second = run_until(Sink(load_config(env)), counted, n)
    conn.close()
    return (
        SINK_END_TO_END,
        f"{per_second:,.0f} rows/s",
        f"{n} events already in Kafka; first rows after {startup:.1f} s (group join), then this rate",
    )


BENTO = Path(__file__).resolve().parent.parent / "artifacts" / "bento"
BENTO_PIPELINE = Path(__file__).resolve().parent.parent / "roles" / "bento" / "templates" / "bento.yaml.j2"


def bento_pipeline(kafka: Kafka, postgres: Postgres, folder: Path, group: str, batch: int) -> Path:
    """The bento role's own pipeline (its template), pointed at this run's servers."""
    import jinja2

    # A YAML template: escaping is for HTML and XML only (none here).
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "xml"), default_for_string=False),
    )
    env.filters["to_json"] = json.dumps
    text = env.from_string(BENTO_PIPELINE.read_text()).render(
        ansible_managed="rendered by scripts/benchmark.py",
        inventory_hostname="bench",
        zone="",
        bento_http_port=free_port(),
        pki_cert_path=str(kafka.pki["cert"]),
        pki_key_path=str(kafka.pki["key"]),
        pki_ca_path=str(kafka.pki["ca"]),
        bento_log_level="WARN",
        bento_kafka_bootstrap=[kafka.bootstrap],
        bento_kafka_topic="analytics-events",
        bento_kafka_group=group,
        bento_kafka_username="pg-sink",  # the sinks' rights (the fixture has no bento user)
        bento_checkpoint_limit=1024,
        bento_dlq_topic="analytics-events-dlq",
        bento_pg_user="analytics_sink",
        bento_pg_host="127.0.0.1",
        bento_pg_port=postgres.port,
        bento_pg_database="analytics",
        bento_batch_count=batch,
        bento_batch_period="1s",
        bento_max_age_days=90,  # the role's defaults
        bento_max_future_hours=24,
    )
    path = folder / f"{group}.yaml"
    path.write_text(text)
    return path


class BentoProcess:
    """The Bento binary as a consumer for run_until: run() blocks until stop()."""

    def __init__(self, pipeline: Path, env: dict, log: Path):
        self.pipeline, self.env, self.log, self.proc = pipeline, env, log, None
        self.failure = None  # why it ended on its own: its exit code and the end of its log

    def run(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(BENTO), "-c", str(self.pipeline)], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
            code = self.proc.wait()
        if code and code > 0:
            self.failure = f"(bento exited {code}: {self.log.read_text()[-1500:]})"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)


def bench_bento(kafka: Kafka, postgres: Postgres, folder: Path, n: int, group: str, batch: int) -> tuple[str, str, str]:
    """Bento (the guide's Kafka -> PostgreSQL processor, the bento role's pipeline) on the same kind of rows as
    pg_sink, from a full topic into the same table as the sink's role."""
    if not BENTO.exists():
        raise RuntimeError(f"no Bento binary at {BENTO}: AP_BUILD_BENTO=1 scripts/build-artifacts.sh (make bench does)")
    marker = uuid.uuid4().hex
    fill_topic(kafka, n, marker)
    password = postgres_sink_role(postgres)
    env = {"PATH": os.environ["PATH"], "KAFKA_PASSWORD": kafka.passwords["pg-sink"], "PG_PASSWORD": password}
    conn = psycopg.connect(postgres.dsn(), autocommit=True)

    def counted():
        q = "SELECT count(*) FROM analytics_events WHERE properties->>'marker' = %s"
        return conn.execute(q, (marker,)).fetchone()[0]

    pipeline = bento_pipeline(kafka, postgres, folder, group, batch)
    version = subprocess.run([str(BENTO), "--version"], capture_output=True, text=True, check=True).stdout.split()
    version = next((w for w in version if w[:1].isdigit()), "?")
    startup, per_second = run_until(BentoProcess(pipeline, env, folder / f"{group}.log"), counted, n)
    conn.close()
    return (
        f"Bento {version} end to end (the bento role's pipeline: sql_insert, batches of {batch} or 1 s, 4 in flight)",
        f"{per_second:,.0f} rows/s",
        f"{n} events already in Kafka; first rows after {startup:.1f} s (group join), then this rate",
    )


def bench_writer(kafka: Kafka, weed: SeaweedFS, n: int, group: str, dedup: str, batch: int) -> tuple[str, str, str]:
    """The writer from a full topic into a table of its own, with dedup by event_id (a merge per batch: the default)
    or by offsets only (plain appends)."""
    import pyarrow as pa
    from delta_writer.config import load_config
    from delta_writer.table import EventTable
    from delta_writer.writer import Writer

    marker = uuid.uuid4().hex
    fill_topic(kafka, n, marker)
    access, secret = weed.identities["delta-writer"]
    env = {
        **kafka.env("DELTA_", "delta-writer"),
        "DELTA_GROUP": group,
        "DELTA_TABLE_URI": f"s3://analytics/delta/bench-{marker[:8]}",
        "DELTA_S3_ENDPOINT": weed.endpoint,
        "DELTA_S3_ACCESS_KEY": access,
        "DELTA_S3_SECRET_KEY": secret,
        "DELTA_S3_CA_FILE": str(weed.pki["ca"]),
        "DELTA_BATCH_ROWS": str(batch),
        "DELTA_BATCH_SECONDS": "5",
        "DELTA_DEDUP": dedup,
        "DELTA_METRICS_PORT": "0",
        "DELTA_LOG_LEVEL": "warning",
    }
    cfg = load_config(env)
    table = EventTable(cfg)

    def files() -> pa.Table:
        dt = table.open()
        return pa.table(dt.get_add_actions(flatten=True)) if dt is not None else None

    def counted():  # the rows the table's log says its files hold: no data read (the table is this run's alone)
        added = files()
        return sum(added.column("num_records").to_pylist()) if added is not None else 0

    startup, per_second = run_until(Writer(cfg), counted, n)
    sizes = files().column("size_bytes").to_pylist()
    return (
        f"delta_writer end to end (Kafka -> Delta on S3, batches of {batch} or 5 s), DELTA_DEDUP={dedup}",
        f"{per_second:,.0f} rows/s",
        f"{n} events already in Kafka; first commit after {startup:.1f} s, then this rate; {len(sizes)} data files,"
        f" median {statistics.median(sizes) / 1e6:.1f} MB",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--events", type=int, default=60000, help="events per measurement (default 60000)")
    ap.add_argument("--concurrency", type=int, default=32, help="concurrent API clients (default 32)")
    ap.add_argument("--batch", type=int, default=100, help="events per API batch post (default 100)")
    ap.add_argument(
        "--writer-events", type=int, default=300000, help="events for delta_writer's measurement (default 300000)"
    )
    ap.add_argument(
        "--writer-batch", type=int, default=50000, help="delta_writer's DELTA_BATCH_ROWS (default 50000, the default)"
    )
    ap.add_argument(
        "--bento-batch", type=int, default=500, help="Bento's batch count (default 500, the bento role's default)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the API and its peer (default 3)")
    ap.add_argument("--no-peer", action="store_true", help="measure the API without the express + kafkajs peer")
    ap.add_argument(
        "--api-pythonpath",
        metavar="PATH",
        help="run the API from these sources (a PYTHONPATH: another version's apps/*/src, to compare versions)",
    )
    ap.add_argument(
        "--only",
        choices=["api", "write", "sink", "bento", "writer"],
        action="append",
        help="run only these measurements (repeatable)",
    )
    a = ap.parse_args()
    only = set(a.only or ["api", "write", "sink", "bento", "writer"])
    folder = Path(tempfile.mkdtemp(prefix="ap-bench-"))
    for sub in ("pki", "kafka", "weed"):
        (folder / sub).mkdir()
    pki = make_pki(folder / "pki")
    kafka, weed = Kafka(folder / "kafka", pki), SeaweedFS(folder / "weed", pki)
    postgres = Postgres(dict(pki)) if only & {"write", "sink", "bento"} else None  # its folder is made at once
    rows: list[tuple[str, str, str]] = []
    try:
        print("==> starting Kafka, PostgreSQL and SeaweedFS", file=sys.stderr)
        kafka.start()
        kafka.setup_platform()
        if only & {"write", "sink", "bento"}:
            postgres.start()
            postgres.create_database()
        if "writer" in only:
            weed.start()
        run = uuid.uuid4().hex[:8]
        steps = [
            (
                "api",
                lambda: bench_api(
                    kafka, folder, a.events, a.concurrency, a.batch, a.rounds, not a.no_peer, a.api_pythonpath
                ),
            ),
            ("write", lambda: bench_write_strategy(postgres, a.events, 5000)),
            ("sink", lambda: [bench_sink(kafka, postgres, a.events, f"pg-sink-bench-{run}")]),
            (
                "bento",
                lambda: [bench_bento(kafka, postgres, folder, a.events, f"pg-sink-bento-bench-{run}", a.bento_batch)],
            ),
            (
                "writer",
                lambda: [
                    bench_writer(
                        kafka, weed, a.writer_events, f"delta-writer-bench-{dedup}-{run}", dedup, a.writer_batch
                    )
                    for dedup in ("event_id", "offsets")
                ],
            ),
        ]
        for name, step in steps:
            if name in only:
                print(f"==> {name}", file=sys.stderr)
                rows += step()
        results = {r[0]: r[1] for r in rows}
        raw, sink = results.get(f"PostgreSQL write: {RAW_COPY}"), results.get(SINK_END_TO_END)
        bento = next((v for k, v in results.items() if k.startswith("Bento ")), None)

        def per_s(value: str) -> float:
            return float(value.split()[0].replace(",", ""))

        if raw and sink:
            ratio = per_s(sink) / per_s(raw)
            rows.append(("pg_sink end to end over the raw COPY", f"{ratio:.0%}", "same server, same run"))
        if bento and sink:
            rows.append(("pg_sink end to end over Bento", f"{per_s(sink) / per_s(bento):.2f}x", "same rows, same run"))
    finally:
        kafka.stop()
        if only & {"write", "sink", "bento"}:
            postgres.cleanup()
        weed.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print("\n| Measurement | Result | Notes |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
