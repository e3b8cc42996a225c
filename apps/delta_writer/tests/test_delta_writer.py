"""The writer against real Kafka (SASL_SSL) and SeaweedFS (S3 over TLS): rows equal events, few large files,
a redelivered batch is not written twice, a killed writer loses and doubles nothing, concurrent commits are safe on
the pinned SeaweedFS, and maintenance (compact, vacuum, time-travel restore) works."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from analytics_common.events import EventRecord, utcnow
from confluent_kafka import Consumer, Producer, TopicPartition
from delta_writer.config import load_config
from delta_writer.maintenance import anonymize, compact, expire, expire_versions, restore, vacuum
from delta_writer.table import SCHEMA, EventTable, object_store, to_arrow
from delta_writer.writer import Writer

pytestmark = pytest.mark.integration


def record(marker, **kw):
    now = utcnow()
    return EventRecord(
        **{
            "event_id": uuid.uuid4(),
            "event_type": "click",
            "session_id": "s",
            "timestamp": now,
            "received_at": now,
            "properties": {"marker": marker},
            **kw,
        }
    )


def produce(kafka, recs):
    p = Producer(kafka.conf("admin", **{"acks": "all", "enable.idempotence": True}))
    for r in recs:
        p.produce("analytics-events", r.to_kafka(), key=r.key())
    assert p.flush(30) == 0


def rows(cfg, marker):
    dt = EventTable(cfg).open()
    if dt is None:
        return 0, 0
    t = dt.to_pyarrow_table(columns=["event_id", "properties"])
    mine = t.filter(pc.match_substring(t["properties"], marker))
    return mine.num_rows, len(set(mine["event_id"].to_pylist()))


def wait_rows(cfg, marker, expected, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = rows(cfg, marker)
        if got == expected:
            return got
        time.sleep(1)
    return rows(cfg, marker)


@pytest.fixture
def env(delta_env):
    return {**delta_env, "DELTA_GROUP": f"delta-writer-{uuid.uuid4().hex[:8]}"}


def run_writer(cfg):
    w = Writer(cfg)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    return w, t


def test_rows_equal_events_in_few_files(kafka, env):
    cfg = load_config({**env, "DELTA_BATCH_ROWS": "1000", "DELTA_BATCH_SECONDS": "3"})
    marker = str(uuid.uuid4())
    produce(kafka, [record(marker) for _n in range(3000)])  # all waiting: the batches fill by size, not by time
    w, t = run_writer(cfg)
    try:
        assert wait_rows(cfg, marker, (3000, 3000)) == (3000, 3000)
    finally:
        w.stop()
        t.join(30)
    dt = EventTable(cfg).open()
    assert len(dt.file_uris()) <= 6  # batches of up to 1000 rows: a handful of files, not one per event
    assert dt.to_pyarrow_dataset().schema.field("event_time").type.tz == "UTC"
    assert dt.metadata().partition_columns == ["event_date"]


def test_redelivered_batch_is_not_written_twice(kafka, env):
    """The writer committed to Delta, then its Kafka offsets went back (as after a crash before the offset commit):
    on restart it skips what the table already has, through the commit's app transactions."""
    cfg = load_config(env)
    marker = str(uuid.uuid4())
    w, t = run_writer(cfg)
    produce(kafka, [record(marker) for _n in range(700)])
    assert wait_rows(cfg, marker, (700, 700)) == (700, 700)
    w.stop()
    t.join(30)
    # Rewind the group to the start of the topic, as if no offset had ever been committed.
    c = Consumer(kafka.conf("delta-writer", **{"group.id": cfg.group, "enable.auto.commit": False}))
    parts = [TopicPartition("analytics-events", p, 0) for p in range(3)]
    c.commit(offsets=parts, asynchronous=False)
    c.close()
    w, t = run_writer(cfg)
    try:
        produce(kafka, [record(marker) for _n in range(10)])
        assert wait_rows(cfg, marker, (710, 710)) == (710, 710)
        time.sleep(3)
        assert rows(cfg, marker) == (710, 710)
    finally:
        w.stop()
        t.join(30)


