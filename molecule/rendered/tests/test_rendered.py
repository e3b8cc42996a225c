"""Grafana and Bento as rendered (their software does not run here): the files are parsed and checked against the
schemas of what reads them, and against the platform (data source uids, the events table's columns)."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import (
    ROOT,
    ansible_playbook,
    assert_passes,
    assert_refused,
    dashboard_model,
    dashboards,
    lab_host,
    lab_secret,
    run_audit,
)


@pytest.fixture(scope="module")
def obs():
    return lab_host("obs-c")


def read(host, path):
    with host.sudo():
        return host.file(path).content_string


# --- Grafana ------------------------------------------------------------------------------------------------------


def test_grafana_ini_is_secure_and_signs_in_with_keycloak(obs):
    ini = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    ini.read_string(read(obs, "/etc/grafana/grafana.ini"))
    assert ini["server"]["protocol"] == "https" and ini["server"]["min_tls_version"] == "TLS1.2"
    assert obs.file(ini["server"]["cert_file"]).exists and obs.file(ini["server"]["cert_key"]).exists
    assert ini["security"]["admin_password"] == lab_secret("grafana_admin")
    assert len(ini["security"]["secret_key"]) >= 32 and ini["security"]["cookie_secure"] == "true"
    assert ini["auth.anonymous"]["enabled"] == "false" and ini["users"]["allow_sign_up"] == "false"
    oauth = ini["auth.generic_oauth"]
    base = "https://sso.example.com/realms/platform/protocol/openid-connect"
    assert oauth["enabled"] == "true" and oauth["auth_url"] == f"{base}/auth" and oauth["token_url"] == f"{base}/token"
    assert oauth["client_secret"] == lab_secret("grafana_oauth") and "platform-admins" in oauth["role_attribute_path"]
    assert ini["analytics"]["reporting_enabled"] == "false"
    f = obs.file("/etc/grafana/grafana.ini")
    assert f.mode == 0o640 and f.user == "root" and f.group == "grafana"


DATASOURCES_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "datasources"],
    "properties": {
        "apiVersion": {"const": 1},
        "datasources": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "uid", "type", "access", "url"],
                "properties": {
                    "access": {"enum": ["proxy", "direct"]},
                    "jsonData": {"type": "object"},
                    "secureJsonData": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
    },
}


def datasources(obs):
    doc = yaml.safe_load(read(obs, "/etc/grafana/provisioning/datasources/platform.yml"))
    jsonschema.validate(doc, DATASOURCES_SCHEMA)
    return {d["uid"]: d for d in doc["datasources"]}


@pytest.fixture
def grafana_stand_in(obs):
    """Grafana's login endpoints answered from the configuration the role rendered (its admin password, its OAuth
    providers), on Grafana's port with the host certificate: Grafana itself is AGPL-licensed and never runs here."""
    ini = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    ini.read_string(read(obs, "/etc/grafana/grafana.ini"))
    src = ROOT / "molecule" / "resources" / "files" / "grafana_stand_in.py"
    obs.ansible("copy", f"src={src} dest=/usr/local/bin/grafana_stand_in.py mode=0755", become=True, check=False)
    cmd = (
        f"systemd-run --unit=grafana-stand-in --collect python3 /usr/local/bin/grafana_stand_in.py "
        f"--config /etc/grafana/grafana.ini --port {ini['server']['http_port']} "
        f"--cert {ini['server']['cert_file']} --key {ini['server']['cert_key']}"
    )
    with obs.sudo():
        assert obs.run(cmd).rc == 0
        assert (
            obs.run(f"timeout 30 bash -c 'until </dev/tcp/127.0.0.1/{ini['server']['http_port']}; do sleep 1; done'").rc
            == 0
        )
    yield
    with obs.sudo():
        obs.run("systemctl stop grafana-stand-in")


def test_the_audit_passes_grafana_as_rendered(grafana_stand_in):
    """The hardened side of the audit's proof for Grafana (molecule/insecure fails it with admin/admin and no OAuth):
    the rendered admin password is not a default one and the rendered OAuth provider is offered."""
    controls = ["grafana", "default_passwords"]
    r, results = run_audit(controls)
    assert_passes(results, controls)
    assert r.returncode == 0, r.output[-2000:]


def test_the_database_source_is_the_read_replica_with_verify_full(obs):
    ds = datasources(obs)
    pg = ds["analytics-replica"]
    assert pg["url"] == "192.0.2.20:5432" and pg["user"] == "analytics_reader"
    assert pg["jsonData"]["sslmode"] == "verify-full" and pg["jsonData"]["sslRootCertFile"].endswith("ca.crt")
    assert "password" not in pg["jsonData"] and len(pg["secureJsonData"]["password"]) >= 16
    prom = ds["platform-prometheus"]
    assert prom["url"] == "https://192.0.2.30:9090" and "BEGIN CERTIFICATE" in prom["secureJsonData"]["tlsCACert"]


