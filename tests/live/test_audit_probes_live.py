"""The audit's attacker-side probes against real servers: PostgreSQL (TLS, SCRAM), Kafka (SASL_SSL, SCRAM-SHA-512) and
SeaweedFS (S3 over TLS), each reaching accepted and refused; and the object store's audit against a store that lets
anyone read (it must fail) and a sound one (it must pass), leaving both as it found them."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from analytics_testing.servers import SeaweedFS
from ansible_collections.analytics.platform.plugins.module_utils import audit_wire as wire
from ansible_collections.analytics.platform.plugins.modules import audit_logins, kafka_access, kafka_probe, s3_audit


# --- PostgreSQL ---------------------------------------------------------------------------------------------------
def test_postgresql_logins_are_accepted_or_refused_as_the_server_says(postgres):
    verdict, detail = wire.pg_login("127.0.0.1", postgres.port, "postgres", postgres.password, "postgres")
    assert verdict == "accepted" and "TLS" in detail, detail
    verdict, detail = wire.pg_login("127.0.0.1", postgres.port, "postgres", "postgres", "postgres")
    assert verdict == "refused" and "28P01" in detail, detail
    verdict, detail = wire.pg_login("127.0.0.1", postgres.port, "no_such_user", "x", "postgres")
    assert verdict == "refused", detail  # PostgreSQL does not say whether the role exists


def test_a_login_to_a_database_that_does_not_exist_still_counts_as_accepted(postgres):
    verdict, detail = wire.pg_login("127.0.0.1", postgres.port, "postgres", postgres.password, "no_such_db")
    assert verdict == "accepted", detail  # authentication comes first: the password works, whatever the database


# --- Kafka --------------------------------------------------------------------------------------------------------
def test_kafka_logins_are_accepted_or_refused_as_the_broker_says(kafka):
    verdict, detail = wire.kafka_login("127.0.0.1", kafka.port, "admin", kafka.passwords["admin"])
    assert verdict == "accepted", detail
    verdict, detail = wire.kafka_login("127.0.0.1", kafka.port, "admin", "admin")
    assert verdict == "refused", detail
    verdict, _unused = wire.kafka_login(
        "127.0.0.1", kafka.port, "admin", kafka.passwords["admin"], mechanism="SCRAM-SHA-256"
    )
    assert verdict == "refused"  # the broker enables SCRAM-SHA-512 only
    assert wire.kafka_plaintext("127.0.0.1", kafka.port, 3) is False  # SASL_SSL: no plain-text answer


# --- S3 -----------------------------------------------------------------------------------------------------------
def test_s3_logins_are_accepted_or_refused_as_the_store_says(seaweedfs):
    access, secret = seaweedfs.identities["admin"]
    assert wire.s3_login(seaweedfs.endpoint, access, secret)[0] == "accepted"
    assert wire.s3_login(seaweedfs.endpoint, access, "wrong-secret")[0] == "refused"
    assert wire.s3_login(seaweedfs.endpoint, "minioadmin", "minioadmin")[0] == "refused"


# --- the module, all three at once ---------------------------------------------------------------------------------
def test_audit_logins_fails_on_an_accepted_login_and_passes_when_all_are_refused(
    run_module, postgres, kafka, seaweedfs
):
    access, secret = seaweedfs.identities["admin"]
    targets = {
        "postgresql": [{"host": "db", "address": "127.0.0.1", "port": postgres.port}],
        "kafka": [{"host": "k", "address": "127.0.0.1", "port": kafka.port}],
        "s3": [{"host": "s3", "endpoint": seaweedfs.endpoint}],
    }
    weak = {
        "postgresql_logins": [{"user": "postgres", "password": "postgres", "db": "postgres"}],
        "kafka_logins": [{"user": "admin", "password": "admin"}],
        "s3_credentials": [{"access_key": "minioadmin", "secret_key": "minioadmin"}],
    }
    good = run_module(audit_logins, {"vantage": "test", **targets, **weak}).result["audit"]
    assert {(r["host"], r["status"]) for r in good} == {("db", "pass"), ("k", "pass"), ("s3", "pass")}, good
    leaked = {
        "postgresql_logins": [{"user": "postgres", "password": postgres.password, "db": "postgres"}],
        "kafka_logins": [{"user": "admin", "password": kafka.passwords["admin"]}],
        "s3_credentials": [{"access_key": access, "secret_key": secret}],
    }
    bad = run_module(audit_logins, {"vantage": "test", **targets, **leaked}).result["audit"]
    assert {(r["host"], r["status"]) for r in bad} == {("db", "fail"), ("k", "fail"), ("s3", "fail")}, bad
    assert all(r["target"].endswith("logins from test") for r in bad)


def test_a_port_nothing_listens_on_is_not_a_login(run_module):
    import socket

    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    logins = [{"user": "postgres", "password": "x"}]
    closed = [{"host": "db", "address": "127.0.0.1", "port": port}]
    out = run_module(audit_logins, {"vantage": "test", "postgresql": closed, "postgresql_logins": logins})
    (r,) = out.result["audit"]
    assert r["status"] == "pass" and "not reachable" in r["reason"]
    unknown = [{"host": "db", "address": "db.invalid"}]
    dns = run_module(audit_logins, {"vantage": "test", "postgresql": unknown, "postgresql_logins": logins})
    assert dns.result["audit"][0]["status"] == "error"


# --- the object store's audit ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def open_store(test_pki):
    """A SeaweedFS whose anonymous identity may read objects (not list them): the finding's store."""
    folder = Path(tempfile.mkdtemp(prefix="ap-weed-open-"))
    s = SeaweedFS(folder, test_pki, anonymous_read=True)
    s.start()
    yield s
    s.stop()
    shutil.rmtree(folder, ignore_errors=True)


