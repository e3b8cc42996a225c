"""PostgreSQL across zones under Patroni and etcd, verified against the running servers: replication, TLS-only access,
retention, anonymisation, encrypted backups and WAL in the object store, bad input refused in preflight, then (last)
automatic failover, a point-in-time restore onto a fresh host while the lost leader is still gone, rejoin and a
switchover back."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import (
    address,
    ansible_playbook,
    assert_check_mode_changes_nothing,
    assert_passes,
    assert_refused,
    changed_per_host,
    http,
    installed_fingerprint,
    inventory_dir,
    lab_ca,
    lab_host,
    lab_secret,
    psql,
    run_audit,
    served_fingerprint,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[3]
CA = "/etc/analytics-platform/pki/ca.crt"


def remote(host, target, user, password, sql, sslmode="verify-full", db="analytics"):
    """A network connection from `host` to `target` (its address), as `user`."""
    conn = f"host={address(target)} port=5432 dbname={db} user={user} sslmode={sslmode} sslrootcert={CA}"
    return host.run(f"PGPASSWORD={shlex.quote(password)} psql -XAtq {shlex.quote(conn)} -c {shlex.quote(sql)}")


@pytest.fixture(scope="module")
def pg_a():
    return lab_host("pg-a")


@pytest.fixture(scope="module")
def pg_b():
    return lab_host("pg-b")


def insert_sql(marker, days_ago=0, ip="192.0.2.123"):
    return (
        "INSERT INTO analytics_events (event_id, event_type, event_time, received_at, properties, metadata) "
        f"VALUES ('{uuid.uuid4()}', 'verify', now() - interval '{days_ago} days', now(), "
        f'\'{{"marker": "{marker}"}}\', \'{{"ip_address": "{ip}"}}\')'
    )


def test_row_written_on_primary_is_read_on_replica(pg_a, pg_b):
    marker = str(uuid.uuid4())
    r = remote(pg_a, "pg-a", "analytics_sink", lab_secret("pg_sink"), insert_sql(marker))
    assert r.rc == 0, r.stderr
    deadline = time.time() + 15
    while time.time() < deadline:
        if psql(pg_b, f"SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{marker}'") == "1":
            break
        time.sleep(0.5)
    assert psql(pg_b, f"SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{marker}'") == "1"
    assert psql(pg_b, "SELECT pg_is_in_recovery()", db="postgres") == "t"
    assert psql(pg_a, "SELECT state FROM pg_stat_replication", db="postgres") == "streaming"
    assert psql(pg_a, "SELECT ssl FROM pg_stat_ssl JOIN pg_stat_replication USING (pid)", db="postgres") == "t"


def test_sink_may_insert_but_not_read_or_delete(pg_a):
    pw = lab_secret("pg_sink")
    assert remote(pg_a, "pg-a", "analytics_sink", pw, "SELECT properties, metadata FROM analytics_events").rc != 0
    assert remote(pg_a, "pg-a", "analytics_sink", pw, "DELETE FROM analytics_events").rc != 0


def test_non_tls_connection_is_refused(pg_a):
    r = remote(pg_a, "pg-a", "analytics_sink", lab_secret("pg_sink"), "SELECT 1", sslmode="disable")
    assert r.rc != 0
    assert "no pg_hba.conf entry" in r.stderr and "no encryption" in r.stderr


@pytest.mark.parametrize(
    ("user", "password"), [("analytics_sink", "wrong-password-123456"), ("analytics", "analytics123")]
)
def test_wrong_and_default_passwords_are_refused(pg_a, user, password):
    r = remote(pg_a, "pg-a", user, password, "SELECT 1")
    assert r.rc != 0
    assert "password authentication failed" in r.stderr or "no pg_hba.conf entry" in r.stderr


def test_pg_hba_has_only_hostssl_scram_lines(pg_a):
    rules = psql(pg_a, "SELECT type, auth_method FROM pg_hba_file_rules", db="postgres").splitlines()
    assert rules and set(rules) <= {"local|peer", "hostssl|scram-sha-256", "local|scram-sha-256"}
    # The local password lines: Patroni's replication connection to the replica's own socket, and pgbouncer's logins
    # for the roles it serves (postgresql_pgbouncer is on in this scenario).
    local = "SELECT database, user_name FROM pg_hba_file_rules WHERE type = 'local' AND auth_method <> 'peer'"
    assert sorted(psql(pg_a, local, db="postgres").splitlines()) == [
        "{analytics}|{analytics_reader}",
        "{analytics}|{analytics_sink}",
        "{replication}|{replicator}",
    ]
    assert psql(pg_a, "SHOW password_encryption", db="postgres") == "scram-sha-256"
    assert psql(pg_a, "SHOW ssl", db="postgres") == "on"
    assert "pgaudit" in psql(pg_a, "SHOW shared_preload_libraries", db="postgres")
    assert psql(pg_a, "SHOW log_connections", db="postgres") == "on"


# --- pgbouncer (postgresql_pgbouncer) ---------------------------------------------------------------------------------


def bouncer(host, targets, sql, password=None, sslmode="verify-full", user="analytics_sink", attrs="any"):
    """A connection from `host` to pgbouncer on `targets` (members, in this order) as `user`."""
    hosts = ",".join(address(t) for t in targets)
    conn = (
        f"host={hosts} port=6432 dbname=analytics user={user} sslmode={sslmode} sslrootcert={CA} "
        f"target_session_attrs={attrs} connect_timeout=5"
    )
    pw = lab_secret("pg_sink") if password is None else password
    return host.run(f"PGPASSWORD={shlex.quote(pw)} psql -XAtq {shlex.quote(conn)} -c {shlex.quote(sql)}")


def test_pgbouncer_pools_client_connections_into_few_server_connections(pg_a):
    """Twelve clients one after the other, each a new TLS connection with a SCRAM login to pgbouncer (certificate
    verified for pg-a), are served by the server connection pgbouncer already held; the row one wrote is there."""
    marker = str(uuid.uuid4())
    r = bouncer(pg_a, ["pg-a"], insert_sql(marker))
    assert r.rc == 0, r.stderr
    assert psql(pg_a, f"SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{marker}'") == "1"
    since = psql(pg_a, "SELECT now()", db="postgres")
    log = "/var/log/postgresql/pgbouncer.log"
    logins = f"grep -c 'login attempt: db=analytics user=analytics_sink tls=TLSv1.[23]' {log} || true"
    before = int(pg_a.check_output(logins))
    for client in range(12):
        r = bouncer(pg_a, ["pg-a"], "SELECT 1")
        assert r.rc == 0 and r.stdout.strip() == "1", (client, r.stderr)
    assert int(pg_a.check_output(logins)) - before >= 12, pg_a.check_output(f"tail -5 {log}")
    # The server side: pgbouncer's connections over the local socket, all older than the twelve clients.
    servers = psql(
        pg_a,
        f"SELECT count(*), bool_and(backend_start < '{since}') FROM pg_stat_activity "
        "WHERE usename = 'analytics_sink' AND client_addr IS NULL",
        db="postgres",
    )
    count, older = servers.split("|")
    assert 1 <= int(count) <= 2 and older == "t", servers
    assert served_fingerprint(pg_a, "pg-a", 6432, postgres=True) == installed_fingerprint("pg-a")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sslmode": "disable"}, "SSL required"),
        ({"password": "wrong-password-123456"}, "SASL authentication failed"),
        ({"user": "analytics", "password": "analytics123"}, "login rejected"),  # no line of its pg_hba.conf
    ],
)
def test_pgbouncer_refuses_plain_text_wrong_passwords_and_unknown_users(pg_a, kwargs, message):
    r = bouncer(pg_a, ["pg-a"], "SELECT 1", **kwargs)
    assert r.rc != 0 and message in r.stderr, r.stderr


def test_clients_find_the_leader_through_every_members_pgbouncer(pg_a, pg_b):
    """The replica's pgbouncer first in the list: target_session_attrs=read-write skips it for the leader's."""
    assert bouncer(pg_a, ["pg-b"], "SELECT pg_is_in_recovery()").stdout.strip() == "t"
    r = bouncer(pg_a, ["pg-b", "pg-a"], "SELECT pg_is_in_recovery()", attrs="read-write")
    assert r.rc == 0 and r.stdout.strip() == "f", r.stderr


def test_the_audit_passes_the_database_its_logins_tls_and_secrets():
    """The hardened side of the audit's proof for the controls this scenario deploys (molecule/insecure fails each):
    TLS-only scram authentication, pgaudit and connection logging (auditd is not applicable in containers), no default
    or weak login from outside or from inside, no secret exposed, the replica streaming, fresh encrypted backups in the
    object store with WAL archived, etcd with TLS, users and peer certificates."""
    controls = [
        "db_encryption",
        "audit_logging",
        "default_passwords",
        "tls",
        "secrets",
        "db_replication",
        "db_backups",
        "etcd_security",
    ]
    endpoints = {
        "audit_tls_endpoints": [
            {"group": "postgresql", "port": 5432, "service": "postgresql", "protocol": "postgres"},
            {"group": "postgresql", "port": 6432, "service": "pgbouncer", "protocol": "postgres"},
        ]
    }
    r, results = run_audit(controls, "-e", json.dumps(endpoints))
    assert_passes(results, controls)
    bouncers = [e for e in results if e["control"] == "tls" and "pgbouncer" in json.dumps(e)]
    assert bouncers and all(e["status"] == "pass" for e in bouncers), bouncers
    assert r.returncode == 0, r.output[-2000:]


def test_expired_partition_is_dropped_by_the_retention_job(pg_a):
    job = psql(pg_a, "SELECT command FROM cron.job WHERE jobname = 'analytics-partman'")
    assert job == "CALL partman.run_maintenance_proc()"
    config = "SELECT retention FROM partman.part_config WHERE parent_table = 'public.analytics_events'"
    assert psql(pg_a, config) == "90 days"
    psql(pg_a, "SELECT partman.create_partition_time('public.analytics_events', ARRAY[now() - interval '100 days'])")
    marker = str(uuid.uuid4())
    psql(pg_a, insert_sql(marker, days_ago=100))
    old = psql(pg_a, f"SELECT tableoid::regclass FROM analytics_events WHERE properties->>'marker' = '{marker}'")
    assert old.startswith("analytics_events_p")
    psql(pg_a, "CALL partman.run_maintenance_proc()")
    assert psql(pg_a, f"SELECT to_regclass('{old}') IS NULL") == "t"
    assert psql(pg_a, f"SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{marker}'") == "0"


def test_claimed_event_ids_older_than_the_retention_are_pruned(pg_a):
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    psql(pg_a, f"INSERT INTO analytics_event_ids VALUES ('{old}', now() - interval '100 days'), ('{new}', now())")
    command = psql(pg_a, "SELECT command FROM cron.job WHERE jobname = 'analytics-event-ids'")
    assert "interval '90 days'" in command
    psql(pg_a, command)
    assert psql(pg_a, f"SELECT count(*) FROM analytics_event_ids WHERE event_id IN ('{old}', '{new}')") == "1"
    sink_rights = "SELECT has_table_privilege('analytics_sink', 'analytics_event_ids', 'INSERT')"
    assert psql(pg_a, sink_rights) == "t"


def test_old_ip_addresses_are_anonymised(pg_a):
    marker_old, marker_new = str(uuid.uuid4()), str(uuid.uuid4())
    psql(pg_a, insert_sql(marker_old, days_ago=40, ip="198.51.100.77"))
    psql(pg_a, insert_sql(marker_new, days_ago=1, ip="198.51.100.78"))
    command = psql(pg_a, "SELECT command FROM cron.job WHERE jobname = 'analytics-anonymize-ip'")
    psql(pg_a, command)
    ip = "SELECT metadata->>'ip_address' FROM analytics_events WHERE properties->>'marker' = '{}'"
    assert psql(pg_a, ip.format(marker_old)) == "198.51.100.XXX"
    assert psql(pg_a, ip.format(marker_new)) == "198.51.100.78"


ERASE = ROOT / "playbooks" / "privacy_erase.yml"
EXPORT = ROOT / "playbooks" / "privacy_export.yml"


def test_the_export_play_writes_what_was_stored_with_a_manifest(pg_a, tmp_path, monkeypatch):
    """playbooks/privacy_export.yml: the subject's events from the leader as JSON Lines equal the stored rows (content
    and count), the manifest's counts and checksums match the files, files private; check mode writes nothing."""
    import hashlib

    run = uuid.uuid4().hex[:8]
    subject = f"export-{run}"
    for days, props in [(0, '{"n": 1.5, "t": "x"}'), (3, "{}"), (40, '{"deep": {"x": [1, null]}}')]:
        psql(
            pg_a,
            "INSERT INTO analytics_events (event_id, event_type, user_id, session_id, event_time, received_at, "
            f"properties, metadata) VALUES ('{uuid.uuid4()}', 'verify', '{subject}', 's-{run}', "
            f"now() - interval '{days} days', now(), '{props}', '{{\"ip_address\": \"192.0.2.1\"}}')",
        )
    psql(
        pg_a,
        "INSERT INTO analytics_events (event_id, event_type, user_id, event_time, received_at) VALUES "
        f"('{uuid.uuid4()}', 'verify', 'not-{subject}', now(), now())",
    )
    stored = psql(
        pg_a,
        "SELECT json_agg(e ORDER BY event_time, event_id) FROM (SELECT event_id, user_id, session_id,"
        " event_time, properties, metadata FROM analytics_events "
        f"WHERE user_id = '{subject}') e",
    )
    stored = json.loads(stored)
    monkeypatch.setenv("AP_PRIVACY_SUBJECT", subject)
    args = ["-e", f"privacy_request=DSAR-{run}", "-e", f"privacy_export_dir={tmp_path}"]

    r = ansible_playbook(EXPORT, *args, "--check")
    assert r.returncode == 0 and "would export: postgresql.jsonl 3" in r.output, r.output[-3000:]
    assert not (tmp_path / f"DSAR-{run}").exists()

    r = ansible_playbook(EXPORT, *args, "-vvv")
    assert r.returncode == 0, r.output[-3000:]
    assert subject not in r.output  # no_log: the id is in no task's output
    folder = tmp_path / f"DSAR-{run}"
    lines = [json.loads(line) for line in (folder / "postgresql.jsonl").read_text().splitlines()]
    assert [x["event_id"] for x in lines] == [x["event_id"] for x in stored]
    for got, row in zip(lines, stored, strict=True):
        assert (got["user_id"], got["session_id"], got["properties"], got["metadata"]) == (
            row["user_id"],
            row["session_id"],
            row["properties"],
            row["metadata"],
        )
        assert got["event_time"].endswith("Z")
    manifest = json.loads((folder / "manifest.json").read_text())
    [entry] = manifest["files"]
    data = (folder / "postgresql.jsonl").read_bytes()
    assert (entry["name"], entry["rows"], entry["sha256"]) == ("postgresql.jsonl", 3, hashlib.sha256(data).hexdigest())
    assert {f.name: f.stat().st_mode & 0o777 for f in folder.iterdir()} == {
        "postgresql.jsonl": 0o600,
        "manifest.json": 0o600,
    }
    assert folder.stat().st_mode & 0o777 == 0o700
    assert pg_a.run("ls -d /tmp/ap-export-* 2>/dev/null").stdout.strip() == ""  # nothing left on the host

    # Delivered to a bucket (pg-x's gateway), with Parquet copies: the files arrive as made, the manifest names where,
    # the controller keeps no copy; a second run uploads nothing new. Bad settings stop it before any host is touched.
    bucket = f"exports-{run}"
    assert "error" not in pg_x_s3("admin", "create_bucket", Bucket=bucket)
    target = {
        "endpoint": f"https://{address('pg-x')}:8333",
        "bucket": bucket,
        "access_key": "admin",
        "secret_key": lab_secret("s3_admin"),
        "ca_path": lab_ca(),
    }
    settings = tmp_path / "export-s3.json"
    settings.write_text(json.dumps({"privacy_export_s3": target}))
    settings.chmod(0o600)
    shutil.rmtree(folder)
    bucket_args = [*args, "-e", f"@{settings}", "-e", "privacy_export_parquet=true"]
    r = ansible_playbook(EXPORT, *bucket_args)
    assert r.returncode == 0, r.output[-3000:]
    assert not folder.exists()
    prefix = f"privacy-exports/{Path(inventory_dir()).name}/DSAR-{run}/"
    listing = pg_x_s3("admin", "list_objects_v2", Bucket=bucket)["Contents"]
    bodies = {
        o["Key"].removeprefix(prefix): pg_x_s3("admin", "get_object", Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listing
    }
    assert sorted(bodies) == ["manifest.json", "postgresql.jsonl", "postgresql.parquet"]
    manifest = json.loads(bodies["manifest.json"])
    assert manifest["location"] == f"s3://{bucket}/{prefix}"
    assert {f["name"]: (f["rows"], f["sha256"]) for f in manifest["files"]} == {
        name: (3, hashlib.sha256(bodies[name]).hexdigest()) for name in ("postgresql.jsonl", "postgresql.parquet")
    }
    assert [json.loads(x)["event_id"] for x in bodies["postgresql.jsonl"].splitlines()] == [
        x["event_id"] for x in stored
    ]
    r = ansible_playbook(EXPORT, *bucket_args, "-e", "privacy_export_keep_local=true")
    assert r.returncode == 0 and "1 uploaded, 2 already there" in r.output, r.output[-3000:]
    assert folder.is_dir()  # kept when asked (the manifest's time changed: it went again, the rest did not)
    for extra, message in [
        ({"endpoint": "http://pg-x:8333"}, "privacy_export_s3.endpoint: an https:// URL (got 'http://pg-x:8333')"),
        ({"bucket": "Not_A_Bucket"}, "privacy_export_s3.bucket: 'Not_A_Bucket' is not a bucket name"),
        ({"secret_key": ""}, "privacy_export_s3.secret_key: not set"),
    ]:
        settings.write_text(json.dumps({"privacy_export_s3": {**target, **extra}}))
        r = ansible_playbook(EXPORT, *args, "-e", f"@{settings}")
        assert r.returncode != 0 and message in r.output, (extra, r.output[-2000:])
        assert "pg-a" not in r.output  # stopped on the controller: no host touched


def test_the_erase_play_removes_a_subject_from_every_member_and_records_it_without_the_id(
    pg_a, pg_b, tmp_path, monkeypatch
):
    """playbooks/privacy_erase.yml on the Patroni cluster: check mode counts and removes nothing; the run removes the
    subject's events on the leader and waits for the replica, others untouched; the record holds counts and no id; a
    second run removes nothing and writes nothing; the id never shows in the play's output."""
    run = uuid.uuid4().hex[:8]
    subject, other = f"subject-{run}", f"other-{run}"
    for user, days in [(subject, 0), (subject, 5), (subject, 40), (other, 0), (other, 40)]:
        psql(
            pg_a,
            "INSERT INTO analytics_events (event_id, event_type, user_id, event_time, received_at) VALUES "
            f"('{uuid.uuid4()}', 'verify', '{user}', now() - interval '{days} days', now())",
        )
    count = "SELECT count(*) FROM analytics_events WHERE user_id = '{}'"
    assert wait_for(lambda: psql(pg_b, count.format(subject)) == "3", timeout=30)
    key = tmp_path / "key.yml"
    key.write_text(f"privacy_erasure_key: {uuid.uuid4().hex}{uuid.uuid4().hex}\n")
    key.chmod(0o600)
    args = [
        "-e",
        f"@{key}",
        "-e",
        f"privacy_request=T-{run}",
        "-e",
        "privacy_requested_by=dpo",
        "-e",
        f"privacy_record_dir={tmp_path}",
    ]

    monkeypatch.setenv("AP_PRIVACY_SUBJECT", "")
    r = ansible_playbook(ERASE, *args)
    assert r.returncode != 0 and "privacy_subject: no data subject given" in r.output, r.output[-2000:]
    assert "pg-a" not in changed_per_host(r.output)  # refused before any host was touched

    monkeypatch.setenv("AP_PRIVACY_SUBJECT", subject)
    r = ansible_playbook(ERASE, *args, "--check")
    assert r.returncode == 0, r.output[-3000:]
    assert "would remove: PostgreSQL 3 rows" in r.output, r.output[-2000:]
    assert (psql(pg_a, count.format(subject)), psql(pg_b, count.format(subject))) == ("3", "3")

    r = ansible_playbook(ERASE, *args, "-vvv")  # -vvv: every task shows its arguments, unless no_log hides them
    assert r.returncode == 0, r.output[-3000:]
    assert "removed: PostgreSQL 3 rows" in r.output, r.output[-2000:]
    assert subject not in r.output  # no_log: the id is in no task's output
    assert (psql(pg_a, count.format(subject)), psql(pg_b, count.format(subject))) == ("0", "0")
    assert (psql(pg_a, count.format(other)), psql(pg_b, count.format(other))) == ("2", "2")
    [path] = list((tmp_path / "erasures").glob(f"*/T-{run}.json"))
    text = path.read_text()
    record = json.loads(text)
    assert subject not in text
    assert record["removed"]["postgresql"]["rows"] == 3 and record["removed"]["postgresql"]["leader"] == "pg-a"
    assert record["removed"]["postgresql"]["left_on_replicas"] == {"pg-b": 0}
    assert record["recorded_for_dead_letter_replay"] is True
    assert any(h["store"] == "PostgreSQL backups (pgBackRest)" for h in record["still_held"]), record
    assert psql(pg_a, f"SELECT rows_erased FROM analytics_erasures WHERE first_request = 'T-{run}'") == "3"

    path.unlink()
    r = ansible_playbook(ERASE, *args)
    assert r.returncode == 0, r.output[-3000:]
    assert "nothing left to remove" in r.output, r.output[-2000:]
    assert set(changed_per_host(r.output).values()) == {0}, r.output[-2000:]
    assert not path.exists()


PITR: dict = {}  # the markers and the target time of the point-in-time restore


def pg_x_s3(identity: str, call: str, **kwargs) -> dict:
    """One S3 call to pg-x's gateway as `identity` (TLS verified); an error is returned as {"error": "Code: ..."}."""
    client = boto3.client(
        "s3",
        endpoint_url=f"https://{address('pg-x')}:8333",
        aws_access_key_id=identity,
        aws_secret_access_key=lab_secret("s3_" + identity.replace("-", "_")),
        region_name="us-east-1",
        verify=lab_ca(),
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )
    try:
        return getattr(client, call)(**kwargs)
    except ClientError as e:
        return {"error": f"{e.response['Error']['Code']}: {e.response['Error'].get('Message', '')}"}


def test_backups_go_to_the_object_store_encrypted_and_their_state_is_exported(pg_a, pg_b):
    """pgBackRest's repository is the object store's pgbackrest bucket (pg-x's gateway), encrypted: the backup units
    themselves take an incremental backup there, and every member exports the same repository's state."""
    conf = pg_a.file("/etc/pgbackrest.conf")
    assert (conf.user, conf.mode) == ("postgres", 0o600)
    assert "repo1-type=s3" in conf.content_string and "repo1-cipher-type=aes-256-cbc" in conf.content_string
    # The full and the incremental units started together (as their timers do at 01:00 with the role's defaults):
    # pgBackRest takes one backup of a stanza at a time, so the incremental waits for the full instead of failing.
    # (A scheduled one may be running: wait until none is, so that this test's two are the last two. A running oneshot
    # is "activating", which is-active does not count as active.)
    idle = (
        '[ "$(systemctl show -p ActiveState --value pgbackrest-full.service pgbackrest-incr.service'
        " | grep -cE '^(activating|active|deactivating|reloading)$')\" = 0 ]"
    )
    assert wait_for(lambda: pg_a.run(idle).rc == 0, timeout=600, step=5), "a scheduled backup did not finish"
    t0 = time.time()
    assert pg_a.run("systemctl start --no-block pgbackrest-full.service").rc == 0
    running = "pgrep -u postgres -f '^/usr/bin/pgbackrest --stanza=analytics --type=full backup$'"
    assert wait_for(lambda: pg_a.run(running).rc == 0, timeout=60, step=0.2), pg_a.run(
        "journalctl -u pgbackrest-full -n 20 --no-pager"
    ).stdout
    r = pg_a.run("systemctl start pgbackrest-incr.service")  # the hardened unit, as its timer starts it
    assert r.rc == 0, r.stderr + pg_a.run("journalctl -u pgbackrest-incr -n 20 --no-pager").stdout
    full_done = 'systemctl show -p ActiveState,Result --value pgbackrest-full.service | paste -sd " "'
    assert wait_for(
        lambda: sorted(pg_a.run(full_done).stdout.split()) == ["inactive", "success"], timeout=300, step=2
    ), pg_a.run("journalctl -u pgbackrest-full -n 20 --no-pager").stdout
    info = json.loads(pg_a.run("runuser -u postgres -- pgbackrest --stanza=analytics --output=json info").stdout)[0]
    assert info["status"]["code"] == 0 and info["cipher"] == "aes-256-cbc", info["status"]
    types = [b["type"] for b in info["backup"]]
    assert types[-2:] == ["full", "incr"], types
    full, incr = info["backup"][-2:]
    assert full["timestamp"]["start"] >= int(t0) and incr["timestamp"]["start"] >= full["timestamp"]["stop"], info
    # On pg-b (no backup runs there while pg-a leads) the unit's condition skips it, successfully.
    before = len(info["backup"])
    assert pg_b.run("systemctl start pgbackrest-incr.service").rc == 0
    again = json.loads(pg_a.run("runuser -u postgres -- pgbackrest --stanza=analytics --output=json info").stdout)[0]
    assert len(again["backup"]) == before
    # The objects are in the bucket, and the data bucket's identities cannot see them.
    listing = pg_x_s3("pgbackrest", "list_objects_v2", Bucket="pgbackrest", Prefix="pgbackrest/analytics/backup/")
    assert listing.get("KeyCount", 0) > 0, listing
    denied = pg_x_s3("delta-writer", "list_objects_v2", Bucket="pgbackrest")
    assert denied.get("error", "").startswith("AccessDenied"), denied
    # The exporter: the same state read from both members.
    completion = r'^ap_pgbackrest_backup_last_completion_timestamp_seconds\{[^}]*type="incr"\} (\d+)$'
    seen = []
    for host in (pg_a, pg_b):
        out = host.run("runuser -u postgres -- python3 /usr/local/sbin/ap-pgbackrest-metrics analytics -")
        assert out.rc == 0, out.stderr
        assert re.search(r'^ap_pgbackrest_repo_ok\{stanza="analytics",reason="ok"\} 1$', out.stdout, re.M), out.stdout
        incr = re.search(completion, out.stdout, re.M)
        assert incr and int(incr.group(1)) >= int(t0), out.stdout
        assert re.search(r"^ap_pgbackrest_archive_last_segment\{.*\} \d+$", out.stdout, re.M), out.stdout
        seen.append(incr.group(1))
    assert seen[0] == seen[1]
    # It can fail: a stanza the repository does not have is exported as not ok, never as a fresh backup.
    out = pg_a.run("runuser -u postgres -- python3 /usr/local/sbin/ap-pgbackrest-metrics nosuch -").stdout
    assert re.search(r'^ap_pgbackrest_repo_ok\{stanza="nosuch",reason="[^"]+"\} 0$', out, re.M), out
    assert not re.search(r"^ap_pgbackrest_backup_last_completion", out, re.M), out


def test_wal_is_archived_to_the_object_store_up_to_the_last_commit(pg_a):
    """Rows before and after a target time, the WAL switched and archived: the point-in-time restore (after the leader
    is lost, below) must bring back the first and not the second."""
    PITR["before"], PITR["after"] = str(uuid.uuid4()), str(uuid.uuid4())
    psql(pg_a, insert_sql(PITR["before"]))
    time.sleep(1.5)
    PITR["target"] = psql(pg_a, "SELECT now()::timestamptz(3)", db="postgres")
    time.sleep(1.5)
    psql(pg_a, insert_sql(PITR["after"]))
    segment = psql(pg_a, "SELECT pg_walfile_name(pg_switch_wal())", db="postgres")
    archived = "SELECT COALESCE(last_archived_wal, '') FROM pg_stat_archiver"
    assert wait_for(lambda: psql(pg_a, archived, db="postgres") >= segment, timeout=60), psql(
        pg_a, archived, db="postgres"
    )
    # The exporter's archive metrics on the primary: nothing waits, nothing failed.
    waiting = "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
    assert wait_for(lambda: psql(pg_a, waiting, db="postgres") == "0", timeout=30)
    # (Segments that failed before the stanza existed, on the first start, are older than the last success.)
    ok = "SELECT COALESCE(last_failed_time < last_archived_time, true) FROM pg_stat_archiver"
    assert psql(pg_a, ok, db="postgres") == "t"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"postgresql_shared_buffers": "100GB"}', "postgresql_shared_buffers (100GB) may use at most half"),
        ('{"postgresql_work_mem": "64"}', "postgresql_work_mem: '64' is not a size"),
        ('{"postgresql_sink_password": ""}', "postgresql_sink_password is missing, shorter than 16 characters"),
        ('{"postgresql_reader_password": "analytics123"}', "postgresql_reader_password is missing"),
        ('{"postgresql_patroni_ttl": 12}', "postgresql_patroni_loop_wait + 2 x postgresql_patroni_retry_timeout"),
        (
            '{"postgresql_pgbouncer_port": 8008}',
            "postgresql_pgbouncer needs postgresql_pgbouncer_port (8008) other than",
        ),
        (
            '{"postgresql_pgbouncer_users": ["postgres"]}',
            "(the sink, the reader or a postgresql_hba_extra user; got postgres)",
        ),
        ('{"etcd_client_passwords": {}}', "etcd_client_passwords for every client in etcd_clients (patroni)"),
        ('{"postgresql_etcd_user": "nobody"}', "postgresql_etcd_password is missing"),
        ('{"postgresql_rewind_password": "short"}', "postgresql_rewind_password is missing"),
        ('{"postgresql_backup_s3_endpoint": ""}', "postgresql_backup_repo_type posix keeps the backups on each member"),
        ('{"postgresql_backup_cipher_pass": "short"}', "postgresql_backup_cipher_pass (vault, 16+ characters"),
        (
            '{"postgresql_backup_s3_endpoint": "http://pg-x:8333"}',
            "needs postgresql_backup_s3_endpoint (https://host[:port])",
        ),
        (
            '{"postgresql_hba_extra": [{"database": "all", "user": "x", "address": "0.0.0.0/0", "type": "host"}]}',
            "postgresql_hba_extra entry 0",
        ),
        (
            '{"postgresql_hba_extra": [{"database": "all", "user": "x", "address": "10.0.0.0/8", "method": "md5"}]}',
            "connections are hostssl with scram-sha-256 only",
        ),
    ],
)
def test_bad_input_fails_in_preflight(scenario_dir, extra, message):
    # Only the preflight of the role whose variable it is: the other plays' checks pass whatever these variables say
    # (their own scenarios test them), and leaving them out makes a case about 2.5 times faster.
    owner = "etcd" if extra.startswith('{"etcd_') else "postgresql"
    skip = tuple(r for r in ("base", "pki", "seaweedfs", "etcd", "postgresql", "grafana") if r != owner)
    watch = ("pg-a", "cat /var/lib/postgresql/15/main/pg_hba.conf")
    assert_refused(scenario_dir, extra, message, watch, skip_roles=skip)


