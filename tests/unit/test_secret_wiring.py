"""Each credential is wired once, where its server defines it: a client's secret defaults to the server side's
(kafka_client_passwords, postgresql_*_password, seaweedfs_s3_secret_keys or minio_user_secrets), and the example
inventories set none of them twice."""

from __future__ import annotations

import json

import pytest
import yaml

from .conftest import ROOT, write_role_defaults

# client variable -> where its value comes from (the server side's variable, as a Jinja expression on the inventory)
DERIVED = {
    "analytics_api_kafka_password": "kafka_client_passwords['analytics-api']",
    "pg_sink_kafka_password": "kafka_client_passwords['pg-sink']",
    "delta_writer_kafka_password": "kafka_client_passwords['delta-writer']",
    "bento_kafka_password": "kafka_client_passwords['bento']",
    "pg_sink_pg_password": "postgresql_sink_password",
    "bento_pg_password": "postgresql_sink_password",
    "grafana_pg_password": "postgresql_reader_password",
    "monitoring_postgres_exporter_password": "postgresql_monitor_password",
    "delta_writer_s3_secret_key": "seaweedfs_s3_secret_keys['delta-writer']",
    "delta_dashboard_s3_secret_key": "seaweedfs_s3_secret_keys['delta-dashboard']",
    "postgresql_backup_s3_secret_key": "seaweedfs_s3_secret_keys['pgbackrest']",
    "audit_kafka_probe_password": "kafka_client_passwords['analytics-api']",
}
SERVER_SIDE = {
    "kafka_client_passwords": {
        n: f"kafka-{n}-Xq7vLp2" * 2 for n in ("analytics-api", "pg-sink", "delta-writer", "bento")
    },
    "postgresql_sink_password": "sink-Xq7vLp2Xq7vLp2",
    "postgresql_reader_password": "reader-Xq7vLp2Xq7vLp2",
    "postgresql_monitor_password": "monitor-Xq7vLp2Xq7vLp2",
    "seaweedfs_s3_secret_keys": {
        "delta-writer": "s3-writer-Xq7vLp2Xq7v",
        "delta-dashboard": "s3-dash-Xq7vLp2Xq7v",
        "pgbackrest": "s3-pgbr-Xq7vLp2Xq7v",
    },
}
# Each S3 client's access key: its identity's entry in seaweedfs_s3_access_keys (a rotated key), else the identity.
ACCESS_KEYS = {
    "delta_writer_s3_access_key": "delta-writer",
    "delta_dashboard_s3_access_key": "delta-dashboard",
    "postgresql_backup_s3_access_key": "pgbackrest",
}
PLAY = """
- name: Render the clients' secrets from the roles' defaults
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{defaults}]
  tasks:
    - ansible.builtin.copy:
        dest: {out}
        mode: "0600"
        content: >-
          {{{{ dict({names} | zip({names} | map('extract', vars))) | to_json }}}}
"""