def state(store) -> tuple:
    admin = store.client("admin")
    buckets = sorted(b["Name"] for b in admin.list_buckets()["Buckets"])
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket="analytics").get("Contents", []))
    return buckets, keys


def audit(run_module, store) -> dict:
    access, secret = store.identities["admin"]
    writer = store.identities["delta-writer"]
    args = {
        "host": "store",
        "endpoint": store.endpoint,
        "access_key": access,
        "secret_key": secret,
        "ca_path": str(store.pki["ca"]),
        "bucket": "analytics",
        "identities": [
            {
                "name": "delta-writer",
                "access_key": writer[0],
                "secret_key": writer[1],
                "expect": {"read": True, "write": True, "list": True},
            }
        ],
    }
    return {r["target"]: r for r in run_module(s3_audit, args).result["audit"]}


def test_a_store_anyone_may_read_fails_and_is_left_as_it_was(run_module, open_store):
    """The finding: the probe read a key nothing wrote, and 'NoSuchKey' counted as denied. Now the admin identity
    writes the object first, so an anonymous read that works is seen working."""
    open_store.client("admin").put_object(Bucket="analytics", Key=f"data/{uuid.uuid4()}", Body=b"someone's data")
    before = state(open_store)
    got = audit(run_module, open_store)
    assert got["anonymous access"]["status"] == "fail", got["anonymous access"]
    assert "get: allowed" in got["anonymous access"]["reason"]  # listing stays denied: only the read gives it away
    assert got["read-only"]["status"] == "pass", got["read-only"]
    assert state(open_store) == before


def test_a_sound_store_passes_and_suspended_versioning_fails(run_module, seaweedfs):
    before = state(seaweedfs)
    got = audit(run_module, seaweedfs)
    assert got["anonymous access"]["status"] == "pass", got["anonymous access"]
    assert got["identity delta-writer"]["status"] == "pass", got["identity delta-writer"]
    assert got["bucket policy"]["status"] == "pass", got["bucket policy"]
    assert got["versioning"]["status"] == "pass", got["versioning"]  # the data bucket as the role makes it
    assert got["read-only"]["status"] == "pass" and state(seaweedfs) == before
    admin = seaweedfs.client("admin")
    admin.put_bucket_versioning(Bucket="analytics", VersioningConfiguration={"Status": "Suspended"})
    try:
        assert audit(run_module, seaweedfs)["versioning"]["status"] == "fail"  # seen, not assumed
    finally:
        admin.put_bucket_versioning(Bucket="analytics", VersioningConfiguration={"Status": "Enabled"})


# --- Kafka's listeners and ACL default ------------------------------------------------------------------------------
def test_kafka_probe_passes_a_sasl_ssl_broker_fails_another_policy_and_errs_on_silence(run_module, kafka):
    base = {
        "brokers": ["127.0.0.1"],
        "sasl_port": kafka.port,
        "ports": [kafka.port, kafka.controller_port],
        "ca_path": str(kafka.pki["ca"]),
    }
    (good,) = run_module(kafka_probe, base).result["audit"]
    assert good["status"] == "pass" and good["evidence"]["mechanisms"] == ["SCRAM-SHA-512"], good
    (other,) = run_module(kafka_probe, {**base, "allowed_mechanisms": ["SCRAM-SHA-256"]}).result["audit"]
    assert other["status"] == "fail" and "SASL offers ['SCRAM-SHA-512']" in other["reason"], other
    import socket

    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    (gone,) = run_module(kafka_probe, {**base, "sasl_port": port, "ports": [port]}).result["audit"]
    assert gone["status"] == "error", gone


def test_kafka_access_sees_the_acl_default_as_a_service_user_and_not_as_a_super_user(run_module, kafka):
    conn = {
        "bootstrap_servers": [kafka.bootstrap],
        "ca_path": str(kafka.pki["ca"]),
        "cluster": "test",
        "host": "k",
        "default_logins": [],
    }
    api = {"login_user": "analytics-api", "login_password": kafka.passwords["analytics-api"]}
    service = run_module(kafka_access, {**conn, **api}).result["audit"]
    assert [(r["target"], r["status"]) for r in service] == [("ACL default deny", "pass")], service
    admin = run_module(kafka_access, {**conn, "login_user": "admin", "login_password": kafka.passwords["admin"]})
    assert admin.result["audit"][0]["status"] == "fail"  # a super user may describe anything: not a proof of deny
    wrong = run_module(kafka_access, {**conn, "login_user": "analytics-api", "login_password": "wrong-password-123"})
    assert wrong.result["audit"][0]["status"] == "error" and "was refused" in wrong.result["audit"][0]["reason"]


def test_kafka_access_tries_default_logins_over_scram_directly(run_module, kafka):
    conn = {
        "bootstrap_servers": [kafka.bootstrap],
        "ca_path": str(kafka.pki["ca"]),
        "cluster": "test",
        "login_user": "analytics-api",
        "login_password": kafka.passwords["analytics-api"],
    }
    refused = run_module(kafka_access, {**conn, "default_logins": [{"user": "admin", "password": "admin"}]})
    logins = next(r for r in refused.result["audit"] if r["control"] == "default_passwords")
    assert logins["status"] == "pass", logins
    leaked = run_module(
        kafka_access, {**conn, "default_logins": [{"user": "admin", "password": kafka.passwords["admin"]}]}
    )
    logins = next(r for r in leaked.result["audit"] if r["control"] == "default_passwords")
    assert logins["status"] == "fail" and "accepts default logins: admin/" in logins["reason"], logins