# Before the tests that move the leader: the converge describes the cluster as it stands now.
@pytest.mark.drill  # ~140 s: make test-heavy runs it (molecule.yml leaves out molecule's check step, which it replaces)
def test_check_mode_on_the_converged_cluster_fails_nothing_and_would_change_nothing(scenario_dir):
    """Molecule's check step only asked that the check run finish; this also asks that it would change nothing."""
    assert_check_mode_changes_nothing(scenario_dir, {"pg-a", "pg-b", "pg-x"})


# --- Patroni and etcd -------------------------------------------------------------------------------------------------
# Last in this file: the failover moves the leader (the switchover test moves it back to pg-a).


def cluster(via: str) -> dict:
    """Patroni's view of the cluster, from a member's REST API (TLS verified): name -> member."""
    code, body = http(lab_host(via), f"https://{address(via)}:8008/cluster")
    assert code == 200, body
    return {m["name"]: m for m in json.loads(body)["members"]}


def leader(via: str) -> str | None:
    try:
        names = [n for n, m in cluster(via).items() if m["role"] in ("leader", "master") and m["state"] == "running"]
    except (AssertionError, ValueError):
        return None
    return names[0] if len(names) == 1 else None


def etcd(host, path: str, body: dict, token: str = "") -> tuple[int, dict]:
    """etcd's v3 JSON API on pg-x, from `host` (TLS verified)."""
    headers = {"Content-Type": "application/json", **({"Authorization": token} if token else {})}
    code, text = http(host, f"https://{address('pg-x')}:2379/v3{path}", "POST", headers, json.dumps(body))
    try:
        return code, json.loads(text)
    except ValueError:
        return code, {"raw": text}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_patroni_runs_the_cluster_and_only_it(pg_a, pg_b):
    members = cluster("pg-a")
    assert members["pg-a"]["role"] in ("leader", "master") and members["pg-a"]["state"] == "running", members
    assert members["pg-b"]["role"] == "replica" and members["pg-b"]["state"] in ("running", "streaming"), members
    for host in (pg_a, pg_b):
        assert host.service("patroni").is_running and host.service("patroni").is_enabled
        assert not host.service("postgresql@15-main").is_running
        assert not host.service("postgresql@15-main").is_enabled
        assert host.file("/etc/postgresql/15/main/start.conf").content_string.strip() == "manual"
        config = host.file("/etc/patroni/config.yml")
        assert (config.user, config.mode) == ("postgres", 0o600)
    # Patroni's replication slot for the replica, and the replica streams over TLS.
    assert psql(pg_a, "SELECT slot_name FROM pg_replication_slots WHERE active", db="postgres") == "pg_b"
    assert psql(pg_a, "SELECT ssl FROM pg_stat_ssl JOIN pg_stat_replication USING (pid)", db="postgres") == "t"
    # pg_rewind can work: hint bits are logged; the rewind role is no superuser.
    assert psql(pg_a, "SHOW wal_log_hints", db="postgres") == "on"
    assert psql(pg_a, "SELECT rolsuper FROM pg_roles WHERE rolname = 'rewinder'", db="postgres") == "f"


