"""Prometheus, exporters and alert rules, live: verified TLS scrapes, rules under promtool, alerts that go pending."""

from __future__ import annotations

import json
import time

import pytest
from conftest import (
    address,
    ansible_playbook,
    assert_refused,
    dashboard_metric_names,
    dashboard_model,
    dashboards,
    http,
    installed_fingerprint,
    lab_host,
    psql,
    served_fingerprint,
    wait_for,
)

PROM = "https://127.0.0.1:9090"


@pytest.fixture(scope="module")
def mon():
    return lab_host("mon-c")


def query(mon, promql: str) -> list[dict]:
    import urllib.parse

    code, body = http(mon, f"{PROM}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert code == 200, body
    return json.loads(body)["data"]["result"]


def test_rule_unit_tests_pass_and_catch_a_wrong_threshold(mon):
    ok = mon.run("cd /etc/prometheus/tests && promtool test rules platform.rules.test.yml")
    assert ok.rc == 0, ok.stdout + ok.stderr
    # The same tests against rules whose error threshold was raised tenfold must fail: they check the threshold.
    broken = mon.run(
        "rm -rf /tmp/rt && mkdir -p /tmp/rt/rules /tmp/rt/tests && cp /etc/prometheus/tests/*.yml /tmp/rt/tests/ && "
        "sed 's/) > 0.05$/) > 0.5/' /etc/prometheus/rules/platform.rules.yml > /tmp/rt/rules/platform.rules.yml && "
        "grep -q '> 0.5$' /tmp/rt/rules/platform.rules.yml && "
        "cd /tmp/rt/tests && promtool test rules platform.rules.test.yml"
    )
    assert broken.rc != 0 and "HighErrorRate" in broken.stdout + broken.stderr


def test_every_target_is_scraped_over_verified_tls(mon):
    def targets():
        code, body = http(mon, f"{PROM}/api/v1/targets")
        assert code == 200
        active = json.loads(body)["data"]["activeTargets"]
        return active if active and all(t["health"] == "up" for t in active) else None

    active = wait_for(targets)
    assert active, http(mon, f"{PROM}/api/v1/targets")[1]
    jobs = sorted((t["labels"]["job"], t["labels"]["instance"]) for t in active)
    assert {("node", h) for h in ("mon-c", "db-a", "db-b", "api-b")} <= set(jobs)
    want = {("postgresql", "db-a"), ("postgresql", "db-b"), ("analytics_api", "api-b"), ("prometheus", "mon-c")}
    assert want <= set(jobs)
    # Every target over HTTPS, but the blackbox probes: this host's own exporter on its loopback.
    plain = [t["scrapeUrl"] for t in active if not t["scrapeUrl"].startswith("https://")]
    assert plain and all(u.startswith("http://127.0.0.1:9115/probe?") for u in plain), plain
    zones = {t["labels"]["instance"]: t["labels"].get("zone") for t in active}
    assert zones["db-a"] == "zone-a" and zones["api-b"] == "zone-b"


def test_exporters_answer_tls_and_refuse_plain_http():
    """The finding: this check passed when the exporter was down. Now each exporter must answer verified HTTPS, and
    only then is the failed plain-HTTP request evidence that plain HTTP is refused."""
    db = lab_host("db-a")
    for port in (9100, 9187):
        assert http(db, f"https://db-a:{port}/metrics")[0] == 200, f"the exporter on {port} does not answer TLS"
        code, body = http(db, f"http://127.0.0.1:{port}/metrics")
        assert code != 200, body


def eventually(promql_fn, check, timeout=120):
    """Poll until check(value) holds (the exporters' first scrapes can lag under load); return the last value."""
    deadline = time.time() + timeout
    while True:
        value = promql_fn()
        if check(value) or time.time() > deadline:
            return value
        time.sleep(3)


def test_exported_metrics_carry_what_the_rules_need(mon):
    # Two certificates per host (its own and the CA): wait until every host exported both.
    certs = eventually(lambda: query(mon, "ap_certificate_not_after_seconds"), lambda v: len(v) == 8)
    assert len(certs) == 8 and {c["metric"]["instance"] for c in certs} == {"mon-c", "db-a", "db-b", "api-b"}
    assert all(float(c["value"][1]) > time.time() + 86400 for c in certs)

    def values(promql):
        return lambda: sorted(float(u["value"][1]) for u in query(mon, promql))

    unit = values('node_systemd_unit_state{name="analytics-api.service", state="active"}')
    assert eventually(unit, lambda v: v == [1.0]) == [1.0]
    assert eventually(values("pg_up"), lambda v: v == [1.0, 1.0]) == [1.0, 1.0]
    # Our replication queries answer on the primary only: one replica streams, and its lag is measured.
    want = [("db-a", 1.0)]

    def streaming():
        return [(r["metric"]["instance"], float(r["value"][1])) for r in query(mon, "ap_replication_senders_streaming")]

    assert eventually(streaming, lambda v: v == want) == want
    lag = eventually(lambda: query(mon, "ap_replication_replay_lag_seconds"), bool)
    assert [r["metric"]["instance"] for r in lag] == ["db-a"] and float(lag[0]["value"][1]) < 60
    assert eventually(lambda: query(mon, 'http_requests_total{job="analytics_api"}'), bool)


def test_query_statistics_reach_prometheus_by_queryid_and_never_hold_a_password(mon):
    """pg_stat_statements through the exporter: the server's totals and its top statements, labelled by database, role
    and queryid (never the text). Utility statements are not tracked, so a password set by ALTER/CREATE ROLE is not
    kept in the statistics the monitoring role may read."""
    db = lab_host("db-a")
    marker = f"ap_probe_{int(time.time())}"
    secret = f"{marker}_secret"
    psql(db, f"CREATE ROLE {marker} PASSWORD '{secret}'")
    psql(db, f"DROP ROLE {marker}")
    for _i in range(20):
        psql(db, "SELECT count(*) FROM analytics_events WHERE event_type = 'page_view'")
    kept = "SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%{}%'"
    assert psql(db, kept.format(secret), db="postgres") == "0"
    assert psql(db, kept.format("analytics_events"), db="postgres") != "0"

    def top():
        return [r["metric"] for r in query(mon, 'ap_statements_top_calls{instance="db-a", datname="analytics"}')]

    rows = eventually(top, bool)
    assert rows, "no statement of the analytics database among the exported top statements"
    assert all(r["queryid"].lstrip("-").isdigit() and r["username"] for r in rows), rows
    labels = {v for r in query(mon, "ap_statements_top_exec_seconds") for v in r["metric"].values()}
    assert not [v for v in labels if "SELECT" in v.upper() or secret in v], labels
    # Both servers report their totals (the replica its own read statements); the calls only grow.
    calls = eventually(lambda: query(mon, "ap_statements_calls"), lambda v: len(v) == 2)
    assert sorted(r["metric"]["instance"] for r in calls) == ["db-a", "db-b"]
    before = float(next(r["value"][1] for r in calls if r["metric"]["instance"] == "db-a"))
    for _i in range(10):
        psql(db, "SELECT 1")
    grown = eventually(
        lambda: [float(r["value"][1]) for r in query(mon, 'ap_statements_calls{instance="db-a"}')],
        lambda v: v and v[0] >= before + 10,
    )
    assert grown and grown[0] >= before + 10, (before, grown)


def not_after(host, path: str = "/etc/analytics-platform/pki/host.crt") -> float:
    """A certificate file's end on a host, as Unix time."""
    r = host.run(f'date -d "$(openssl x509 -in {path} -noout -enddate | cut -d= -f2)" +%s')
    assert r.rc == 0, r.stderr
    return float(r.stdout)


def test_blackbox_probes_every_served_certificate_and_the_public_endpoint(mon):
    """From each Prometheus host's blackbox exporter (its loopback only): a handshake verified with the platform's CA
    on every TLS endpoint of every host, on its own port; PostgreSQL's served certificate read on its host; and the
    public URL over verified HTTPS. A stopped endpoint must fail its probe, and pass again once back."""
    want = {(h, "node_exporter") for h in ("mon-c", "db-a", "db-b", "api-b")}
    want |= {("db-a", "postgres_exporter"), ("db-b", "postgres_exporter"), ("api-b", "analytics_api")}
    want |= {(h, e) for h in ("mon-c", "api-b") for e in ("prometheus", "alertmanager")}

    def probes():
        got = query(mon, 'probe_success{job="blackbox_tls"}')
        return {(r["metric"]["instance"], r["metric"]["endpoint"]): float(r["value"][1]) for r in got}

    seen = eventually(probes, lambda v: set(v) == want and all(x == 1 for x in v.values()))
    assert set(seen) == want, sorted(set(seen) ^ want)
    assert all(x == 1 for x in seen.values()), {k: v for k, v in seen.items() if v != 1}
    # The expiry is the served certificate's: the one installed on that host.
    db = lab_host("db-a")
    served = query(mon, 'probe_ssl_earliest_cert_expiry{instance="db-a", endpoint="node_exporter"}')
    assert served and abs(float(served[0]["value"][1]) - not_after(db)) < 2, served
    pg = eventually(lambda: query(mon, 'ap_served_certificate_not_after_seconds{instance="db-a"}'), bool)
    assert pg and pg[0]["metric"]["endpoint"] == "postgresql" and float(pg[0]["value"][1]) == not_after(db), pg
    up = 'probe_success{job="blackbox_public"}'
    public = eventually(lambda: query(mon, up), lambda v: bool(v) and v[0]["value"][1] == "1")
    assert [(r["metric"]["url"], r["value"][1]) for r in public] == [(f"https://{address('api-b')}:3001/health", "1")]
    assert "127.0.0.1:9115" in mon.run("ss -Hltn 'sport = :9115'").stdout
    assert "*:9115" not in mon.run("ss -Hltn 'sport = :9115'").stdout

    # The probe can fail: the PostgreSQL exporter of db-b stopped, its probe fails; started again, it passes.
    key = ("db-b", "postgres_exporter")
    replica = lab_host("db-b")
    assert replica.run("systemctl stop prometheus-postgres-exporter").rc == 0
    try:
        assert eventually(probes, lambda v: v.get(key) == 0).get(key) == 0
    finally:
        assert replica.run("systemctl start prometheus-postgres-exporter").rc == 0
    assert eventually(probes, lambda v: v.get(key) == 1).get(key) == 1


def grafana_variables_filled(expr: str) -> str:
    """A dashboard query as Grafana sends it: its own intervals filled in, and "All" for the dashboard's variables."""
    import re

    for var, value in (("$__rate_interval", "1m"), ("$__interval", "1m"), ("$__range", "1h")):
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", expr)


QUERY_ALL = r"""
import json, ssl, sys, urllib.parse, urllib.request, urllib.error
ctx = ssl.create_default_context(cafile="/etc/analytics-platform/pki/ca.crt")
out = []
for expr in json.loads(sys.argv[1]):
    data = urllib.parse.urlencode({"query": expr}).encode()
    try:
        r = urllib.request.urlopen("https://127.0.0.1:9090/api/v1/query", data=data, context=ctx, timeout=30)
        code, body = r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        code, body = e.code, json.loads(e.read() or b"{}")
    out.append([code, body.get("status"), body.get("error")])
print(json.dumps(out))
"""


def test_prometheus_runs_every_dashboard_query_and_knows_every_metric_they_read(mon):
    """Grafana never runs here (AGPL): this Prometheus parses and runs every Prometheus query of every dashboard, and
    the dashboards of what this scenario runs (the API, PostgreSQL, the hosts, monitoring) read only metrics that are
    scraped here. A name is known when sampled, or declared by a scraped target (a labelled counter with no sample
    yet, such as the API's produce errors)."""
    import shlex

    model = dashboard_model()
    queries = [
        (name, title, grafana_variables_filled(expr))
        for name, dash in dashboards().items()
        for title, kind, expr in model.dashboard_queries(json.dumps(dash))
        if kind == "prometheus"
    ]
    # The parse check can fail: the last query is broken on purpose, and Prometheus must answer it 400.
    exprs = [q for _n, _t, q in queries] + ["sum(rate(http_requests_total[5m])"]
    r = mon.run(f"python3 -c {shlex.quote(QUERY_ALL)} {shlex.quote(json.dumps(exprs))}")
    assert r.rc == 0, r.stderr
    answers = json.loads(r.stdout)
    assert len(queries) >= 60 and answers[-1][0] == 400, answers[-1]
    for (name, title, expr), (code, status, error) in zip(queries, answers[:-1], strict=True):
        assert code == 200 and status == "success", f"{name} '{title}': {error} ({expr})"

    code, body = http(mon, f"{PROM}/api/v1/label/__name__/values")
    assert code == 200
    known = set(json.loads(body)["data"])
    code, body = http(mon, f"{PROM}/api/v1/metadata")
    assert code == 200
    for family in json.loads(body)["data"]:
        known |= {family, *(family + s for s in ("_total", "_bucket", "_count", "_sum"))}
    wanted = set().union(*(dashboard_metric_names(tag) for tag in ("api", "postgresql", "hosts", "monitoring")))
    assert len(wanted) > 30 and "ap_no_such_metric" not in known
    missing = wanted - known
    assert not missing, f"dashboards read metrics no target here serves: {sorted(missing)}"


def test_every_rule_is_loaded_and_healthy(mon):
    _unused, body = http(mon, f"{PROM}/api/v1/rules")
    rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
    names = {r["name"] for r in rules}
    assert names >= {
        "HighErrorRate",
        "KafkaConsumerLag",
        "KafkaBrokerDown",
        "ObjectStoreNodeDown",
        "HostDown",
        "ScrapeTargetDown",
        "PostgreSQLReplicationLag",
        "PostgreSQLReplicaNotStreaming",
        "CertificateExpiresSoon",
        "ServedCertificateExpiresSoon",
        "PublicEndpointDown",
        "TLSProbeFailed",
    }
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]