@pytest.mark.parametrize("store", ["seaweedfs", "minio"])
def test_a_clients_secret_defaults_to_its_servers(tmp_path, playbook, store):
    server = dict(SERVER_SIDE)
    if store == "minio":  # MinIO's service users hold the S3 keys instead
        server["minio_user_secrets"] = server.pop("seaweedfs_s3_secret_keys")
    write_role_defaults(tmp_path / "defaults.yml", server)
    inventory = {"all": {"hosts": {"localhost": {"ansible_python_interpreter": "python3"}}, "vars": server}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    out = tmp_path / "out.json"
    names = json.dumps(sorted(DERIVED))
    (tmp_path / "play.yml").write_text(PLAY.format(defaults=tmp_path / "defaults.yml", out=out, names=names))
    r = playbook(tmp_path / "hosts.yml", tmp_path / "play.yml", cwd=tmp_path)
    assert r.returncode == 0, r.output[-2000:]
    got = json.loads(out.read_text())
    for client, source in DERIVED.items():
        if store == "minio":
            source = source.replace("seaweedfs_s3_secret_keys", "minio_user_secrets")
        base, _sep, key = source.partition("[")
        want = server[base][key.strip("']")] if key else server[base]
        assert got[client] == want, f"{client} is not {source}"


@pytest.mark.parametrize("inventory", ["lab", "staging", "production"])
def test_the_example_inventories_wire_each_credential_once(inventory):
    group_vars = ROOT / "inventories" / inventory / "group_vars"
    set_here = set()
    for f in group_vars.rglob("*.yml"):
        set_here |= set((yaml.safe_load(f.read_text()) or {}) if not f.read_text().startswith("$ANSIBLE_VAULT") else {})
    twice = sorted(set(DERIVED) & set_here)
    assert not twice, f"inventories/{inventory} sets {twice}: they default to their server's secret"


def render_clients(tmp_path, playbook, server: dict, names: list[str]) -> dict:
    write_role_defaults(tmp_path / "defaults.yml", server)
    inventory = {"all": {"hosts": {"localhost": {"ansible_python_interpreter": "python3"}}, "vars": server}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    out = tmp_path / "out.json"
    play = PLAY.format(defaults=tmp_path / "defaults.yml", out=out, names=json.dumps(sorted(names)))
    (tmp_path / "play.yml").write_text(play)
    r = playbook(tmp_path / "hosts.yml", tmp_path / "play.yml", cwd=tmp_path)
    assert r.returncode == 0, r.output[-2000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("rotated", [False, True])
def test_s3_clients_follow_their_identitys_access_key_and_keep_its_secret(tmp_path, playbook, rotated):
    """A rotation gives an identity a new access key (seaweedfs_s3_access_keys): its clients and the audit follow it,
    and their secret stays the identity's entry in seaweedfs_s3_secret_keys."""
    server = dict(SERVER_SIDE)
    if rotated:
        server["seaweedfs_s3_access_keys"] = {i: f"{i}-r2" for i in ACCESS_KEYS.values()}
    secrets = [c for c in DERIVED if c.endswith("_s3_secret_key")]
    got = render_clients(tmp_path, playbook, server, [*ACCESS_KEYS, *secrets, "audit_s3_identities"])
    for client, identity in ACCESS_KEYS.items():
        assert got[client] == (f"{identity}-r2" if rotated else identity), client
    for client in secrets:
        assert got[client] == server["seaweedfs_s3_secret_keys"][DERIVED[client].split("'")[1]], client
    audited = {i["name"]: i["access_key"] for i in got["audit_s3_identities"]}
    assert audited == {i: (f"{i}-r2" if rotated else i) for i in ACCESS_KEYS.values()}


def test_the_audit_looks_for_every_credential_mappings_included():
    from ansible_collections.analytics.platform.plugins.filter.audit import audit_secrets

    host_vars = {
        "kafka_admin_password": "admin-Xq7vLp2Xq7vLp2",
        "kafka_client_passwords": {"pg-sink": "sink-Xq7vLp2Xq7vLp2", "empty": ""},
        "postgresql_admin_password": "",
        "zone": "zone-a",
    }
    host_vars["seaweedfs_s3_previous_credentials"] = {
        "pgbackrest": {"access_key": "pgbackrest", "secret_key": "old-Xq7vLp2Xq7v"}
    }
    names = ["kafka_admin_password", "kafka_client_passwords", "postgresql_admin_password", "seaweedfs_jwt_key"]
    names.append("seaweedfs_s3_previous_credentials")
    assert audit_secrets(host_vars, names) == {
        "kafka_admin_password": "admin-Xq7vLp2Xq7vLp2",
        "kafka_client_passwords['pg-sink']": "sink-Xq7vLp2Xq7vLp2",
        "seaweedfs_s3_previous_credentials['pgbackrest'].secret_key": "old-Xq7vLp2Xq7v",
    }