def test_patronis_api_needs_tls_and_a_password_to_change_anything(pg_b):
    url = f"https://{address('pg-a')}:8008"
    assert http(pg_b, f"{url}/restart", "POST", {"Content-Type": "application/json"}, "{}")[0] == 401
    wrong = "Basic " + base64.b64encode(b"patroni:wrong-password-123456").decode()
    assert http(pg_b, f"{url}/restart", "POST", {"Authorization": wrong}, "{}")[0] == 401
    # Plain HTTP gets no answer from a TLS listener.
    assert http(pg_b, f"http://{address('pg-a')}:8008/cluster")[0] == 0
    assert http(pg_b, f"{url}/patroni")[0] == 200


def test_etcd_needs_tls_and_a_user_and_confines_patroni_to_its_prefix(pg_a, pg_b):
    # Plain HTTP gets no answer from the TLS listener; the peer port wants a certificate of the platform CA.
    assert http(pg_b, f"http://{address('pg-x')}:2379/health")[0] == 0
    assert http(pg_b, f"https://{address('pg-x')}:2380/members")[0] == 0
    assert http(pg_b, f"https://{address('pg-x')}:2380/members", client_cert=True)[0] == 200
    # TLS but no user: refused.
    code, body = etcd(pg_b, "/kv/range", {"key": b64("/analytics-platform/")})
    assert code != 200 and "user name is empty" in json.dumps(body), body
    # Patroni's user reads its cluster's keys and may not write outside its prefix.
    code, body = etcd(pg_b, "/auth/authenticate", {"name": "patroni", "password": lab_secret("etcd_patroni")})
    assert code == 200, body
    token = body["token"]
    prefix = {"key": b64("/analytics-platform/"), "range_end": b64("/analytics-platform0"), "keys_only": True}
    code, body = etcd(pg_b, "/kv/range", prefix, token)
    keys = {base64.b64decode(kv["key"]).decode() for kv in body.get("kvs", [])}
    assert "/analytics-platform/analytics/leader" in keys, body
    code, body = etcd(pg_b, "/kv/put", {"key": b64("/elsewhere/x"), "value": b64("1")}, token)
    assert code != 200 and "permission denied" in json.dumps(body), body
    code, body = etcd(pg_b, "/auth/authenticate", {"name": "root", "password": "wrong-password-123456"})
    assert code != 200 and "authentication failed" in json.dumps(body), body
    # Listing the users needs root's token.
    assert etcd(pg_a, "/auth/user/list", {})[0] != 200


