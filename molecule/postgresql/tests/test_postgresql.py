"""PostgreSQL across zones, verified against the running servers: replication, TLS-only access, retention,
anonymisation, backup and restore onto a fresh host, promotion, and bad input refused in preflight."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import address, ansible_playbook, assert_passes, assert_refused, lab_host, lab_secret, psql, run_audit

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
    assert rules and set(rules) <= {"local|peer", "hostssl|scram-sha-256"}
    assert psql(pg_a, "SHOW password_encryption", db="postgres") == "scram-sha-256"
    assert psql(pg_a, "SHOW ssl", db="postgres") == "on"
    assert "pgaudit" in psql(pg_a, "SHOW shared_preload_libraries", db="postgres")
    assert psql(pg_a, "SHOW log_connections", db="postgres") == "on"


def test_the_audit_passes_the_database_its_logins_tls_and_secrets():
    """The hardened side of the audit's proof for the controls this scenario deploys (molecule/insecure fails each):
    TLS-only scram authentication, pgaudit and connection logging (auditd is not applicable in containers), no default
    or weak login from outside or from inside, no secret exposed."""
    controls = ["db_encryption", "audit_logging", "default_passwords", "tls", "secrets"]
    endpoints = {
        "audit_tls_endpoints": [{"group": "postgresql", "port": 5432, "service": "postgresql", "protocol": "postgres"}]
    }
    r, results = run_audit(controls, "-e", json.dumps(endpoints))
    assert_passes(results, controls)
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


def test_backup_restores_onto_a_fresh_host(pg_a):
    marker = str(uuid.uuid4())
    psql(pg_a, insert_sql(marker))
    assert pg_a.run("runuser -u postgres -- pgbackrest --stanza=analytics --type=incr backup").rc == 0
    info = pg_a.run("runuser -u postgres -- pgbackrest --stanza=analytics info").stdout
    assert "full backup" in info and "incr backup" in info
    # The fresh host gets the repository (here copied; in production a mounted volume or the S3 store).
    container = "ap-mol-postgresql"
    tar = subprocess.Popen(
        ["docker", "exec", f"{container}-pg-a", "tar", "-C", "/var/lib", "-cf", "-", "pgbackrest"],
        stdout=subprocess.PIPE,
    )
    subprocess.run(
        ["docker", "exec", "-i", f"{container}-pg-x", "tar", "-C", "/var/lib", "-xf", "-"], stdin=tar.stdout, check=True
    )
    assert tar.wait() == 0
    r = ansible_playbook(ROOT / "playbooks" / "postgresql_restore.yml", "-e", "restore_host=pg-x")
    assert r.returncode == 0, r.output[-2000:]
    pg_x = lab_host("pg-x")
    assert psql(pg_x, f"SELECT count(*) FROM analytics_events WHERE properties->>'marker' = '{marker}'") == "1"
    assert psql(pg_x, "SELECT pg_is_in_recovery()", db="postgres") == "f"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"postgresql_shared_buffers": "100GB"}', "postgresql_shared_buffers (100GB) may use at most half"),
        ('{"postgresql_work_mem": "64"}', "postgresql_work_mem: '64' is not a size"),
        ('{"postgresql_sink_password": ""}', "postgresql_sink_password is missing, shorter than 16 characters"),
        ('{"postgresql_reader_password": "analytics123"}', "postgresql_reader_password is missing"),
        ('{"zone": "zone-a"}', "every replica (pg-b) is in the primary's zone zone-a"),
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
    assert_refused(scenario_dir, extra, message, ("pg-a", "cat /etc/postgresql/15/main/pg_hba.conf"))


def test_promoting_the_replica_makes_it_writable(pg_b):
    """Last: after this the replica no longer follows the primary."""
    r = ansible_playbook(ROOT / "playbooks" / "postgresql_promote.yml", "-e", "new_primary=pg-b")
    assert r.returncode == 0, r.output[-2000:]
    assert psql(pg_b, "SELECT pg_is_in_recovery()", db="postgres") == "f"
    psql(pg_b, insert_sql(str(uuid.uuid4())))
    assert not pg_b.file("/etc/postgresql/15/main/conf.d/60-replica.conf").exists