def test_dashboards_validate_and_use_only_provisioned_sources(obs):
    """The dashboards as installed, against Grafana's dashboard model and the data sources rendered next to them
    (the check the role's preflight runs on the controller: plugins/module_utils/dashboards.py)."""
    sources = {uid: d["type"] for uid, d in datasources(obs).items()}
    files = {
        name: read(obs, f"/var/lib/grafana-dashboards/{name}")
        for name in obs.file("/var/lib/grafana-dashboards").listdir()
    }
    assert sorted(files) == sorted(dashboards()), "the host's dashboards are not the role's"
    model = dashboard_model()
    assert model.dashboards_problems(files, sources) == []
    # One dashboard per component and the overview; the check fails a dashboard whose source is not rendered here.
    tags = {tag for text in files.values() for tag in json.loads(text)["tags"]}
    components = {"overview", "api", "nginx", "kafka", "objectstore", "postgresql", "pipelines", "hosts", "monitoring"}
    assert components | {"events"} <= tags
    without_prometheus = {"analytics-replica": sources["analytics-replica"]}
    problems = model.dashboards_problems(files, without_prometheus)
    assert any("'platform-prometheus' is not provisioned" in p for p in problems)
    titles = {p["title"].lower() for text in files.values() for p in json.loads(text)["panels"] if p["type"] != "row"}
    for topic in ("ingest rate", "error", "latency", "consumer lag", "postgresql", "object store"):
        assert any(topic in t for t in titles), topic
    provider = yaml.safe_load(read(obs, "/etc/grafana/provisioning/dashboards/platform.yml"))
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana-dashboards"


def test_alert_rules_reference_their_own_queries(obs):
    doc = yaml.safe_load(read(obs, "/etc/grafana/provisioning/alerting/platform.yml"))
    uids = set(datasources(obs)) | {"__expr__"}
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert rules
    for r in rules:
        refs = {d["refId"] for d in r["data"]}
        assert r["condition"] in refs and all(d["datasourceUid"] in uids for d in r["data"])
        for d in r["data"]:
            if d["datasourceUid"] == "__expr__":
                assert d["model"]["expression"] in refs


# --- Bento --------------------------------------------------------------------------------------------------------

# The fields Bento documents for the components the role uses (the "Advanced" field lists).
KAFKA_FRANZ = set(
    [
        "seed_brokers",
        "topics",
        "regexp_topics",
        "consumer_group",
        "client_id",
        "rack_id",
        "checkpoint_limit",
        "auto_replay_nacks",
        "commit_period",
        "start_from_oldest",
        "tls",
        "sasl",
        "multi_header",
        "batching",
    ]
)
KAFKA_FRANZ_OUT = set(
    [
        "seed_brokers",
        "topic",
        "key",
        "partition",
        "client_id",
        "rack_id",
        "idempotent_write",
        "metadata",
        "max_in_flight",
        "timeout",
        "max_message_bytes",
        "compression",
        "tls",
        "sasl",
        "batching",
    ]
)
SQL_INSERT = {
    "driver",
    "dsn",
    "table",
    "columns",
    "args_mapping",
    "prefix",
    "suffix",
    "options",
    "max_in_flight",
    "init_files",
    "init_statement",
    "conn_max_idle_time",
    "conn_max_life_time",
    "conn_max_idle",
    "conn_max_open",
    "batching",
}
TLS = {"enabled", "skip_cert_verify", "enable_renegotiation", "root_cas", "root_cas_file", "client_certs"}


def bento(obs):
    return yaml.safe_load(read(obs, "/etc/bento/bento.yaml"))


def test_bento_pipeline_uses_only_documented_fields_and_secure_transport(obs):
    cfg = bento(obs)
    assert set(cfg) <= {"http", "logger", "metrics", "input", "pipeline", "output", "buffer", "resources"}
    kin = cfg["input"]["kafka_franz"]
    assert set(kin) <= KAFKA_FRANZ and set(kin["tls"]) <= TLS
    assert kin["tls"] == {"enabled": True, "skip_cert_verify": False, "root_cas_file": kin["tls"]["root_cas_file"]}
    assert kin["sasl"] == [{"mechanism": "SCRAM-SHA-512", "username": "bento", "password": "${KAFKA_PASSWORD}"}]
    assert kin["consumer_group"] == "bento" and kin["topics"] == ["analytics-events"]
    cases = cfg["output"]["switch"]["cases"]
    dlq, pg = cases[0]["output"]["kafka_franz"], cases[1]["output"]["sql_insert"]
    assert set(dlq) <= KAFKA_FRANZ_OUT and dlq["topic"] == "analytics-events-dlq" and dlq["tls"]["enabled"] is True
    assert set(pg) <= SQL_INSERT and pg["driver"] == "postgres"
    assert "sslmode=verify-full" in pg["dsn"] and "${PG_PASSWORD}" in pg["dsn"] and "@192.0.2.10:5432/" in pg["dsn"]
    assert pg["suffix"] == "ON CONFLICT (event_id, event_time) DO NOTHING"