def test_patroni_and_etcd_serve_their_metrics_over_verified_tls(pg_a, pg_b):
    """What Prometheus scrapes (the catalogue's patroni and etcd jobs): the leader and the replica tell their roles,
    the cluster has its leader lock, and every etcd member sees a leader."""
    metrics = {}
    for name in ("pg-a", "pg-b"):
        code, body = http(pg_b, f"https://{address(name)}:8008/metrics")
        assert code == 200, body
        metrics[name] = {line.split("{")[0]: line.rsplit(" ", 1)[1] for line in body.splitlines() if "{" in line}
    assert (metrics["pg-a"]["patroni_primary"], metrics["pg-b"]["patroni_replica"]) == ("1", "1"), metrics
    assert metrics["pg-a"]["patroni_cluster_unlocked"] == metrics["pg-b"]["patroni_cluster_unlocked"] == "0"
    for name in ("pg-a", "pg-b", "pg-x"):
        code, body = http(pg_a, f"https://{address(name)}:2379/metrics")
        assert code == 200 and re.search(r"^etcd_server_has_leader 1$", body, re.M), (name, code, body[:300])


@pytest.mark.drill  # ~160 s: make test-heavy runs it (the converge has nothing new to show make test)
def test_a_cluster_wide_setting_reaches_every_member_through_a_rolling_restart(scenario_dir, pg_a, pg_b):
    """max_connections lives in Patroni's cluster-wide configuration (in etcd) and needs a restart: a converge with a
    new value changes it there and restarts the members one at a time; the scenario's value comes back the same way.
    Only converge.yml's PostgreSQL play runs (postgresql.yml): the base, etcd and the object store have nothing to
    do."""
    show = "SHOW max_connections"
    assert psql(pg_a, show, db="postgres") == psql(pg_b, show, db="postgres") == "50"
    for value in ("60", "50"):
        r = ansible_playbook(scenario_dir / "postgresql.yml", "-e", f"postgresql_max_connections={value}")
        assert r.returncode == 0, r.output[r.output.find("fatal:") :][:3000]
        assert re.search(r"Restart them, one at a time\][^\[]*changed: \[", r.output), r.output[-2000:]
        assert psql(pg_a, show, db="postgres") == psql(pg_b, show, db="postgres") == value
    assert leader("pg-a") == "pg-a"
    members = cluster("pg-a")
    assert not any(m.get("pending_restart") for m in members.values()), members


