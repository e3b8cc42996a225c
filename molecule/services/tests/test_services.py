"""The Python services as their roles deploy them: from the wheelhouse, under their own users, in hardened units,
with secrets only in root-readable files; liveness answers, readiness names the missing backend."""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import (
    ROOT,
    ansible_playbook,
    assert_passes,
    assert_refused,
    dashboard_metric_names,
    exposition_names,
    http,
    lab_host,
    lab_secret,
    run_audit,
    wait_for,
)

SERVICES = {
    "svc-a": ["analytics-api", "pg-sink"],
    "svc-b": ["analytics-api", "delta-writer", "delta-dashboard"],
}
HEALTH = {
    "analytics-api": "https://127.0.0.1:3001",
    "pg-sink": "https://127.0.0.1:9101",
    "delta-writer": "https://127.0.0.1:9102",
    "delta-dashboard": "https://127.0.0.1:8501",
}
PARAMS = [(h, s) for h, services in SERVICES.items() for s in services]


@pytest.mark.parametrize(("name", "service"), PARAMS)
def test_unit_is_hardened_and_runs_as_its_user(name, service):
    host = lab_host(name)
    props = dict(
        line.split("=", 1)
        for line in host.run(
            f"systemctl show {service} -p ActiveState -p User -p NoNewPrivileges -p ProtectSystem -p PrivateTmp "
            "-p Restart -p CapabilityBoundingSet -p ProtectHome -p MemoryMax"
        ).stdout.splitlines()
    )
    assert props["ActiveState"] == "active"
    assert props["User"] == service
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["PrivateTmp"] == "yes"
    assert props["ProtectHome"] == "yes"
    assert props["Restart"] == "on-failure"
    assert props["CapabilityBoundingSet"] == ""
    assert props["MemoryMax"] != "infinity"
    pid = host.run(f"systemctl show -p MainPID --value {service}").stdout.strip()
    assert host.run(f"stat -c %U /proc/{pid}").stdout.strip() == service
    assert host.user(service).shell == "/usr/sbin/nologin"


def test_a_consumer_whose_loop_stops_is_killed_by_systemds_watchdog_and_restarted():
    """The sinks ping systemd's watchdog from their main loop (WatchdogSec, pg_sink_watchdog_seconds: 20 here): one
    whose loop stops (SIGSTOP here; a client call that never returns in life) is killed and started again. The API,
    which has no such loop, has no watchdog."""
    host = lab_host("svc-a")

    def unit(*props):
        out = host.run(f"systemctl show pg-sink {' '.join('-p ' + p for p in props)}").stdout
        return dict(line.split("=", 1) for line in out.splitlines())

    assert unit("WatchdogUSec")["WatchdogUSec"] == "20s"
    assert host.run("systemctl show -P WatchdogUSec analytics-api").stdout.strip() in ("0", "infinity")
    before = unit("MainPID", "NRestarts")
    assert before["MainPID"] != "0"
    since = host.run("date +%s").stdout.strip()
    host.run(f"kill -STOP {before['MainPID']}")

    def restarted():
        now = unit("MainPID", "NRestarts", "ActiveState")
        moved = now["MainPID"] not in ("0", before["MainPID"]) and int(now["NRestarts"]) > int(before["NRestarts"])
        return now if moved and now["ActiveState"] == "active" else None

    assert wait_for(restarted, timeout=120), unit("MainPID", "NRestarts", "ActiveState")
    # systemd's own lines about the unit (the sink's lines, such as its retries while no broker answers, may be many).
    log = host.run(f"journalctl --no-pager -o cat _PID=1 UNIT=pg-sink.service --since @{since}").stdout
    assert "Watchdog timeout" in log, log[-1500:]