def test_alerts_go_pending_live(mon):
    api, replica = lab_host("api-b"), lab_host("db-b")
    api.run("systemctl stop analytics-api")
    replica.run("systemctl stop postgresql")
    try:

        def pending():
            _unused, body = http(mon, f"{PROM}/api/v1/alerts")
            alerts = json.loads(body)["data"]["alerts"]
            names = {(a["labels"]["alertname"], a["labels"].get("job", "")) for a in alerts}
            want = {("ScrapeTargetDown", "analytics_api"), ("PostgreSQLReplicaNotStreaming", "postgresql")}
            return want <= names

        assert wait_for(pending, timeout=150), http(mon, f"{PROM}/api/v1/alerts")[1]
        promql = 'node_systemd_unit_state{name="analytics-api.service", state="active"}'
        down = eventually(lambda: [float(u["value"][1]) for u in query(mon, promql)], lambda v: v == [0.0])
        assert down == [0.0]
    finally:
        api.run("systemctl start analytics-api")
        replica.run("systemctl start postgresql")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"monitoring_error_rate_threshold": 5}', "monitoring_error_rate_threshold must be a fraction between 0"),
        ('{"monitoring_jobs_extra": [{"name": "x", "group": "all"}]}', "every entry of monitoring_jobs"),
        ('{"monitoring_prometheus_group": "nobody"}', "group 'nobody' (monitoring_prometheus_group)"),
        ('{"monitoring_host_down_for": "2h"}', "monitoring_host_down_for and monitoring_zone_down_for 1s-99s"),
        ('{"monitoring_alert_receivers": []}', "monitoring_alert_receivers must list where alerts go"),
        (
            '{"monitoring_alert_receivers": [{"name": "x", "type": "webhook", "url": "ftp://tok3n-in-the-url"}]}',
            "receiver 'x' (webhook) needs url as an http(s) URL",
        ),
        (
            '{"monitoring_alert_receivers": [{"name": "x", "type": "email", "to": "a@example.com"}]}',
            "e-mail needs monitoring_alert_smtp with smarthost",
        ),
    ],
)
def test_bad_input_fails_in_preflight(scenario_dir, extra, message):
    # Only the monitoring role's preflight: the other plays' checks pass whatever these variables say.
    skip = ("pki", "postgresql", "analytics_api", "python_service")
    r = assert_refused(scenario_dir, extra, message, ("mon-c", "cat /etc/prometheus/prometheus.yml"), skip_roles=skip)
    assert "tok3n" not in r.output, "a receiver's URL was printed"


