"""MinIO rendered and validated (AGPL-3.0: never run here): environment, policies, setup script, unit, preflight."""

from __future__ import annotations

import json
import shlex

import pytest
from conftest import assert_refused, lab_host, lab_secret

NODES = ["minio-a1", "minio-a2", "minio-b1", "minio-b2", "minio-c1", "minio-c2"]


def env(host):
    out = {}
    for line in host.file("/etc/minio/minio.env").content_string.splitlines():
        if line and not line.startswith("#"):
            k, _unused, v = line.partition("=")
            out[k] = shlex.split(v)[0] if v else ""
    return out


@pytest.mark.parametrize("node", NODES)
def test_environment(node):
    host = lab_host(node)
    f = host.file("/etc/minio/minio.env")
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    e = env(host)
    volumes = e["MINIO_VOLUMES"].split()
    assert volumes == [f"https://{n}:9000/srv/minio/disk1" for n in NODES]
    assert e["MINIO_SERVER_URL"] == f"https://{node}:9000"
    assert e["MINIO_BROWSER_REDIRECT_URL"] == f"https://{node}:9001"
    assert e["MINIO_STORAGE_CLASS_STANDARD"] == "EC:3"
    assert e["MINIO_ROOT_USER"] == "platform-root" and e["MINIO_ROOT_PASSWORD"] == lab_secret("minio_root")
    assert "minioadmin" not in f.content_string
    assert e["MINIO_AUDIT_WEBHOOK_ENABLE_platform"] == "on"
    assert "--certs-dir /etc/minio/certs" in e["MINIO_OPTS"]
    assert host.file("/etc/minio/certs/private.key").mode == 0o640


def test_policies_are_least_privilege():
    host = lab_host("minio-a1")
    writer = json.loads(host.file("/etc/minio/policies/delta-writer.json").content_string)
    dash = json.loads(host.file("/etc/minio/policies/delta-dashboard.json").content_string)

    def actions(p):
        return {a for s in p["Statement"] for a in s["Action"]}

    def resources(p):
        return {r for s in p["Statement"] for r in s["Resource"]}

    # The writer's maintenance lists and removes old versions of the versioned bucket.
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:ListBucketVersions", "s3:DeleteObjectVersion"} <= (
        actions(writer)
    )
    assert "s3:PutObject" not in actions(dash) and "s3:DeleteObject" not in actions(dash)
    assert resources(writer) == resources(dash) == {"arn:aws:s3:::analytics", "arn:aws:s3:::analytics/*"}
    assert all(s["Effect"] == "Allow" for p in (writer, dash) for s in p["Statement"])
    assert not any(a in {"*", "s3:*"} for a in actions(writer) | actions(dash))


def test_setup_script_and_unit():
    host = lab_host("minio-a1")
    script = host.file("/usr/local/sbin/minio-setup").content_string
    assert "mc mb --with-versioning platform/analytics" in script
    assert "mc anonymous set none platform/analytics" in script
    assert host.run("bash -n /usr/local/sbin/minio-setup").rc == 0
    # The unit as systemd would run it: its file plus the shared hardening drop-in (roles/base: unit_hardening).
    unit = host.run("systemctl cat minio.service").stdout
    assert "EnvironmentFile=/etc/minio/minio.env" in unit and "NoNewPrivileges=yes" in unit
    assert "6 nodes x 1 drives, EC:3" in unit
    # Not installed, not running: MinIO is never run on these machines.
    assert not host.file("/usr/local/bin/minio").exists
    assert not host.service("minio").is_running


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"minio_root_password": "minioadmin"}', "minio_root_user and minio_root_password must come from vault"),
        ('{"minio_root_user": "minioadmin", "minio_root_password": "a-long-enough-password"}', "minioadmin/minioadmin"),
        ('{"minio_parity": "EC:4"}', "minio_parity EC:4 is impossible for erasure sets of 6 drives"),
        ('{"minio_user_secrets": {}}', "minio_user_secrets['delta-writer'] must be a 16+ character secret"),
        ('{"minio_install_binaries": true}', "MinIO is not distributed with this collection"),
        ('{"zone": "zone-a"}', "all platform hosts are in one zone"),
    ],
)
def test_bad_input_fails_in_preflight(scenario_dir, extra, message):
    assert_refused(scenario_dir, extra, message, ("minio-a1", "cat /etc/minio/minio.env"))