@pytest.mark.parametrize(("name", "service"), PARAMS)
def test_secrets_only_in_a_root_only_file_never_in_arguments(name, service):
    host = lab_host(name)
    env = host.file(f"/etc/analytics-platform/{service}.env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    pid = host.run(f"systemctl show -p MainPID --value {service}").stdout.strip()
    cmdline = host.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout
    for secret in ("kafka_analytics_api", "kafka_pg_sink", "kafka_delta_writer", "pg_sink", "s3_delta_writer"):
        assert lab_secret(secret) not in cmdline
    # The service itself cannot read its environment file.
    assert host.run(f"runuser -u {service} -- cat /etc/analytics-platform/{service}.env").rc != 0


def dist_name(wheel: str) -> str:
    return wheel.split("-", 1)[0].replace("_", "-").lower()


@pytest.mark.parametrize(("name", "service"), PARAMS)
def test_installed_from_the_wheelhouse_only(name, service):
    host = lab_host(name)
    assert (
        host.run(f"cd /opt/analytics-platform/wheelhouse && sha256sum --quiet --strict -c {service}.SHA256SUMS").rc == 0
    )
    pip = host.run(f"/opt/analytics-platform/{service}/venv/bin/pip show {service}")
    assert pip.rc == 0 and "Version: 0.1.0" in pip.stdout
    # Exactly the wheels the service's list names are installed (pip and setuptools come with the venv).
    listed = {dist_name(w) for w in (ROOT / "artifacts" / "wheelhouse" / f"{service}.wheels").read_text().split()}
    installed = json.loads(host.run(f"/opt/analytics-platform/{service}/venv/bin/pip list --format=json").stdout)
    assert {p["name"].replace("_", "-").lower() for p in installed} - {"pip", "setuptools"} == listed


@pytest.mark.parametrize(("name", "service"), PARAMS)
def test_the_unit_runs_its_build_and_venv_links_to_it(name, service):
    """One virtualenv per build (venv-<id>): the unit starts the build's own path, never the `venv` link that a newer
    build moves, and the running process is that build's."""
    host = lab_host(name)
    root = f"/opt/analytics-platform/{service}"
    build = host.file(f"{root}/venv").linked_to
    assert host.file(f"{root}/venv").is_symlink and re.fullmatch(rf"{root}/venv-[0-9a-f]{{12}}", build), build
    assert f"ExecStart={build}/bin/" in host.file(f"/etc/systemd/system/{service}.service").content_string
    pid = host.run(f"systemctl show -p MainPID --value {service}").stdout.strip()
    assert host.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout.startswith(f"{build}/bin/python")


def test_builds_no_process_runs_are_removed_and_the_running_one_is_kept(scenario_dir):
    """An earlier build left behind (its process restarted long ago) is removed by the next run; the build the
    service runs, and the newest, stay; nothing restarts."""
    host = lab_host("svc-a")
    root = "/opt/analytics-platform/analytics-api"
    build = host.file(f"{root}/venv").linked_to
    pid = host.run("systemctl show -p MainPID --value analytics-api").stdout.strip()
    host.run_expect([0], f"cp -a {build} {root}/venv-000000000000")
    r = ansible_playbook(scenario_dir / "converge.yml", "--limit", "svc-a")
    assert r.returncode == 0, r.output[-2000:]
    assert not host.file(f"{root}/venv-000000000000").exists, "an earlier build was left behind"
    assert host.file(build).is_directory and host.file(f"{root}/venv").linked_to == build
    assert host.run("systemctl show -p MainPID --value analytics-api").stdout.strip() == pid


def test_a_host_gets_only_the_wheels_of_its_services():
    # svc-a runs the API and the sink: the lake's wheels (pyarrow, deltalake: 100 MB) never reach it.
    on_a = {
        dist_name(w)
        for w in lab_host("svc-a").file("/opt/analytics-platform/wheelhouse").listdir()
        if w.endswith(".whl")
    }
    on_b = {
        dist_name(w)
        for w in lab_host("svc-b").file("/opt/analytics-platform/wheelhouse").listdir()
        if w.endswith(".whl")
    }
    assert {"analytics-api", "pg-sink", "psycopg"} <= on_a and not {"pyarrow", "deltalake"} & on_a
    assert {"deltalake", "pyarrow", "delta-writer"} <= on_b and "pg-sink" not in on_b


@pytest.mark.parametrize(("name", "service"), PARAMS)
def test_liveness_answers_and_readiness_names_the_missing_backend(name, service):
    host = lab_host(name)
    code, body = http(host, HEALTH[service] + "/health")
    assert code == 200, body
    code, body = http(host, HEALTH[service] + "/ready")
    assert code == 503, body


@pytest.mark.parametrize(
    ("name", "url"), [("svc-a", "http://127.0.0.1:9101/health"), ("svc-b", "http://127.0.0.1:9102/health")]
)
def test_the_consumers_metrics_are_served_over_tls_only(name, url):
    """The finding: pg_sink and delta_writer served /metrics in plain HTTP on every address."""
    code, body = http(lab_host(name), url)
    assert code != 200, body
    assert http(lab_host(name), url.replace("http://127.0.0.1", f"https://{name}"))[0] == 200  # verified by name


def test_the_pipelines_dashboard_reads_only_metrics_the_consumers_declare():
    """Grafana never runs here: the sink and writer dashboard's queries must name metrics pg_sink and delta_writer
    serve (declared by # TYPE before their first sample: no Kafka runs in this scenario)."""
    served = set()
    for name, port in (("svc-a", 9101), ("svc-b", 9102)):
        code, body = http(lab_host(name), f"https://{name}:{port}/metrics")
        assert code == 200, body
        served |= exposition_names(body)
    wanted = dashboard_metric_names("pipelines")
    assert len(wanted) >= 6 and "consumer_no_such_metric" not in served
    assert wanted <= served, f"the dashboard reads metrics the consumers do not serve: {sorted(wanted - served)}"


def test_the_audit_passes_the_services_tls_and_secrets():
    """The hardened side of the audit's proof for the services (molecule/insecure serves the sink's metrics in plain
    HTTP and fails): every endpoint of the four services verifies against the platform CA, no secret of theirs is
    in an argument, a readable file or the journal, and the running APIs honour consent signals (the default)."""
    controls = ["tls", "secrets", "consent"]
    endpoints = {
        "audit_tls_endpoints": [
            {"group": "analytics_api", "port": 3001, "service": "analytics_api"},
            {"group": "pg_sink", "port": 9101, "service": "pg_sink_metrics"},
            {"group": "delta_writer", "port": 9102, "service": "delta_writer_metrics"},
            {"group": "delta_dashboard", "port": 8501, "service": "delta_dashboard"},
        ]
    }
    r, results = run_audit(controls, "-e", json.dumps(endpoints))
    assert_passes(results, controls)
    assert {x["target"] for x in results if x["control"] == "tls"} >= {
        "pg_sink_metrics:9101",
        "delta_writer_metrics:9102",
    }
    consent = {x["host"]: x["evidence"]["effective"] for x in results if x["control"] == "consent"}
    assert consent == {"svc-a": "anonymize", "svc-b": "anonymize"}, results
    assert r.returncode == 0, r.output[-2000:]


def test_api_behind_tls_checks_keys_and_reports_kafka_down():
    host = lab_host("svc-a")
    url = HEALTH["analytics-api"] + "/analytics"
    event = json.dumps({"event_type": "page_view"})
    headers = {"content-type": "application/json"}
    assert http(host, url, "POST", headers, event)[0] == 401
    code, body = http(host, url, "POST", {**headers, "x-api-key": lab_secret("api_key_lab")}, event)
    assert code == 503 and json.loads(body)["error"].startswith("event store unavailable")
    # The certificate verifies by host name too (nginx proxies to the API by name).
    assert http(host, "https://svc-a:3001/health")[0] == 200


def test_maintenance_timer_only_on_the_maintenance_host():
    assert lab_host("svc-b").service("delta-writer-maintenance.timer").is_enabled
    assert not lab_host("svc-a").file("/etc/systemd/system/delta-writer-maintenance.timer").exists


def test_a_broken_setting_stops_the_service_with_one_line(scenario_dir):
    host = lab_host("svc-a")
    host.run("sed -i 's/^API_MAX_BATCH=.*/API_MAX_BATCH=\"many\"/' /etc/analytics-platform/analytics-api.env")
    host.run("systemctl restart analytics-api")
    time.sleep(3)
    try:
        assert host.run("systemctl is-active analytics-api").stdout.strip() in {"failed", "activating"}
        log = host.run("journalctl -u analytics-api -n 20 --no-pager -o cat").stdout
        assert "analytics-api: configuration error: API_MAX_BATCH is malformed ('many')" in log
    finally:
        r = ansible_playbook(scenario_dir / "converge.yml", "--limit", "svc-a")
        assert r.returncode == 0, r.output[-1500:]
    assert host.run("systemctl is-active analytics-api").stdout.strip() == "active"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"analytics_api_keys": {"web": "plaintext-key"}}', "offending names: ['web']"),
        ('{"analytics_api_cors_origins": ["*"]}', "analytics_api_cors_origins must list exact origins"),
        (
            '{"analytics_api_key_rate_limits": {"nobody": {"limit": 10, "window_seconds": 1, "burst": 1}}}',
            "analytics_api_key_rate_limits must map key names of analytics_api_keys to {limit, window_seconds, burst}",
        ),
        ('{"analytics_api_kafka_password": "analytics123"}', "analytics_api_kafka_password is missing, shorter"),
        ('{"pg_sink_pg_password": ""}', "pg_sink_kafka_password and pg_sink_pg_password must be set from vault"),
        ('{"delta_writer_s3_endpoint": "http://10.0.0.1:8333"}', "delta_writer_s3_endpoint an https:// URL"),
        ('{"analytics_api_wheelhouse": "/nonexistent"}', "must hold exactly one wheel of analytics-api"),
    ],
)
def test_bad_input_fails_before_changes(scenario_dir, extra, message):
    # The roles' own checks are tagged preflight; the wheelhouse is checked by python_service inside the deployment.
    watch = ("svc-a", "systemctl show -p ActiveEnterTimestamp analytics-api")
    assert_refused(scenario_dir, extra, message, watch, preflight_only="wheelhouse" not in extra)