def test_etcd_keeps_a_quorum_with_one_member_stopped(pg_a):
    pg_x = lab_host("pg-x")
    pg_x.run("systemctl stop etcd")
    try:
        marker = str(uuid.uuid4())
        psql(pg_a, insert_sql(marker))
        time.sleep(12)  # more than a Patroni cycle: the leader renews its lease in the remaining two members
        assert leader("pg-a") == "pg-a"
        assert psql(pg_a, "SELECT pg_is_in_recovery()", db="postgres") == "f"
    finally:
        pg_x.run("systemctl start etcd")
    assert wait_for(lambda: pg_x.service("etcd").is_running, timeout=30)


def through_proxy(pg_x, sql, sslmode="verify-ca"):
    """A read-only client on pg-x, through the proxy the grafana role sets up for Grafana (pg_proxy.yml)."""
    conn = f"host=127.0.0.1 port=5433 dbname=analytics user=analytics_reader sslmode={sslmode} sslrootcert={CA}"
    password = shlex.quote(lab_secret("pg_reader"))
    return pg_x.run(f"PGPASSWORD={password} psql -XAtq {shlex.quote(conn)} -c {shlex.quote(sql)}")


def test_read_only_clients_reach_a_replica_and_the_leader_only_while_none_runs(pg_a, pg_b):
    """Grafana's way to a replica (Grafana itself never runs here; its role's HAProxy does, on pg-x): a connection
    reaches the replica, TLS end to end; with the replica's Patroni stopped it reaches the leader; when the replica
    is back, the session on the leader is cut and new connections reach the replica again."""
    pg_x = lab_host("pg-x")
    r = pg_x.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-client-15")  # the client's stand-in
    assert r.rc == 0, r.stderr
    where = "SELECT pg_is_in_recovery(), inet_server_addr(), (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())"
    replica, primary = f"t|{address('pg-b')}|t", f"f|{address('pg-a')}|t"

    def routed():
        return through_proxy(pg_x, where).stdout.strip()

    assert wait_for(lambda: routed() == replica, timeout=30), routed()
    r = through_proxy(pg_x, where, sslmode="disable")
    assert r.rc != 0 and "no pg_hba.conf entry" in r.stderr, r.stderr  # plain text is refused through it too
    pg_b.run("systemctl stop patroni")
    try:
        assert wait_for(lambda: routed() == primary, timeout=30), routed()
        assert routed() == primary
        # A session open on the leader while the replica comes back (as Grafana's pooled connections are).
        password = shlex.quote(lab_secret("pg_reader"))
        conn = f"host=127.0.0.1 port=5433 dbname=analytics user=analytics_reader sslmode=verify-ca sslrootcert={CA}"
        pg_x.run(
            f"rm -f /tmp/held.rc; (PGPASSWORD={password} timeout 300 psql -XAtq {shlex.quote(conn)}"
            " -c 'SELECT pg_sleep(240)' >/dev/null 2>&1; echo $? >/tmp/held.rc) >/dev/null 2>&1 &"
        )
        held = (
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'analytics_reader'"
            " AND query LIKE '%pg_sleep(240)%' AND pid <> pg_backend_pid()"
        )
        assert wait_for(lambda: psql(pg_a, held, db="postgres") == "1", timeout=20)
    finally:
        pg_b.run("systemctl start patroni")
    assert wait_for(lambda: routed() == replica, timeout=90), routed()
    assert wait_for(lambda: pg_x.file("/tmp/held.rc").exists, timeout=20), "the session on the leader was not cut"
    assert pg_x.file("/tmp/held.rc").content_string.strip() != "0"
    assert wait_for(lambda: cluster("pg-a")["pg-b"]["state"] in ("running", "streaming"), timeout=60), cluster("pg-a")