def test_killed_mid_stream_loses_and_doubles_nothing(kafka, env):
    cfg = load_config(env)
    marker = str(uuid.uuid4())
    total = 5000
    penv = {
        **os.environ,
        **env,
        "DELTA_BATCH_ROWS": "300",
        "DELTA_BATCH_SECONDS": "0.5",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }

    def start():
        return subprocess.Popen(
            [sys.executable, "-m", "delta_writer.main"], env=penv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    proc = start()
    try:
        produce(kafka, [record(marker) for _n in range(total)])
        deadline = time.time() + 120
        while time.time() < deadline and rows(cfg, marker)[0] < 600:
            time.sleep(0.2)
        at_kill = rows(cfg, marker)[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert 0 < at_kill < total, "the kill did not land mid-stream"
        proc = start()
        assert wait_rows(cfg, marker, (total, total), timeout=180) == (total, total)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def concurrently(writers: int, commits: int, commit) -> list[str]:
    """`writers` threads each calling commit(i, j) for j in range(commits); returns the errors they met."""
    errors = []

    def writer(i):
        for j in range(commits):
            try:
                commit(i, j)
            except Exception as e:  # collected for the caller to assert on
                errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return errors


def test_concurrent_commits_are_safe_on_seaweedfs(env):
    """Several writers appending to one table at once: every commit lands once (conditional put on S3)."""
    cfg = load_config({**env, "DELTA_DEDUP": "offsets"})
    marker = str(uuid.uuid4())
    table = EventTable(cfg)
    table.append(to_arrow([record(marker).stored()]), {("t", 99): 0})  # create the table
    errors = concurrently(
        4, 8, lambda i, j: table.append(to_arrow([record(marker).stored() for _n in range(5)]), {("t", i): j})
    )
    assert errors == []
    dt = table.open()
    assert dt.version() == 32  # 1 create + 4 x 8 appends, no commit lost or overwritten
    assert rows(cfg, marker) == (161, 161)
    assert [dt.transaction_version(f"{cfg.group}/t/{i}") for i in range(4)] == [7, 7, 7, 7]


def test_concurrent_merges_write_every_event_once(env):
    """Writers merging (event_id dedup) into the same partitions at once: a merge that loses the race is made again
    on the new version; every event lands once, and so does the copy that two writers hold at the same time."""
    cfg = load_config(env)
    marker = str(uuid.uuid4())
    table = EventTable(cfg)
    table.append(to_arrow([record(marker).stored()]), {("t", 99): 0})
    shared = record(marker)

    def commit(i, j):
        table.append(
            to_arrow([record(marker).stored() for _n in range(5)] + ([shared.stored()] if j == 0 else [])),
            {("t", i): j},
        )

    errors = concurrently(3, 3, commit)
    assert errors == []
    assert rows(cfg, marker) == (47, 47)


def test_event_id_dedup_drops_retried_posts(env):
    cfg = load_config(env)
    assert cfg.dedup == "event_id"  # the default
    marker = str(uuid.uuid4())
    table = EventTable(cfg)
    first = [record(marker) for _n in range(20)]
    table.append(to_arrow([r.stored() for r in first]), {("t", 0): 0})
    # Five retried events (one without a client timestamp: the API gave the retry a later time, here the next day)
    # and three new ones.
    later = first[0].timestamp + dt.timedelta(days=1)
    again = [first[0].model_copy(update={"timestamp": later, "received_at": later}), *first[1:5]]
    again += [record(marker) for _n in range(3)]
    assert table.append(to_arrow([r.stored() for r in again]), {("t", 0): 1}) == 3
    assert rows(cfg, marker) == (23, 23)


def test_a_retried_post_is_written_once_end_to_end(kafka, env):
    """The same event_id twice, the second with a later server timestamp (a retried POST without a timestamp),
    in separate batches, and twice within one batch: one row each, the first copy."""
    cfg = load_config({**env, "DELTA_BATCH_SECONDS": "1"})
    marker = str(uuid.uuid4())
    w, t = run_writer(cfg)
    try:
        first = record(marker)
        produce(kafka, [first])
        assert wait_rows(cfg, marker, (1, 1)) == (1, 1)
        later = utcnow()
        other = record(marker)
        produce(
            kafka,
            [
                first.model_copy(update={"timestamp": later, "received_at": later}),
                other,
                other.model_copy(update={"page": "/copy"}),
            ],
        )
        assert wait_rows(cfg, marker, (2, 2)) == (2, 2)
        time.sleep(3)
        assert rows(cfg, marker) == (2, 2)
    finally:
        w.stop()
        t.join(30)
    table = EventTable(cfg).open().to_pyarrow_table(columns=["event_id", "event_time", "page"])
    kept = {r["event_id"]: (r["event_time"], r["page"]) for r in table.to_pylist()}
    assert kept[str(first.event_id)] == (first.timestamp, None)
    assert kept[str(other.event_id)] == (other.timestamp, None)


def test_an_ambiguous_commit_is_not_applied_twice(kafka, env):
    """The finding: a Delta commit that landed although the call failed (its answer lost) was written again by the
    retry. The writer now asks the table (the commit's app transactions) before writing again. With the cheaper
    offsets-only dedup, so that the event_id merge cannot hide a second write."""
    cfg = load_config({**env, "DELTA_DEDUP": "offsets", "DELTA_BATCH_ROWS": "100", "DELTA_BATCH_SECONDS": "0.5"})
    marker = str(uuid.uuid4())
    w = Writer(cfg)
    real, failures = w.table.append, []

    def append_then_lose_the_answer(data, offsets):
        n = real(data, offsets)
        if not failures:
            failures.append(n)
            raise OSError("connection reset after the commit was sent (injected)")
        return n

    w.table.append = append_then_lose_the_answer
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        produce(kafka, [record(marker) for _n in range(50)])
        assert wait_rows(cfg, marker, (50, 50)) == (50, 50)
        time.sleep(4)  # the retry has happened (backoff 1 s)
        assert failures, "the injected failure did not happen"
        assert rows(cfg, marker) == (50, 50)
    finally:
        w.stop()
        t.join(30)


def test_rows_arrow_refuses_are_returned_and_the_rest_written(kafka, env):
    """Per-record isolation in the writer: a record that Arrow cannot hold (built here without validation; the
    contract keeps it out of Kafka) is refused with the reason, the others are written, and a retry of the batch after
    the commit refuses it again (so it is parked) without writing the others twice."""
    cfg = load_config({**env, "DELTA_DEDUP": "offsets"})
    marker = str(uuid.uuid4())
    good = [record(marker).stored() for _n in range(5)]
    bad = good[0]._replace(event_id=str(uuid.uuid4()), page="\ud800")
    batch = [*good[:2], bad, *good[2:]]
    w = Writer(cfg)
    w.positions = [("t", 0, i) for i in range(len(batch))]
    done = w.write(batch, {("t", 0): len(batch) - 1})
    assert (done.written, done.skipped) == (5, 0)
    assert [i for i, _unused in done.rejected] == [2]
    assert "Delta table refused the row" in done.rejected[0][1]
    again = w.write(batch, {("t", 0): len(batch) - 1})  # redelivered after the commit landed
    assert (again.written, [i for i, _unused in again.rejected]) == (0, [2])
    assert rows(cfg, marker) == (5, 5)


def test_maintenance_compacts_vacuums_and_restores(env):
    cfg = load_config(env)
    marker = str(uuid.uuid4())
    table = EventTable(cfg)
    for i in range(6):
        table.append(to_arrow([record(marker).stored() for _n in range(10)]), {("t", 0): i})
    dt = table.open()
    before = len(dt.file_uris())
    v_before = dt.version()
    metrics = compact(dt)
    assert metrics["numFilesRemoved"] >= 6
    dt = table.open()
    assert len(dt.file_uris()) < before
    assert rows(cfg, marker) == (60, 60)
    assert vacuum(dt, retention_hours=168, dry_run=True) == []  # nothing is older than the retention yet
    restore(dt, version=2)  # time travel: back to the table after its third commit
    assert rows(cfg, marker) == (30, 30)
    assert table.open().version() == v_before + 2  # compaction and restore are commits; history is kept


def test_tls_is_verified(env):
    """Without the platform's CA the object store's certificate is refused."""
    cfg = load_config({**env, "DELTA_S3_CA_FILE": ""})
    os.environ.pop("SSL_CERT_FILE", None)
    code = (
        "from delta_writer.config import load_config; from delta_writer.table import EventTable;"
        "EventTable(load_config()).open()"
    )
    penv = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    penv.update({**env, "DELTA_S3_CA_FILE": "", "PYTHONPATH": os.pathsep.join(sys.path)})
    r = subprocess.run([sys.executable, "-c", code], env=penv, capture_output=True, check=False, text=True, timeout=120)
    assert r.returncode != 0
    assert "certificate" in (r.stderr + r.stdout).lower()
    assert cfg.s3_ca_file is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DELTA_TABLE_URI": "/tmp/table"}, "DELTA_TABLE_URI must be an s3:// URI"),
        ({"DELTA_S3_ENDPOINT": "http://127.0.0.1:1"}, "DELTA_S3_ENDPOINT must be https://"),
        ({"DELTA_DEDUP": "maybe"}, "DELTA_DEDUP is malformed ('maybe'): must be one of offsets, event_id"),
        ({"DELTA_S3_SECRET_KEY": ""}, "DELTA_S3_SECRET_KEY is required but not set"),
        ({"DELTA_RETENTION_DAYS": "0"}, "DELTA_RETENTION_DAYS is malformed ('0')"),
        ({"DELTA_ANONYMIZE_AFTER_DAYS": "a month"}, "DELTA_ANONYMIZE_AFTER_DAYS is malformed ('a month')"),
    ],
)
def test_bad_configuration_is_named(env, change, message):
    from analytics_common.config import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config({**env, **change})
    assert message in str(e.value)


