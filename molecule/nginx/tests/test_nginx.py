"""nginx in front of API hosts in two zones: TLS, spreading, failover, rate limit, redirect, bad input."""

from __future__ import annotations

import json
import re

import pytest
from conftest import (
    address,
    ansible_playbook,
    assert_passes,
    assert_refused,
    dashboard_metric_names,
    exposition_names,
    http,
    installed_fingerprint,
    lab_host,
    py,
    run_audit,
    samples,
    served_fingerprint,
    tcp_open,
)


@pytest.fixture(scope="module")
def client():
    return lab_host("client-x")


def edge(path=""):
    return f"https://{address('edge-a')}{path}"


def health_requests(name):
    """How many /health requests an API host has answered (from its own metrics)."""
    code, body = http(lab_host(name), "https://127.0.0.1:3001/metrics")
    assert code == 200
    m = re.search(r'http_requests_total\{method="GET",path="/health",status="200"\} ([0-9.]+)', body)
    return float(m.group(1)) if m else 0.0


CTX = "import ssl, socket, http.client\nctx = ssl.create_default_context(cafile='/etc/analytics-platform/pki/ca.crt')\n"


TLS11 = (
    "import socket, ssl, sys, warnings\nwarnings.simplefilter('ignore')\n"
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\nctx.check_hostname = False\nctx.verify_mode = ssl.CERT_NONE\n"
    "ctx.set_ciphers('DEFAULT:@SECLEVEL=0')\nctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1\n"
    "try:\n    s = ctx.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5))\n"
    "    print(s.version())\nexcept (ssl.SSLError, OSError) as e:\n    print('refused', e)\n"
)


def offers_tls11(host, server: str, port: int) -> bool:
    import shlex

    out = host.run(f"python3 -c {shlex.quote(TLS11)} {server} {port}").stdout.strip()
    assert out, "the TLS 1.1 client did not run"
    return out == "TLSv1.1"


def openssl_tls11_server(client) -> bool:
    """Whether the TLS 1.1 client gets TLS 1.1 from a server that allows it (openssl s_server on the client)."""
    setup = (
        "cd /tmp && openssl req -x509 -newkey rsa:2048 -nodes -keyout tls11.key -out tls11.crt -subj /CN=tls11 "
        "-days 1 2>/dev/null && (openssl s_server -accept 127.0.0.1:4433 -cert tls11.crt -key tls11.key "
        "-tls1_1 -cipher DEFAULT@SECLEVEL=0 -quiet >/dev/null 2>&1 & echo $! > tls11.pid) && sleep 1"
    )
    assert client.run(setup).rc == 0
    try:
        return offers_tls11(client, "127.0.0.1", 4433)
    finally:
        client.run("kill $(cat /tmp/tls11.pid)")


def test_tls_and_security_headers(client):
    r = py(
        client,
        CTX + "s = ctx.wrap_socket(socket.create_connection(('edge-a', 443)), server_hostname='edge-a')\n"
        "print(s.version())",
    )
    assert r.stdout.strip() in {"TLSv1.3", "TLSv1.2"}, r.stderr
    # TLS 1.1 is refused by nginx; the same client reaches TLS 1.1 with a server that offers it (a local openssl on
    # the client), so the refusal is nginx's and not the client's (Debian's OpenSSL offers it only at SECLEVEL=0).
    assert offers_tls11(client, "edge-a", 443) is False
    assert openssl_tls11_server(client) is True
    headers = py(
        client,
        CTX + "h = http.client.HTTPSConnection('edge-a', 443, context=ctx)\n"
        "h.request('GET', '/health')\nprint(dict(h.getresponse().getheaders()))",
    )
    assert "Strict-Transport-Security" in headers.stdout and "max-age=63072000" in headers.stdout
    assert "nginx/" not in headers.stdout  # server_tokens off


def test_plain_http_redirects(client):
    r = py(
        client,
        "import http.client\nc = http.client.HTTPConnection('edge-a', 80, timeout=5)\n"
        "c.request('GET', '/analytics')\nr = c.getresponse()\n"
        "print(r.status, r.getheader('Location'))",
    )
    assert r.stdout.split()[0] == "301" and r.stdout.split()[1].startswith("https://")


def test_requests_spread_over_both_zones(client):
    before = {n: health_requests(n) for n in ("api-a", "api-b")}
    for _n in range(20):
        assert http(client, "https://edge-a/health")[0] == 200
    after = {n: health_requests(n) for n in ("api-a", "api-b")}
    assert all(after[n] > before[n] for n in after), (before, after)


def test_api_answers_through_nginx_and_cors_is_the_apis(client):
    code, body = http(client, "https://edge-a/analytics", "POST", {"content-type": "application/json"}, "{}")
    assert code == 401 and json.loads(body)["error"] == "missing or invalid API key"


def test_a_burst_beyond_the_limit_gets_429(client):
    script = CTX + (
        "import json\ncodes = []\nh = http.client.HTTPSConnection('edge-a', 443, context=ctx, timeout=10)\n"
        "for i in range(60):\n"
        "    h.request('POST', '/analytics', body='{}', headers={'content-type': 'application/json'})\n"
        "    r = h.getresponse()\n    r.read()\n    codes.append(r.status)\n"
        "print(json.dumps(codes))"
    )
    codes = json.loads(py(client, script).stdout)
    assert codes.count(429) >= 20, codes
    assert 401 in codes  # the first ones reach the API


def test_one_api_host_down_requests_still_succeed(client):
    api_a = lab_host("api-a")
    api_a.run("systemctl stop analytics-api")
    try:
        results = [http(client, "https://edge-a/health")[0] for _n in range(15)]
        assert results == [200] * 15
    finally:
        api_a.run("systemctl start analytics-api")