LOST: dict = {}  # what the failover test wrote, for the rejoin test


def test_a_lost_leader_is_replaced_by_itself(pg_a, pg_b):
    """The leader's container killed (a host crash: no clean shutdown): pg-b leads within the lease and takes writes
    through the multi-host connection string."""
    assert leader("pg-b") == "pg-a"
    before = str(uuid.uuid4())
    psql(pg_a, insert_sql(before))
    count = "SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{}'"
    assert wait_for(lambda: psql(pg_b, count.format(before)) == "1", timeout=30)
    t0 = time.time()
    subprocess.run(["docker", "kill", "ap-mol-postgresql-pg-a"], check=True, capture_output=True)
    assert wait_for(lambda: leader("pg-b") == "pg-b", timeout=90, step=1), cluster("pg-b")
    took = time.time() - t0
    print(f"failover: pg-b leads {took:.0f} s after pg-a was killed")
    assert took < 30  # the bound; ttl + loop_wait is 25 s at worst
    # A client with every member in its connection string finds the writable one.
    LOST["after"] = after = str(uuid.uuid4())
    conn = (
        f"host={address('pg-a')},{address('pg-b')} port=5432 dbname=analytics user=analytics_sink "
        f"sslmode=verify-full sslrootcert={CA} target_session_attrs=read-write connect_timeout=3"
    )
    password = shlex.quote(lab_secret("pg_sink"))
    r = pg_b.run(f"PGPASSWORD={password} psql -XAtq {shlex.quote(conn)} -c {shlex.quote(insert_sql(after))}")
    assert r.rc == 0, r.stderr
    assert psql(pg_b, count.format(before)) == "1" and psql(pg_b, count.format(after)) == "1"