def test_a_rule_file_that_does_not_parse_is_refused_by_name(scenario_dir, mon):
    before = mon.file("/etc/prometheus/rules").listdir()
    bad = scenario_dir / "files" / "broken.rules.yml"
    r = ansible_playbook(
        scenario_dir / "converge.yml", "--limit", "mon-c", "-e", json.dumps({"monitoring_extra_rule_files": [str(bad)]})
    )
    assert r.returncode != 0
    assert f"monitoring_extra_rule_files: {bad}" in r.output
    assert mon.file("/etc/prometheus/rules").listdir() == before
    assert mon.run("systemctl is-active prometheus").stdout.strip() == "active"


@pytest.mark.drill  # ~170 s (a whole converge): make test-heavy runs it
def test_certificate_renewed_in_an_earlier_play_reaches_postgresql_prometheus_and_the_exporters(scenario_dir, mon):
    """Last in this file: it renews mon-c's and db-a's certificates. The pki role converges a host once per run; a
    renewal in an earlier play must still reach PostgreSQL (its reload) when its play comes later; Prometheus and the
    exporters serve the new certificate without a restart (they re-read it for every connection), Alertmanager's
    cluster gossip after one (its TLS transport reads it at start); every target stays
    up behind verified TLS and the expiry metric shows the new certificate's date."""
    served = {  # (host, port, PostgreSQL's SSLRequest first)
        "prometheus": ("mon-c", 9090, False),
        "alertmanager": ("mon-c", 9095, False),
        "alertmanager's cluster gossip (restarted for it)": ("mon-c", 9094, False),
        "node exporter on mon-c": ("mon-c", 9100, False),
        "node exporter on db-a": ("db-a", 9100, False),
        "postgres exporter": ("db-a", 9187, False),
        "postgresql": ("db-a", 5432, True),
    }
    before = {h: installed_fingerprint(h) for h in ("mon-c", "db-a")}
    for what, (host, port, pg) in served.items():
        assert served_fingerprint(mon, host, port, pg) == before[host], what

    r = ansible_playbook(scenario_dir / "renew.yml")
    assert r.returncode == 0, r.output[-2000:]
    after = {h: installed_fingerprint(h) for h in ("mon-c", "db-a")}
    assert all(after[h] != before[h] for h in after), "the certificates were not renewed"
    for what, (host, port, pg) in served.items():
        assert served_fingerprint(mon, host, port, pg) == after[host], f"{what} still serves the old certificate"
    # Prometheus verifies every target against the CA, which did not change: all of them are scraped again.
    healthy = wait_for(lambda: not query(mon, "up == 0") and query(mon, "up == 1"), timeout=90)
    assert healthy, query(mon, "up == 0")
    # The certificate expiry exporter ran again (its handler hears the renewal): the metric shows the new date.
    enddate = "openssl x509 -noout -enddate -in /etc/analytics-platform/pki/host.crt | cut -d= -f2"
    installed = int(mon.check_output(f'date -d "$({enddate})" +%s'))
    promql = 'ap_certificate_not_after_seconds{instance="mon-c", path="/etc/analytics-platform/pki/host.crt"}'

    def exported():
        got = query(mon, promql)
        return got if got and int(float(got[0]["value"][1])) == installed else None

    assert wait_for(exported, timeout=60), query(mon, promql)