def nginx_metrics() -> tuple[str, dict[str, float]]:
    """nginx's /metrics as Prometheus gets them (on the edge itself: the port is the monitoring hosts' only):
    (the page, {"name{labels}": value})."""
    code, body = http(lab_host("edge-a"), f"https://{address('edge-a')}:9113/metrics")
    assert code == 200, f"nginx's metrics port answered {code}: {body[:300]}"
    return body, samples(body)


def test_nginx_serves_its_metrics_over_its_own_tls_and_counts_requests(client):
    _body, before = nginx_metrics()
    assert before["nginx_up"] == 1, "the exporter does not reach nginx's stub_status"
    for _n in range(25):
        assert http(client, "https://edge-a/health")[0] == 200
    _body, after = nginx_metrics()
    assert after["nginx_http_requests_total"] - before["nginx_http_requests_total"] >= 25
    assert after["nginx_connections_accepted"] > before["nginx_connections_accepted"]
    edge = lab_host("edge-a")
    # The exporter itself listens on the loopback only, in plain HTTP; nginx's TLS refuses TLS 1.1 on the metrics port.
    listening = edge.run("ss -Hltn 'sport = :9114'").stdout
    assert "127.0.0.1:9114" in listening and "0.0.0.0:9114" not in listening and "*:9114" not in listening
    assert offers_tls11(edge, address("edge-a"), 9113) is False
    code, _body = http(edge, f"http://{address('edge-a')}:9113/metrics")
    assert code == 400  # nginx answers plain HTTP on a TLS port with 400, and no metrics
    # Nobody outside the monitoring group reaches it (this scenario has no monitoring host), while 443 is open.
    assert tcp_open(client, address("edge-a"), 443) and not tcp_open(client, address("edge-a"), 9113)


def test_the_nginx_dashboard_reads_only_metrics_nginx_serves():
    body, _samples = nginx_metrics()
    served = exposition_names(body)
    wanted = dashboard_metric_names("nginx")
    assert len(wanted) >= 5 and "nginx_no_such_metric" not in served
    assert wanted <= served, f"the nginx dashboard reads metrics nginx does not serve: {sorted(wanted - served)}"


def test_nginx_config_is_validated_and_upstreams_are_verified():
    edge_host = lab_host("edge-a")
    conf = edge_host.file("/etc/nginx/nginx.conf").content_string
    assert "least_conn;" in conf and "max_fails=3 fail_timeout=30s" in conf
    assert f"server {address('api-a')}:3001" in conf and f"server {address('api-b')}:3001" in conf
    assert "proxy_ssl_verify on;" in conf and "proxy_ssl_name analytics-api;" in conf
    assert "limit_req zone=api_limit burst=20 nodelay;" in conf
    assert edge_host.run("nginx -t").rc == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"nginx_rate_limit": "0r/s"}', "nginx_rate_limit must be a positive rate"),
        ('{"nginx_upstream_group": "nobody"}', "group 'nobody' (nginx_upstream_group) must list the API hosts"),
        ('{"nginx_exporter_port": 9113}', "nginx_exporter_port is 9113: a free port"),
    ],
)
def test_bad_input_fails_in_preflight(scenario_dir, extra, message):
    assert_refused(scenario_dir, extra, message, ("edge-a", "cat /etc/nginx/nginx.conf"))


def test_certificate_renewed_in_an_earlier_play_reaches_nginx_and_the_api(scenario_dir, client):
    """Last in this file: it renews the edge's and the API hosts' certificates. The pki role converges a host once per
    run; a renewal in an earlier play must still reload nginx and restart the API (it reads its certificate at start)
    when their own plays come later (site.yml's order). The API's port is open to the edge only: seen from there."""
    edge_host = lab_host("edge-a")
    before = {h: installed_fingerprint(h) for h in ("edge-a", "api-a")}
    assert served_fingerprint(client, "edge-a", 443) == before["edge-a"]
    assert served_fingerprint(edge_host, "api-a", 3001) == before["api-a"]

    r = ansible_playbook(scenario_dir / "renew.yml")
    assert r.returncode == 0, r.output[-2000:]
    after = {h: installed_fingerprint(h) for h in ("edge-a", "api-a")}
    assert after["edge-a"] != before["edge-a"] and after["api-a"] != before["api-a"]  # renewed in the first play
    assert "Reload nginx for a new certificate" in r.stdout
    assert served_fingerprint(client, "edge-a", 443) == after["edge-a"]  # served after the later plays' reload
    assert served_fingerprint(edge_host, "edge-a", 9113) == after["edge-a"]  # the metrics port too
    assert served_fingerprint(edge_host, "api-a", 3001) == after["api-a"]  # and restart


def test_the_audit_passes_the_api_controls_the_proxy_and_the_firewall():
    """The hardened side of the audit's proof for the controls this scenario deploys (molecule/insecure fails each)."""
    controls = ["api_auth", "api_rate_limit", "cors", "reverse_proxy", "firewall", "tls"]
    endpoints = {
        "audit_tls_endpoints": [
            {"group": "analytics_api", "port": 3001, "service": "analytics_api"},
            {"group": "nginx", "port": 443, "service": "nginx"},
            {"group": "nginx", "endpoint": "nginx_metrics", "service": "nginx_metrics"},
        ]
    }
    r, results = run_audit(controls, "-e", json.dumps(endpoints))
    assert_passes(results, controls)
    assert r.returncode == 0, r.output[-2000:]
    probed = {(e["host"], e["target"]) for e in results if e["control"] == "tls" and e["status"] == "pass"}
    assert ("edge-a", "nginx_metrics:9113") in probed, probed