def test_the_backups_outlive_the_lost_leader_a_point_in_time_restore_onto_a_fresh_host(pg_b):
    """With the former leader's host still gone: the new leader archives into the same repository, and the repository
    restores onto a fresh host (pg-x) to the target time taken earlier: the row written before it is there, the row
    written after it is not. The fresh host is smaller (max_connections 40, the cluster's 50): the restore still
    finishes (it replays with hot standby off, so PostgreSQL does not stop at the cluster's larger settings)."""
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", "ap-mol-postgresql-pg-a"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert state.stdout.strip() == "false", "pg-a must be down for this test (the failover test kills it)"
    assert PITR, "the archiving test sets the target time"
    segment = psql(pg_b, "SELECT pg_walfile_name(pg_switch_wal())", db="postgres")
    archived = "SELECT COALESCE(last_archived_wal, '') FROM pg_stat_archiver"
    assert wait_for(lambda: psql(pg_b, archived, db="postgres") >= segment, timeout=60), segment
    t0 = time.time()
    r = ansible_playbook(
        ROOT / "playbooks" / "postgresql_restore.yml",
        "-e",
        "restore_host=pg-x",
        "-e",
        json.dumps({"postgresql_restore_target_time": PITR["target"], "postgresql_max_connections": 40}),
    )
    assert r.returncode == 0, r.output[-3000:]
    print(f"point-in-time restore onto pg-x: {time.time() - t0:.0f} s (the play)")
    pg_x = lab_host("pg-x")
    count = "SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{}'"
    assert psql(pg_x, count.format(PITR["before"])) == "1"
    assert psql(pg_x, count.format(PITR["after"])) == "0"
    assert psql(pg_x, "SELECT pg_is_in_recovery()", db="postgres") == "f"
    # Its own settings once the replay is over, hot standby as on every other server.
    assert psql(pg_x, "SHOW max_connections", db="postgres") == "40"
    assert psql(pg_x, "SHOW hot_standby", db="postgres") == "on"
    # A drill beside the running cluster: the restored server writes nothing into the cluster's repository.
    assert psql(pg_x, "SHOW archive_mode", db="postgres") == "off"


def test_the_lost_leader_rejoins_as_a_replica(pg_b):
    """pg-a, started again, follows pg-b without a hand step (pg_rewind)."""
    assert LOST, "the failover test runs first"
    count = "SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{}'"
    subprocess.run(["docker", "start", "ap-mol-postgresql-pg-a"], check=True, capture_output=True)
    t1 = time.time()

    def following():
        m = cluster("pg-b").get("pg-a", {})
        return m.get("role") == "replica" and m.get("state") in ("running", "streaming")

    assert wait_for(following, timeout=180), cluster("pg-b")
    pg_a_again = lab_host("pg-a")
    assert wait_for(lambda: psql(pg_a_again, count.format(LOST["after"])) == "1", timeout=60)
    print(f"rejoin: pg-a follows pg-b {time.time() - t1:.0f} s after its container started")
    assert psql(pg_a_again, "SELECT pg_is_in_recovery()", db="postgres") == "t"

    def timeline(name):
        code, body = http(pg_b, f"https://{address(name)}:8008/patroni")
        return json.loads(body).get("timeline") if code == 200 else None

    assert wait_for(lambda: timeline("pg-a") == timeline("pg-b") > 2, timeout=60), (timeline("pg-a"), timeline("pg-b"))


def test_a_switchover_moves_the_leader_back_without_losing_a_write(pg_b):
    assert leader("pg-b") == "pg-b"
    marker = str(uuid.uuid4())
    psql(pg_b, insert_sql(marker))
    r = ansible_playbook(ROOT / "playbooks" / "postgresql_switchover.yml", "-e", "candidate=pg-a")
    assert r.returncode == 0, r.output[-2000:]
    pg_a = lab_host("pg-a")
    assert leader("pg-b") == "pg-a"
    assert psql(pg_a, "SELECT pg_is_in_recovery()", db="postgres") == "f"
    assert psql(pg_a, f"SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{marker}'") == "1"
    assert wait_for(lambda: cluster("pg-a")["pg-b"]["state"] in ("running", "streaming"), timeout=90)
    # The old promote play refuses to fight Patroni.
    r = ansible_playbook(ROOT / "playbooks" / "postgresql_promote.yml", "-e", "new_primary=pg-b")
    assert r.returncode != 0 and "Patroni runs this cluster" in r.output


def test_a_damaged_replica_is_rebuilt_from_the_leader_by_the_reinit_play(pg_a, pg_b):
    """playbooks/postgresql_reinit.yml: the leader is refused by name; the replica's data folder is cloned again (a
    file left in the old one is gone), it streams again and the leader never stopped taking writes."""
    r = ansible_playbook(ROOT / "playbooks" / "postgresql_reinit.yml", "-e", "member=pg-a")
    assert r.returncode != 0 and "member=pg-a is the leader: switch it over first" in r.output, r.output[-2000:]
    r = ansible_playbook(ROOT / "playbooks" / "postgresql_reinit.yml", "-e", "member=pg-nowhere")
    assert r.returncode != 0 and "member=<host> names the replica to rebuild (members: pg-a, pg-b)" in r.output
    left = "/var/lib/postgresql/15/main/left-by-the-damage"
    pg_b.run(f"touch {left}")
    assert pg_b.file(left).exists
    r = ansible_playbook(ROOT / "playbooks" / "postgresql_reinit.yml", "-e", "member=pg-b")
    assert r.returncode == 0, r.output[r.output.find("fatal:") :][:3000]
    assert "pg-b was rebuilt from pg-a: replica, running" in r.output, r.output[-2000:]
    assert not pg_b.file(left).exists, "the data folder was not cloned again"
    assert leader("pg-a") == "pg-a"
    marker = str(uuid.uuid4())
    psql(pg_a, insert_sql(marker))
    count = f"SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{marker}'"
    assert wait_for(lambda: psql(pg_b, count) == "1", timeout=30)
    assert wait_for(lambda: cluster("pg-a")["pg-b"]["state"] in ("running", "streaming"), timeout=30), cluster("pg-a")


def member_inventory(tmp_path: Path, name: str) -> list[str]:
    """The inventory change an operator makes before playbooks/postgresql_add_member.yml: `name` joins the groups
    postgresql and postgresql_replica (a second inventory source, merged over the scenario's)."""
    extra = tmp_path / "member.yml"
    extra.write_text(
        "all:\n  children:\n"
        f"    postgresql:\n      hosts:\n        {name}: {{}}\n"
        f"    postgresql_replica:\n      hosts:\n        {name}: {{}}\n"
    )
    return ["-i", str(extra)]


def with_member(tmp_path: Path, name: str) -> list[str]:
    return [*member_inventory(tmp_path, name), "-e", f"member={name}"]


ADD = ROOT / "playbooks" / "postgresql_add_member.yml"