# Bento's HTTP server fields (docs: components/http/about).
HTTP = {"enabled", "address", "root_path", "debug_endpoints", "cert_file", "key_file", "cors", "basic_auth"}


def test_bento_serves_health_and_metrics_over_tls_with_a_key_it_can_read(obs):
    """Prometheus scrapes each instance over TLS (job bento): Bento's HTTP server gets the host's certificate and key,
    and its user may read the key (the pki role's key group), or the instances would not start."""
    http = bento(obs)["http"]
    assert set(http) <= HTTP and http["debug_endpoints"] is False
    assert http["cert_file"] == "/etc/analytics-platform/pki/host.crt"
    assert http["key_file"] == "/etc/analytics-platform/pki/host.key"
    assert obs.run(f"runuser -u bento -- test -r {http['key_file']}").rc == 0
    assert obs.run(f"runuser -u nobody -- test -r {http['key_file']}").rc != 0
    # Two instances (bento_instances: 2): each on its own port, bento_http_port and the next.
    unit = obs.run("systemctl cat bento@.service").stdout
    assert '"http.address=0.0.0.0:$((4195 + %i - 1))"' in unit


def test_bento_writes_every_column_of_the_events_table(obs):
    pg = bento(obs)["output"]["switch"]["cases"][1]["output"]["sql_insert"]
    ddl = (ROOT / "roles/postgresql/files/analytics_events.sql").read_text()
    body = ddl.split("CREATE TABLE IF NOT EXISTS analytics_events (", 1)[1].split(") PARTITION BY", 1)[0]
    table_columns = [m.group(1) for m in re.finditer(r"^\s+([a-z_]+)\s+(uuid|text|timestamptz|jsonb)", body, re.M)]
    assert pg["columns"] == table_columns
    args = re.findall(r"^\s+this\.", pg["args_mapping"], re.M)
    assert len(args) == len(table_columns)


def test_bento_secrets_stay_out_of_the_pipeline(obs):
    env = obs.file("/etc/bento/bento.env")
    assert env.mode == 0o600 and env.user == "root"
    assert f"KAFKA_PASSWORD={lab_secret('kafka_bento')}" in read(obs, "/etc/bento/bento.env")
    assert lab_secret("kafka_bento") not in read(obs, "/etc/bento/bento.yaml")
    # The unit as systemd runs it: its file plus the shared hardening drop-in (roles/base: unit_hardening).
    unit = obs.run("systemctl cat bento@.service").stdout
    for line in ("User=bento", "NoNewPrivileges=yes", "ProtectSystem=strict", "EnvironmentFile=/etc/bento/bento.env"):
        assert line in unit


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '{"grafana_admin_user": "admin", "grafana_admin_password": "admin"}',
            "admin/admin and other defaults are refused",
        ),
        ('{"grafana_oauth_provider": "github", "grafana_oauth_client_id": ""}', "needs grafana_oauth_client_id"),
        ('{"grafana_pg_host": ""}', "Grafana reads the READ REPLICA"),
        ('{"bento_install_binary": true}', "Bento is not distributed with this collection"),
        ('{"bento_instances": 0}', "bento_instances and bento_batch_count must be 1 or more"),
    ],
)
def test_bad_input_fails_in_preflight(scenario_dir, extra, message):
    assert_refused(scenario_dir, extra, message, ("obs-c", "cat /etc/grafana/grafana.ini"))


def off_the_grid(dash):
    dash["panels"][1]["gridPos"]["x"] = 20
    return dash


def unprovisioned_source(dash):
    dash["panels"][0]["datasource"]["uid"] = "someone-elses-prometheus"
    return dash


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (None, "broken.json: not JSON"),
        (off_the_grid, "broken.json: panel 2 'Error ratio (5xx share per service)': gridPos x + w is 32"),
        (unprovisioned_source, "datasource uid 'someone-elses-prometheus' is not provisioned"),
    ],
)
def test_a_dashboard_grafana_could_not_show_is_refused_by_name(scenario_dir, tmp_path: Path, break_it, message):
    overview = dashboards()["overview.json"]
    (tmp_path / "broken.json").write_text(json.dumps(break_it(overview)) if break_it else "{not json")
    r = ansible_playbook(
        scenario_dir / "converge.yml", "-e", json.dumps({"grafana_dashboards_dir": str(tmp_path)}), preflight_only=True
    )
    assert r.returncode != 0 and message in r.output, r.output[-1500:]