def test_the_lifecycle_expires_old_days_and_anonymizes_old_addresses(env):
    """Rows of days past the retention leave the table, and after a vacuum every data file; client addresses of days
    past the anonymisation window lose their last part; fresher rows stay as they were; a second run changes
    nothing."""
    cfg = load_config({**env, "DELTA_TABLE_URI": f"{env['DELTA_TABLE_URI']}-lifecycle-{uuid.uuid4().hex[:8]}"})
    table = EventTable(cfg)
    now = utcnow()

    def aged(days, ip):
        t = now - dt.timedelta(days=days)
        metadata = {"ip_address": ip, "user_agent": "ua"} if ip else {"user_agent": "ua"}
        return EventRecord(
            event_id=uuid.uuid4(), event_type="x", timestamp=t, received_at=t, metadata=metadata
        ).stored()

    old = [aged(95, "192.0.2.1"), aged(91, "2001:db8::1")]
    middle = [aged(40, "192.0.2.77"), aged(31, "2001:db8::abcd"), aged(40, None)]
    fresh = [aged(29, "192.0.2.5"), aged(0, "198.51.100.23")]
    table.append(to_arrow(old + middle + fresh), {("t", 0): 0})

    assert expire(table.open(), 90) == 2
    assert anonymize(table.open(), 30) == 2
    got = {
        r["event_id"]: r["metadata"]
        for r in table.open().to_pyarrow_table(columns=["event_id", "metadata"]).to_pylist()
    }
    assert set(got) == {r.event_id for r in middle + fresh}
    assert [got[r.event_id] for r in middle] == [
        '{"ip_address":"192.0.2.XXX","user_agent":"ua"}',
        '{"ip_address":"2001:db8::XXX","user_agent":"ua"}',
        '{"user_agent":"ua"}',
    ]
    assert [got[r.event_id] for r in fresh] == [r.metadata for r in fresh]

    version = table.open().version()
    assert (expire(table.open(), 90), anonymize(table.open(), 30)) == (0, 0)
    assert table.open().version() == version  # nothing to do: no new version

    # Vacuum (its retention set to 0 for the test) removes the files that held the expired rows and the addresses.
    table.open().vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    store, files = data_files(cfg)
    assert len(files) == len(table.open().file_uris())
    stored = [
        r for f in files for r in pq.read_table(f, filesystem=store, columns=["event_id", "metadata"]).to_pylist()
    ]
    assert {r["event_id"] for r in stored} == set(got)  # no expired row in any data file
    assert {r["metadata"] for r in stored}.isdisjoint(r.metadata for r in middle if "ip_address" in r.metadata)

    # The bucket is versioned (as the seaweedfs role makes it): the vacuumed files' data is still in the store.
    assert {r.event_id for r in old} <= version_values(cfg, "event_id")

    # The command the timer and playbooks/delta_maintenance.yml run: its standard output is the result, as JSON. With
    # no grace for old versions it removes them too.
    run = subprocess.run(
        [sys.executable, "-m", "delta_writer.main", "maintain"],
        env={**os.environ, **env, "DELTA_TABLE_URI": cfg.table_uri, "DELTA_NONCURRENT_VERSION_HOURS": "0"}
        | {"PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert (result["expired_rows"], result["anonymized_rows"], result["vacuumed"]) == (0, 0, [])
    assert "numFilesRemoved" in result["compact"]
    assert result["old_versions"]["removed"] > 0 and result["old_versions"]["bytes"] > 0
    assert version_values(cfg, "event_id") == set(got)  # no expired row in any version of any file in the store
    assert {r.metadata for r in middle if "ip_address" in r.metadata}.isdisjoint(version_values(cfg, "metadata"))


def test_old_versions_of_removed_files_leave_the_versioned_bucket(env):
    """Files compacted away and vacuumed stay in a versioned bucket as noncurrent versions: the maintenance removes
    them (and their delete markers) once noncurrent for longer than the setting, younger ones stay, a current object
    is never touched, a table whose path merely starts with this one's keeps its own, and a second run removes
    nothing."""
    base = f"{env['DELTA_TABLE_URI']}-versions-{uuid.uuid4().hex[:8]}"
    cfg, sibling = load_config({**env, "DELTA_TABLE_URI": base}), load_config({**env, "DELTA_TABLE_URI": base + "x"})
    for c in (cfg, sibling):
        table = EventTable(c)
        table.append(to_arrow([record("alice", user_id="alice").stored() for _n in range(5)]), {("t", 0): 0})
        table.append(to_arrow([record("bob", user_id="bob").stored() for _n in range(5)]), {("t", 0): 1})
        compact(table.open())
        table.open().vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        assert "alice" in version_values(c, "user_id")
    s3, bucket, prefix = object_store(cfg)
    assert prefix.endswith("/")
    sibling_before = entries(sibling)
    held = entries(cfg)
    # Each removed file: its data a noncurrent version behind a current delete marker.
    assert ("version", False) in {(kind, latest) for _key, kind, latest in held}
    assert ("marker", True) in {(kind, latest) for _key, kind, latest in held}

    young = expire_versions(s3, bucket, prefix, dt.timedelta(hours=1))
    assert (young["removed"], entries(cfg)) == (0, held) and young["kept"] >= 2
    dry = expire_versions(s3, bucket, prefix, dt.timedelta(0), dry_run=True)
    assert dry["removed"] >= 4 and entries(cfg) == held  # two files' data and delete markers, at least

    done = expire_versions(s3, bucket, prefix, dt.timedelta(0))
    assert done["removed"] == dry["removed"] and done["bytes"] > 0
    left = entries(cfg)
    assert left and all(latest and kind == "version" for _key, kind, latest in left), left
    current = sorted(key for key, kind, latest in held if latest and kind == "version")
    assert sorted(key for key, _kind, _latest in left) == current
    assert version_values(cfg, "user_id") == {"alice", "bob"}  # the compacted file, whole
    assert EventTable(cfg).open().to_pyarrow_table().num_rows == 10
    assert entries(sibling) == sibling_before
    assert expire_versions(s3, bucket, prefix, dt.timedelta(0))["removed"] == 0


def entries(cfg) -> list[tuple[str, str, bool]]:
    """Every (key, version or marker, current) the bucket holds under the table's folder."""
    s3, bucket, prefix = object_store(cfg)
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        out += [(v["Key"], "version", v["IsLatest"]) for v in page.get("Versions", [])]
        out += [(m["Key"], "marker", m["IsLatest"]) for m in page.get("DeleteMarkers", [])]
    return sorted(out)


def version_values(cfg, column) -> set:
    """The column's values in every version of every data file the bucket holds under the table's folder."""
    s3, bucket, prefix = object_store(cfg)
    out = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            if v["Key"].endswith(".parquet") and "/_delta_log/" not in v["Key"]:
                body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
                out |= set(pq.read_table(pa.BufferReader(body), columns=[column]).column(column).to_pylist())
    return out


def subject_cli(env, uri, *args, stdin):
    """`delta-writer subject ...` as playbooks/privacy_erase.yml and privacy_export.yml run it."""
    run = subprocess.run(
        [sys.executable, "-m", "delta_writer.main", "subject", *args],
        env={**os.environ, **env, "DELTA_TABLE_URI": uri, "PYTHONPATH": os.pathsep.join(sys.path)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def test_a_subject_is_exported_then_erased_from_the_table_and_every_data_file(env, tmp_path):
    """Several subjects' events in the table (and in files already compacted away): the export of one equals what was
    stored; its erase removes its rows from the current version and, with the purge, from every data file of the
    table, the other subjects untouched; a second erase removes nothing."""
    cfg = load_config({**env, "DELTA_TABLE_URI": f"{env['DELTA_TABLE_URI']}-subject-{uuid.uuid4().hex[:8]}"})
    table = EventTable(cfg)
    now = utcnow()

    def event(user, session, days=0, **kw):
        t = now - dt.timedelta(days=days, minutes=len(kw))
        return EventRecord(
            event_id=uuid.uuid4(), event_type="view", user_id=user, session_id=session, timestamp=t, received_at=t,
            metadata={"ip_address": "192.0.2.9", "user_agent": "ua"}, **kw,
        ).stored()  # fmt: skip

    alice = [event("alice", "s-a1", properties={"n": 1.5, "t": "é"}), event("alice", "s-a2", days=3, page="/p")]
    alice.append(event("alice", "s-a1", days=1))
    others = [event("bob", "s-b1"), event("bob", "s-a1-not"), event(None, "s-x", days=3), event("alice's", "s-q")]
    others.append(event("o'brien\\", "s-o"))
    table.append(to_arrow(alice[:1] + others[:2]), {("t", 0): 0})
    table.append(to_arrow(alice[1:] + others[2:]), {("t", 0): 1})
    compact(table.open())  # the first files now sit outside the current version, still holding alice's rows

    exported = subject_cli(env, cfg.table_uri, "export", "--by", "user_id", "--out", str(tmp_path / "a.jsonl"),
                           "--parquet", str(tmp_path / "a.parquet"), stdin="alice\n")  # fmt: skip
    assert exported["rows"] == 3
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    expected = sorted(alice, key=lambda r: (r.timestamp, r.event_id))
    assert [r["event_id"] for r in lines] == [r.event_id for r in expected]
    for got, r in zip(lines, expected, strict=True):
        assert (got["user_id"], got["session_id"], got["page"]) == (r.user_id, r.session_id, r.page)
        assert dt.datetime.fromisoformat(got["event_time"]) == r.timestamp
        assert (got["properties"], got["metadata"]) == (json.loads(r.properties), json.loads(r.metadata))
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o600
    assert pq.read_table(tmp_path / "a.parquet").num_rows == 3

    assert subject_cli(env, cfg.table_uri, "erase", "--by", "user_id", "--dry-run", stdin="alice\n")["rows"] == 3
    assert subject_rows_of(table, "alice") == 3  # the dry run removed nothing
    # Files younger than the purge's grace are left to vacuum (they could be a commit in flight).
    kept = subject_cli(env, cfg.table_uri, "erase", "--by", "user_id", "--purge-after-minutes", "60", stdin="alice\n")
    assert (kept["rows"], kept["purged_files"]) == (3, 0) and kept["files_left_for_vacuum"] >= 2
    assert "alice" in stored_values(cfg, "user_id")  # still in files outside the current version
    done = subject_cli(env, cfg.table_uri, "erase", "--by", "user_id", "--purge-after-minutes", "0", stdin="alice\n")
    assert (done["rows"], done["files_left_for_vacuum"]) == (0, 0) and done["purged_files"] == kept[
        "files_left_for_vacuum"
    ]
    assert subject_rows_of(table, "alice") == 0
    assert "alice" not in stored_values(cfg, "user_id")  # in no data file of the table, current or not
    # The log still lists the purged files as removed: a later purge passes over them (they are gone).
    assert subject_cli(env, cfg.table_uri, "erase", "--by", "user_id", "--purge-after-minutes", "0", stdin="nobody\n")

    current = table.open().to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()
    assert sorted(current) == sorted(r.event_id for r in others)
    version = table.open().version()
    again = subject_cli(env, cfg.table_uri, "erase", "--by", "user_id", stdin="alice\n")
    assert again["rows"] == 0 and table.open().version() == version  # nothing to remove: no new version

    # By session: only that session's rows, whoever the user.
    gone = subject_cli(env, cfg.table_uri, "erase", "--by", "session_id", stdin="s-x\n")
    assert gone["rows"] == 1
    assert len(table.open().to_pyarrow_table(columns=["event_id"])) == len(others) - 1
    # A quote and a backslash in the id are data, not SQL.
    assert subject_cli(env, cfg.table_uri, "count", "--by", "user_id", stdin="o'brien\\\n")["rows"] == 1
    assert subject_cli(env, cfg.table_uri, "erase", "--by", "user_id", stdin="o'brien\\\n")["rows"] == 1
    assert subject_rows_of(table, "alice's") == 1


def subject_rows_of(table, user):
    return sum(1 for v in table.open().to_pyarrow_table(columns=["user_id"]).column("user_id").to_pylist() if v == user)


def stored_values(cfg, column):
    """The column's values in every data file under the table's folder (in the current version or not)."""
    store, files = data_files(cfg)
    return {v for f in files for v in pq.read_table(f, filesystem=store, columns=[column]).column(column).to_pylist()}


def data_files(cfg):
    """(the store as a pyarrow filesystem, every data file under the table's folder: in the current version or not)."""
    store = pafs.S3FileSystem(
        access_key=cfg.s3_access_key,
        secret_key=cfg.s3_secret_key,
        endpoint_override=cfg.s3_endpoint.removeprefix("https://"),
        scheme="https",
        region=cfg.s3_region,
        tls_ca_file_path=str(cfg.s3_ca_file),
    )
    listing = store.get_file_info(pafs.FileSelector(cfg.table_uri.removeprefix("s3://"), recursive=True))
    return store, [f.path for f in listing if f.path.endswith(".parquet") and "/_delta_log/" not in f.path]


def test_the_exports_parquet_has_the_tables_columns():
    """playbooks/privacy_export.yml writes both stores' exports as Parquet with the events_parquet module, which names
    the table's columns itself (it runs on the controller, without this package): they must stay the same."""
    module = Path(__file__).resolve().parents[3] / "plugins" / "modules" / "events_parquet.py"
    columns = next(
        ast.literal_eval(node.value)
        for node in ast.parse(module.read_text()).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COLUMNS"
    )
    kinds = {"string": pa.string(), "json": pa.string(), "time": pa.timestamp("us", tz="UTC")}
    table = SCHEMA.remove(SCHEMA.get_field_index("event_date"))
    assert pa.schema([(name, kinds[kind]) for name, kind in columns]) == table