@pytest.mark.drill  # ~150 s (a third member installed and cloned): make test-heavy runs it
def test_a_member_joins_by_the_add_member_play_never_over_another_clusters_data(pg_a, pg_b, tmp_path):
    """pg-x holds the point-in-time restore's server (a server of its own, taking writes): the play stops before any
    host is changed and names the folder and the way out; with postgresql_add_member_replace_data it moves the folder
    aside, pg-x clones the leader and streams in the third zone, and the leader takes writes throughout."""
    pg_x = lab_host("pg-x")
    assert PITR, "the point-in-time restore test leaves its server on pg-x"
    count = "SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{}'"
    assert psql(pg_x, count.format(PITR["before"])) == "1"
    r = ansible_playbook(ADD, "-e", "member=pg-x")
    assert r.returncode != 0 and "member=pg-x: add the host to the groups postgresql_replica and postgresql" in r.output
    r = ansible_playbook(ADD, *with_member(tmp_path, "pg-x"))
    assert r.returncode != 0, r.output[-2000:]
    # The restore has the cluster's system identifier: what makes it somebody's data is a server of its own, writable.
    assert (
        "member=pg-x: /var/lib/postgresql/15/main holds the data of a server that runs on its own and takes writes"
        in r.output
    ), r.output[-3000:]
    assert "-e postgresql_add_member_replace_data=true" in r.output
    # Nothing was changed: the restored server still runs with its rows, no firewall went up, pg-x is no member.
    assert psql(pg_x, count.format(PITR["before"])) == "1"
    assert pg_a.run("nft list table inet analytics_platform").rc != 0
    assert "pg-x" not in cluster("pg-a")

    own = str(uuid.uuid4())  # a row only the restored server has
    psql(pg_x, insert_sql(own))
    marker = str(uuid.uuid4())
    psql(pg_a, insert_sql(marker))
    t0 = time.time()
    r = ansible_playbook(ADD, *with_member(tmp_path, "pg-x"), "-e", "postgresql_add_member_replace_data=true")
    assert r.returncode == 0, r.output[r.output.find("fatal:") :][:3000]
    print(f"add member: pg-x streams {time.time() - t0:.0f} s after the play started")
    aside = re.search(r"the former data folder is kept as (/var/lib/postgresql/15/main\.replaced-\S+?)\"", r.output)
    assert aside, r.output[-3000:]
    assert pg_x.file(f"{aside.group(1)}/PG_VERSION").exists
    assert "pg-x is a member: replica, running" in r.output
    members = cluster("pg-a")
    assert members["pg-x"]["role"] == "replica" and members["pg-x"]["state"] in ("running", "streaming"), members
    assert leader("pg-b") == "pg-a"
    after = str(uuid.uuid4())
    psql(pg_a, insert_sql(after))
    for m in (marker, after):
        assert wait_for(lambda m=m: psql(pg_x, count.format(m)) == "1", timeout=30), m
    assert psql(pg_x, count.format(own)) == "0"  # the member holds the cluster's data; the restored server's is aside
    assert psql(pg_x, "SELECT pg_is_in_recovery()", db="postgres") == "t"
    assert pg_a.run("nft list table inet analytics_platform").rc == 0  # the firewall admits the member now


@pytest.mark.drill  # ~80 s: make test-heavy runs it
def test_the_add_member_play_run_again_changes_nothing(tmp_path):
    assert "pg-x" in cluster("pg-a"), "the add-member test adds pg-x first"
    r = ansible_playbook(ADD, *with_member(tmp_path, "pg-x"))
    assert r.returncode == 0, r.output[r.output.find("fatal:") :][:3000]
    changed = changed_per_host(r.output)
    assert set(changed) == {"pg-a", "pg-b", "pg-x"} and not any(changed.values()), changed


def server_versions() -> dict[str, int]:
    """member -> server_version_num of the server Patroni runs there (15.20 -> 150020)."""
    return {n: m.get("server_version", 0) for n, m in ((n, patroni_state(n)) for n in cluster("pg-a"))}


def patroni_state(name: str) -> dict:
    code, body = http(lab_host("pg-a"), f"https://{address(name)}:8008/patroni")
    assert code in (200, 503), body
    return json.loads(body)


@pytest.mark.drill  # ~3 min: make test-heavy runs it (the newest PostgreSQL 15 installed on three members)
def test_a_minor_upgrade_rolls_through_the_replicas_then_switches_over_without_losing_a_write(pg_a, tmp_path):
    """The converge pinned the oldest PostgreSQL 15 Debian offers; playbooks/postgresql_upgrade.yml moves the cluster
    to the newest while a client writes through the multi-host connection string: the replicas restart on it one at
    a time, the leader hands over, the former leader restarts last, every acknowledged write is there once. A second
    run restarts nothing."""
    offered = pg_a.run("apt-cache madison postgresql-15").stdout
    versions = [line.split("|")[1].strip() for line in offered.splitlines() if "|" in line]
    assert len(set(versions)) > 1, f"the package sources offer one PostgreSQL 15 version, nothing to move to: {offered}"
    newest = versions[0]
    major, minor = newest.split("-")[0].split(".")
    target = int(major) * 10000 + int(minor)
    before = server_versions()
    assert set(before) == {"pg-a", "pg-b", "pg-x"} and min(before.values()) < target, before
    assert leader("pg-a") == "pg-a"
    # The inventory lists every member (the add-member test's change): the play refuses to leave pg-x behind otherwise.
    r = ansible_playbook(ROOT / "playbooks" / "postgresql_upgrade.yml")
    assert r.returncode != 0 and "would be left behind (and could be switched to): pg-x" in r.output, r.output[-2000:]
    inventory = member_inventory(tmp_path, "pg-x")
    started = {n: patroni_state(n)["postmaster_start_time"] for n in before}

    # A client writing one row at a time with every member in its connection string, counting what was acknowledged.
    run = uuid.uuid4().hex[:12]
    conn = (
        f"host={address('pg-a')},{address('pg-b')},{address('pg-x')} port=5432 dbname=analytics user=analytics_sink "
        f"sslmode=verify-full sslrootcert={CA} target_session_attrs=read-write connect_timeout=2"
    )
    password = shlex.quote(lab_secret("pg_sink"))
    sql = insert_sql(f"{run}-MARK").replace("'", "'\\''").replace("MARK", "'\"$i\"'")  # $i expands in the shell
    pg_a.run(
        "rm -f /tmp/upgrade.stop /tmp/upgrade.acked /tmp/upgrade.failed; (i=0; while [ ! -e /tmp/upgrade.stop ]; do"
        f" i=$((i+1)); if PGPASSWORD={password} psql -XAtq {shlex.quote(conn)} -c '{sql}' >/dev/null 2>&1;"
        " then echo $i >>/tmp/upgrade.acked; else echo $i >>/tmp/upgrade.failed; sleep 0.2; fi; done) >/dev/null 2>&1 &"
    )
    try:
        assert wait_for(lambda: pg_a.file("/tmp/upgrade.acked").exists, timeout=20), "the writer wrote nothing"
        t0 = time.time()
        r = ansible_playbook(ROOT / "playbooks" / "postgresql_upgrade.yml", *inventory)
        took = time.time() - t0
    finally:
        pg_a.run("touch /tmp/upgrade.stop")
        time.sleep(3)
    assert r.returncode == 0, r.output[r.output.find("fatal:") :][:3000]
    acked = pg_a.file("/tmp/upgrade.acked").content_string.split()
    failed = pg_a.file("/tmp/upgrade.failed").content_string.split() if pg_a.file("/tmp/upgrade.failed").exists else []
    new_leader = leader("pg-b")
    assert new_leader in ("pg-b", "pg-x"), cluster("pg-b")
    stored = psql(
        lab_host(new_leader),
        f"SELECT properties->>'marker' FROM analytics_events WHERE properties->>'marker' LIKE '{run}-%'",
    ).split()
    print(
        f"minor upgrade to {newest}: {took:.0f} s; {len(acked)} writes acknowledged, {len(failed)} refused while the"
        f" leader moved (retried), {len(stored)} rows stored; leader pg-a -> {new_leader}"
    )
    assert sorted(stored) == sorted(f"{run}-{i}" for i in acked)  # each acknowledged write once, nothing else
    after = server_versions()
    assert set(after.values()) == {target}, after
    # Replicas first: pg-b and pg-x restarted before the former leader, which restarted last (as a replica).
    restarted = {n: patroni_state(n)["postmaster_start_time"] for n in after}
    assert all(restarted[n] != started[n] for n in after if before[n] != target), (started, restarted)
    assert max(restarted[n] for n in ("pg-b", "pg-x") if before[n] != target) < restarted["pg-a"], restarted
    assert cluster("pg-b")["pg-a"]["role"] == "replica"
    r = ansible_playbook(ROOT / "playbooks" / "postgresql_upgrade.yml", *inventory)
    assert r.returncode == 0, r.output[r.output.find("fatal:") :][:3000]
    changed = changed_per_host(r.output)  # an empty recap must not pass as "nothing changed"
    assert set(changed) == {"pg-a", "pg-b", "pg-x"} and not any(changed.values()), changed
    assert {n: patroni_state(n)["postmaster_start_time"] for n in after} == restarted
