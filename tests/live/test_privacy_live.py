"""pg_subject against a real PostgreSQL (TLS, SCRAM) holding the role's schema: a subject's events exported as stored
(and as Parquet by events_parquet), erased from every partition with the others untouched, recorded by HMAC only, and
a second erase removes nothing; s3_object_versions and s3_upload against SeaweedFS."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import psycopg
import pyarrow.parquet as pq
import pytest
from ansible_collections.analytics.platform.plugins.module_utils.privacy import subject_digest
from ansible_collections.analytics.platform.plugins.modules import (
    events_parquet,
    pg_subject,
    s3_object_versions,
    s3_upload,
)
from conftest import s3_login
from psycopg import sql

KEY = "k3y-" + "Zq8wVt2m" * 5
NOW = dt.datetime.now(dt.UTC).replace(microsecond=123456)
# (user_id, session_id, days ago, properties): alice in three partitions, the others beside her.
EVENTS = [
    ("alice", "s-a1", 0, {"n": 1.5, "t": "é", "deep": {"x": [1, None]}}),
    ("alice", "s-a2", 40, {}),  # the default partition
    ("alice", "s-a1", 400, {"n": 1e-7}),
    ("bob", "s-b1", 0, {}),
    ("bob", "s-a1-other", 150, {}),
    ("alice's", "s-q", 0, {}),
    (None, "s-x", 400, {}),
    ("o'brien\\", "s-o", 0, {}),
]


@pytest.fixture(scope="module")
def db(postgres):
    name = f"privacy_{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    rows = []
    with psycopg.connect(postgres.dsn(name), autocommit=True) as c:
        c.execute("ALTER TABLE analytics_events DETACH PARTITION analytics_events_default")
        start = (NOW - dt.timedelta(days=10)).date()
        part = sql.SQL("CREATE TABLE {} PARTITION OF analytics_events FOR VALUES FROM ({}) TO ({})")
        c.execute(part.format(sql.Identifier("analytics_events_recent"), start, NOW.date() + dt.timedelta(days=2)))
        c.execute(
            part.format(
                sql.Identifier("analytics_events_older"), start - dt.timedelta(days=500), start - dt.timedelta(days=90)
            )
        )
        c.execute("ALTER TABLE analytics_events ATTACH PARTITION analytics_events_default DEFAULT")
        for user, session, days, props in EVENTS:
            t = NOW - dt.timedelta(days=days)
            row = (str(uuid.uuid4()), "view", session, user, t, t, "/p", props, {"ip_address": "192.0.2.1"})
            c.execute(
                "INSERT INTO analytics_events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (*row[:7], json.dumps(row[7]), json.dumps(row[8])),
            )
            c.execute("INSERT INTO analytics_event_ids VALUES (%s, %s)", (row[0], t))
            rows.append(row)
    return {"name": name, "rows": rows, "dsn": postgres.dsn(name)}


def args(postgres, db, **kw):
    return {
        "db": db["name"],
        "login_host": "127.0.0.1",
        "port": postgres.port,
        "login_password": postgres.password,
        "ssl_mode": "verify-full",
        "ca_path": str(postgres.pki["ca"]),
        "by": "user_id",
        **kw,
    }


def users(db) -> dict:
    with psycopg.connect(db["dsn"]) as c:
        return dict(c.execute("SELECT coalesce(user_id, '-'), count(*) FROM analytics_events GROUP BY 1").fetchall())


def test_the_export_of_a_subject_equals_what_was_stored(run_module, postgres, db, tmp_path):
    out = tmp_path / "alice.jsonl"
    r = run_module(pg_subject, args(postgres, db, subject="alice", action="export", dest=str(out)))
    assert not r.failed, r.result["msg"]
    lines = out.read_text(encoding="utf-8").splitlines()
    expected = sorted((row for row in db["rows"] if row[3] == "alice"), key=lambda row: (row[4], row[0]))
    assert r.result["rows"] == len(lines) == 3
    for line, row in zip(lines, expected, strict=True):
        got = json.loads(line)
        assert (got["event_id"], got["session_id"], got["user_id"], got["page"]) == (row[0], row[2], row[3], row[6])
        assert dt.datetime.fromisoformat(got["event_time"]) == row[4]
        assert (got["properties"], got["metadata"]) == (row[7], row[8])
    assert out.stat().st_mode & 0o777 == 0o600
    assert r.result["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()

    # The same events as Parquet (the Delta table's columns): equal to the lines, private, a second run unchanged.
    parquet = tmp_path / "alice.parquet"
    dry = run_module(events_parquet, {"src": str(out), "dest": str(parquet), "_ansible_check_mode": True})
    assert (dry.result["changed"], dry.result["rows"], parquet.exists()) == (True, 3, False)
    made = run_module(events_parquet, {"src": str(out), "dest": str(parquet)})
    assert not made.failed, made.result["msg"]
    assert (made.result["changed"], made.result["rows"]) == (True, 3)
    table = pq.read_table(parquet)
    assert str(table.schema.field("event_time").type) == "timestamp[us, tz=UTC]"
    for got, line in zip(table.to_pylist(), lines, strict=True):
        want = json.loads(line)
        assert (got["event_id"], got["user_id"], got["page"]) == (want["event_id"], want["user_id"], want["page"])
        assert got["event_time"] == dt.datetime.fromisoformat(want["event_time"])
        assert (json.loads(got["properties"]), json.loads(got["metadata"])) == (want["properties"], want["metadata"])
    assert parquet.stat().st_mode & 0o777 == 0o600
    assert not run_module(events_parquet, {"src": str(out), "dest": str(parquet)}).result["changed"]
    (tmp_path / "bad.jsonl").write_text(lines[0] + "\n[1, 2]\n")
    bad = run_module(events_parquet, {"src": str(tmp_path / "bad.jsonl"), "dest": str(tmp_path / "bad.parquet")})
    assert bad.failed and "bad.jsonl line 2: not an exported event" in bad.result["msg"], bad.result


def test_a_subject_is_erased_from_every_partition_and_recorded_without_its_id(run_module, postgres, db):
    before = users(db)
    erase = args(postgres, db, subject="alice", action="erase", erasure_key=KEY, request="DPO-2026/0142")

    r = run_module(pg_subject, {**erase, "_ansible_check_mode": True})
    assert (r.result["rows"], r.result["changed"]) == (3, False)
    assert sorted(r.result["partitions"].values()) == [1, 1, 1]  # one in each of the three partitions
    assert users(db) == before  # check mode removed nothing

    r = run_module(pg_subject, erase)
    assert not r.failed, r.result["msg"]
    assert (r.result["rows"], r.result["recorded"], r.result["changed"]) == (3, True, True)
    after = users(db)
    assert "alice" not in after
    assert after == {u: n for u, n in before.items() if u != "alice"}  # the others untouched
    with psycopg.connect(db["dsn"]) as c:
        claims = c.execute("SELECT count(*) FROM analytics_event_ids").fetchone()[0]
        erasures = c.execute("SELECT subject_digest, first_request, rows_erased FROM analytics_erasures").fetchall()
    assert claims == len(EVENTS)  # the claims stay: an erased event that Kafka redelivers is still skipped
    assert erasures == [(subject_digest(KEY, "user_id", "alice"), "DPO-2026/0142", 3)]
    assert "alice" not in json.dumps(erasures)

    again = run_module(pg_subject, erase)
    assert (again.result["rows"], again.result["recorded"], again.result["changed"]) == (0, False, False)

    # A quote and a backslash in the id are data; by session: that session's events only, whoever the user.
    r = run_module(pg_subject, {**erase, "subject": "o'brien\\"})
    assert r.result["rows"] == 1 and "alice's" in users(db)
    r = run_module(pg_subject, {**erase, "by": "session_id", "subject": "s-x"})
    assert r.result["rows"] == 1 and "-" not in users(db)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"erasure_key": "short"}, "erasure_key: at least 32 characters"),
        ({"request": "jane@example.com"}, "request: 'jane@example.com' is not a reference"),
        ({"subject": ""}, "subject: the data subject's id is empty"),
        ({"login_password": "wrong-password"}, "cannot connect to"),
        ({"db": "nowhere"}, "cannot connect to nowhere"),
    ],
)
def test_bad_input_is_refused_with_the_option_named(run_module, postgres, db, change, message):
    erase = args(postgres, db, subject="bob", action="erase", erasure_key=KEY, request="R-1")
    before = users(db)
    r = run_module(pg_subject, {**erase, **change})
    assert r.failed and message in r.result["msg"]
    assert users(db) == before


def test_a_purged_objects_every_version_leaves_a_versioned_bucket(run_module, seaweedfs):
    """s3_object_versions on SeaweedFS: every version and delete marker of exactly the keys given go (a key sharing
    their prefix stays); check mode and a second run remove nothing."""
    admin = seaweedfs.client("admin")
    bucket = f"erase-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(Bucket=bucket)
    admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key, sibling = "t/event_date=2026-12-01/part-1.parquet", "t/event_date=2026-12-01/part-1.parquet.keep"
    for body in (b"alice v1", b"alice v2"):
        admin.put_object(Bucket=bucket, Key=key, Body=body)
    admin.delete_object(Bucket=bucket, Key=key)  # what vacuum or the purge does: a delete marker, the data kept
    admin.put_object(Bucket=bucket, Key=sibling, Body=b"bob")

    def held():
        page = admin.list_object_versions(Bucket=bucket, Prefix="t/")
        return sorted(
            (v["Key"], "marker" if v in page.get("DeleteMarkers", []) else "data")
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        )

    assert held().count((key, "data")) == 2  # deleted, yet both versions still hold the data
    args = {
        **s3_login(seaweedfs),
        "bucket": bucket,
        "keys": [key, "t/never-written"],
    }
    dry = run_module(s3_object_versions, {**args, "_ansible_check_mode": True})
    assert (dry.result["removed"], dry.result["objects"]) == (3, 1) and len(held()) == 4
    done = run_module(s3_object_versions, args)
    assert not done.failed, done.result["msg"]
    assert (done.result["removed"], done.result["changed"]) == (3, True)
    assert held() == [(sibling, "data")]
    again = run_module(s3_object_versions, args)
    assert (again.result["removed"], again.result["changed"]) == (0, False)
    bad = run_module(s3_object_versions, {**args, "keys": ["/abs"]})
    assert bad.failed and "keys: each key is a path inside the bucket" in bad.result["msg"]


def test_an_export_is_delivered_to_a_bucket_checked_and_read_back(run_module, seaweedfs, tmp_path):
    """s3_upload on SeaweedFS: every file of the folder lands under the prefix with its bytes and SHA-256; a second run
    uploads nothing, a changed file goes again; check mode uploads nothing; bad settings are named."""
    admin = seaweedfs.client("admin")
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(Bucket=bucket)
    folder = tmp_path / "DSAR-1"
    folder.mkdir()
    files = {"postgresql.jsonl": b'{"user_id":"alice"}\n', "manifest.json": b"{}\n", "delta.parquet": b"PAR1"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "sub").mkdir()  # not a file: not uploaded
    args = {
        **s3_login(seaweedfs),
        "bucket": bucket,
        "prefix": "/privacy-exports/lab/DSAR-1/",
        "src": str(folder),
    }

    def stored():
        listing = admin.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: admin.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}

    dry = run_module(s3_upload, {**args, "_ansible_check_mode": True})
    assert (len(dry.result["uploaded"]), dry.result["changed"], stored()) == (3, True, {})
    done = run_module(s3_upload, args)
    assert not done.failed, done.result["msg"]
    assert done.result["location"] == f"s3://{bucket}/privacy-exports/lab/DSAR-1/"
    assert stored() == {f"privacy-exports/lab/DSAR-1/{n}": data for n, data in files.items()}
    head = admin.head_object(Bucket=bucket, Key="privacy-exports/lab/DSAR-1/postgresql.jsonl")
    assert head["Metadata"]["sha256"] == hashlib.sha256(files["postgresql.jsonl"]).hexdigest()
    again = run_module(s3_upload, args)
    assert (again.result["changed"], len(again.result["unchanged"])) == (False, 3)
    (folder / "manifest.json").write_bytes(b'{"files": []}\n')
    one = run_module(s3_upload, {**args, "files": ["manifest.json"]})
    assert one.result["uploaded"] == ["privacy-exports/lab/DSAR-1/manifest.json"]
    assert stored()["privacy-exports/lab/DSAR-1/manifest.json"] == b'{"files": []}\n'

    for change, message in [
        ({"src": str(tmp_path / "missing")}, "src: "),
        ({"files": ["../etc"]}, "files: each is a name in src"),
        ({"files": ["absent.json"]}, "files: absent.json is not a file"),
        ({"secret_key": "wrong-secret"}, "HeadObject operation: Forbidden"),  # HEAD has no body to say more
    ]:
        bad = run_module(s3_upload, {**args, **change})
        assert bad.failed and message in bad.result["msg"], (change, bad.result["msg"])
