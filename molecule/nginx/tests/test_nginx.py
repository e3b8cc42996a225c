"""nginx in front of API hosts in two zones: TLS, spreading, failover, rate limit, redirect, bad input."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time

import pytest
from conftest import (
    ROOT,
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
    wait_for,
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
        (
            '{"nginx_floating_address": "10.0.0.300/24"}',
            "nginx_floating_address must be empty or an IPv4 address with its prefix length",
        ),
        ('{"nginx_floating_router_id": 256}', "nginx_floating_router_id 1-255 (got '256')"),
    ],
)
def test_bad_input_fails_in_preflight(scenario_dir, extra, message):
    assert_refused(scenario_dir, extra, message, ("edge-a", "cat /etc/nginx/nginx.conf"))


# A steady client: a POST to /analytics through the edge (argv[3]) every 0.25 s (under the scenario's 5 r/s limit),
# each on a new connection, until the stop file appears; then the answers, [time, status or error, attempts, time of
# the answer], as JSON. A request whose connection fails or that gets no answer within argv[5] seconds is sent again
# after 0.5 s, up to argv[4] more times, as a client that retries would (0: none).
LOAD = CTX + (
    "import json, os, sys, threading, time\nout, stop, target, retries, timeout = sys.argv[1:6]\nanswers = []\n"
    "def one():\n    t = time.time()\n    for attempt in range(1 + int(retries)):\n        try:\n"
    "            h = http.client.HTTPSConnection(target, 443, context=ctx, timeout=float(timeout))\n"
    "            h.request('POST', '/analytics', body='{}', headers={'content-type': 'application/json'})\n"
    "            r = h.getresponse()\n            r.read()\n"
    "            answers.append([t, r.status, attempt + 1, time.time()])\n"
    "            return\n"
    "        except (OSError, http.client.HTTPException) as e:\n            error = type(e).__name__\n"
    "            time.sleep(0.5)\n"
    "    answers.append([t, error, attempt + 1, time.time()])\n"
    "workers = []\nwhile not os.path.exists(stop):\n"
    "    workers.append(threading.Thread(target=one))\n    workers[-1].start()\n    time.sleep(0.25)\n"
    "for w in workers:\n    w.join()\n"
    "open(out + '.tmp', 'w').write(json.dumps(answers))\nos.replace(out + '.tmp', out)\n"
)
PENDING = "/var/lib/analytics-platform/restart-pending/analytics-api"


class SteadyClient:
    def __init__(self, client, target: str = "edge-a", retries: int = 0, timeout: float = 20):
        self.client = client
        client.run("rm -f /tmp/rollout-load.json /tmp/rollout-load.stop")
        client.run_expect(
            [0],
            f"nohup python3 -c {shlex.quote(LOAD)} /tmp/rollout-load.json /tmp/rollout-load.stop "
            f"{target} {retries} {timeout} >/tmp/rollout-load.log 2>&1 &",
        )

    def stop(self) -> list:
        self.client.run("touch /tmp/rollout-load.stop")
        for _n in range(60):
            r = self.client.run("cat /tmp/rollout-load.json")
            if r.rc == 0:
                return json.loads(r.stdout)
            time.sleep(1)
        raise AssertionError(f"the client did not finish: {self.client.run('cat /tmp/rollout-load.log').stdout}")


def api_pid(name: str) -> str:
    pid = lab_host(name).run("systemctl show -p MainPID --value analytics-api").stdout.strip()
    assert pid not in ("", "0"), f"{name}: analytics-api is not running"
    return pid


def access_log_lines(edge_host) -> int:
    return int(edge_host.run("wc -l < /var/log/nginx/access.log").stdout.strip())


def access_log_since(edge_host, line: int) -> list[dict]:
    out = edge_host.run(f"tail -n +{line + 1} /var/log/nginx/access.log").stdout
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_a_change_of_the_api_waits_for_the_rollout_which_restarts_one_host_at_a_time_out_of_nginx(scenario_dir, client):
    """site.yml's way: the API's play only marks the change; playbooks/rollout.yml then restarts one host at a time,
    each out of nginx's upstream from before its stop until it is ready. A steady client sees only the API's own
    answers (401: no key), and nginx never had to try a stopping host (no request with two upstreams)."""
    apis = ("api-a", "api-b")
    edge_host = lab_host("edge-a")
    before = {h: api_pid(h) for h in apis}
    r = ansible_playbook(scenario_dir / "deploy_api.yml", "-e", "analytics_api_log_level=warning")
    assert r.returncode == 0, r.output[-2000:]
    for h in apis:
        assert lab_host(h).file(PENDING).exists, f"{h}: the change was not marked for the rollout"
        assert api_pid(h) == before[h], f"{h}: the API restarted before the rollout"
        assert 'API_LOG_LEVEL="warning"' in lab_host(h).run("cat /etc/analytics-platform/analytics-api.env").stdout

    first_line = access_log_lines(edge_host)
    load = SteadyClient(client)
    time.sleep(3)
    r = ansible_playbook(ROOT / "playbooks" / "rollout.yml", "-e", "rollout_ready=live")
    time.sleep(3)
    answers = load.stop()
    assert r.returncode == 0, r.output[-2000:]
    started = {
        h: lab_host(h).run("systemctl show -p ActiveEnterTimestampMonotonic --value analytics-api").stdout for h in apis
    }
    for h in apis:
        assert api_pid(h) != before[h], f"{h}: the rollout did not restart the API"
        assert not lab_host(h).file(PENDING).exists, f"{h}: the mark is still there"
    # One at a time: the second host was restarted after the first was ready and back in nginx.
    assert abs(int(started["api-b"]) - int(started["api-a"])) > 2_000_000, started
    conf = edge_host.run("cat /etc/nginx/nginx.conf").stdout
    assert " down;" not in conf and conf.count("# api host ") == 2, "an API host was left out of the upstream"

    statuses = [a[1] for a in answers]
    assert len(statuses) >= 20, f"the client sent {len(statuses)} requests"
    assert set(statuses) == {401}, f"the client saw answers other than the API's: {sorted(set(map(str, statuses)))}"
    posted = [e for e in access_log_since(edge_host, first_line) if e["request"].startswith("POST /analytics")]
    tried_twice = [e for e in posted if "," in e["upstream"] or e["status"] != 401]
    assert len(posted) >= len(statuses) and not tried_twice, (
        f"nginx sent requests to a stopping host: {tried_twice[:3]}"
    )
    # A second run has nothing to restart.
    after = {h: api_pid(h) for h in apis}
    r = ansible_playbook(ROOT / "playbooks" / "rollout.yml", "-e", "rollout_ready=live")
    assert r.returncode == 0, r.output[-2000:]
    assert {h: api_pid(h) for h in apis} == after


@pytest.mark.parametrize("batch", [1, 2])
def test_a_host_that_does_not_come_back_stops_the_rollout_and_stays_out_of_nginx(client, batch):
    """api-a cannot start (a broken setting): the rollout stops at it, api-a stays marked down in every nginx's upstream
    and marked for the rollout; api-b serves: untouched when the batches are of one host, and restarted, back in the
    upstreams and no longer marked when it shared api-a's batch (a batch of both API hosts is an outage: refused,
    nothing restarted, until rollout_allow_outage=true). Once api-a is mended the next run finishes."""
    edges = [lab_host("edge-a"), lab_host("edge-b")]
    api_a, api_b = lab_host("api-a"), lab_host("api-b")
    env = "/etc/analytics-platform/analytics-api.env"
    b_before = api_pid("api-b")
    for h in (api_a, api_b):
        h.run_expect([0], f"mkdir -p {os.path.dirname(PENDING)} && touch {PENDING}")
    api_a.run_expect([0], f"cp -p {env} {env}.saved && sed -i 's/^API_PORT=.*/API_PORT=not-a-port/' {env}")
    settings = ("-e", "rollout_ready=live", "-e", "rollout_ready_timeout=12", "-e", f"rollout_batch={batch}")
    try:
        if batch == 2:
            # Both API hosts in one batch: an outage, refused before anything restarts unless the operator accepts it.
            r = ansible_playbook(ROOT / "playbooks" / "rollout.yml", *settings)
            assert r.returncode != 0, "a batch of every API host was not refused"
            assert (
                "rollout_batch=2 would restart the API on api-a, api-b in one batch: every API host behind nginx"
                in " ".join(r.output.split())
            ), r.output[-2000:]
            assert api_pid("api-b") == b_before and "Restart the services" not in r.output
            settings += ("-e", "rollout_allow_outage=true")
        r = ansible_playbook(ROOT / "playbooks" / "rollout.yml", *settings)
        assert r.returncode != 0, "the rollout went on past a host that did not come back"
        assert "api-a: analytics-api did not answer its readiness check within 12 s" in " ".join(r.output.split())
        for edge_host in edges:
            conf = edge_host.run("cat /etc/nginx/nginx.conf").stdout
            assert re.search(r" down;\s+# api host api-a$", conf, re.M), "api-a was put back into nginx"
            assert not re.search(r" down;\s+# api host api-b$", conf, re.M), "api-b was left out of nginx"
        assert api_a.file(PENDING).exists
        if batch == 1:
            assert api_b.file(PENDING).exists
            assert api_pid("api-b") == b_before, "the rollout went on to api-b"
        else:
            assert not api_b.file(PENDING).exists
            assert api_pid("api-b") != b_before, "api-b, in api-a's batch, was not restarted"
        assert [
            http(client, "https://edge-a/analytics", "POST", {"content-type": "application/json"}, "{}")[0]
            for _n in range(6)
        ] == [401] * 6
    finally:
        api_a.run(f"mv {env}.saved {env}")
    # The next run finishes, here a zone at a time (one batch per zone: api-a's, then api-b's when it waits too).
    b_waits = api_b.file(PENDING).exists
    r = ansible_playbook(ROOT / "playbooks" / "rollout.yml", "-e", "rollout_ready=live", "-e", "rollout_batch=zone")
    assert r.returncode == 0, r.output[-2000:]
    batches = re.findall(r"^PLAY \[Restart them, a batch of hosts at a time", r.stdout, re.M)
    assert len(batches) == (2 if b_waits else 1), r.stdout[-3000:]
    for edge_host in edges:
        assert " down;" not in edge_host.run("cat /etc/nginx/nginx.conf").stdout
    assert not api_a.file(PENDING).exists and not api_b.file(PENDING).exists


def floating_address() -> str:
    """The scenario's nginx_floating_address: .10 of the outside network (the client's)."""
    return re.sub(r"[0-9]+$", "10", address("client-x"))


def holders(vip: str, among: tuple[str, ...] = ("edge-a", "edge-b")) -> list[str]:
    """The edges (of `among`: a paused container cannot be asked) that hold the floating address now."""
    return [h for h in among if lab_host(h).run(f"ip -o -4 addr show to {vip}/32").stdout.strip()]


def wait_for_move(vip: str, away_from: str, timeout: float = 15) -> tuple[str, float]:
    """Which edge holds the address once `away_from` no longer does, and after how many seconds."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        now = holders(vip)
        if len(now) == 1 and now[0] != away_from:
            return now[0], time.time() - t0
        time.sleep(0.2)
    raise AssertionError(f"the floating address {vip} did not move away from {away_from}: held by {holders(vip)}")


def test_the_floating_address_moves_to_the_other_edge_within_5_s_while_clients_keep_posting(client):
    """keepalived (VRRP, unicast between the edges' zone addresses) holds one address on the edges' public side. A
    client posting to it every 0.25 s, retrying a failed connection or a request unanswered for 5 s (one the frozen
    holder had taken) after 0.5 s: when the holder's nginx stops, and
    when the holder itself freezes (docker pause: no adverts, no answers), the other edge takes the address within 5 s,
    and every request gets the API's own answer (401: no key)."""
    vip = floating_address()
    assert wait_for(lambda: len(holders(vip)) == 1, timeout=30, step=1), f"not one holder of {vip}: {holders(vip)}"
    first = holders(vip)[0]
    other = "edge-b" if first == "edge-a" else "edge-a"
    # VRRP is let in from the other edge's zone address only (the catalogue's nginx_vrrp entry).
    ruleset = lab_host(first).run("nft list ruleset").stdout
    assert re.search(rf"ip saddr [^\n]*{re.escape(address(other))}[^\n]* meta l4proto (vrrp|112) accept", ruleset), (
        ruleset
    )
    load = SteadyClient(client, vip, retries=10, timeout=5)
    try:
        time.sleep(3)
        assert lab_host(first).run("systemctl stop nginx").rc == 0
        holder, moved = wait_for_move(vip, first)
        assert holder == other and moved < 5, (holder, moved)
        time.sleep(2)
        assert lab_host(first).run("systemctl start nginx").rc == 0
        time.sleep(5)
        assert holders(vip) == [other], "the address moved back (nginx_floating_preempt is false)"
        # The holder freezes: the first edge takes the address back after three missed adverts.
        subprocess.run(["docker", "pause", f"ap-mol-nginx-{other}"], check=True, capture_output=True)
        try:
            t0 = time.time()
            while holders(vip, (first,)) != [first] and time.time() - t0 < 15:
                time.sleep(0.2)
            frozen_move = time.time() - t0
            assert holders(vip, (first,)) == [first] and frozen_move < 5, (holders(vip, (first,)), frozen_move)
            time.sleep(2)
        finally:
            subprocess.run(["docker", "unpause", f"ap-mol-nginx-{other}"], check=True, capture_output=True)
        # Back, the frozen edge still believes it holds the address: the adverts settle it (the higher priority keeps
        # it), one holder again.
        assert wait_for(lambda: len(holders(vip)) == 1, timeout=15, step=0.5), holders(vip)
        time.sleep(3)
        assert len(holders(vip)) == 1, holders(vip)
    finally:
        answers = load.stop()
    assert len(answers) > 60, len(answers)
    assert [a for a in answers if a[1] != 401] == [], [a for a in answers if a[1] != 401][:10]
    retried = [a for a in answers if a[2] > 1]
    waited = max(a[3] - a[0] for a in answers)
    assert waited < 10, waited
    print(
        f"floating address: {len(answers)} requests, {len(retried)} retried, longest {waited:.1f} s; nginx stopped:"
        f" moved in {moved:.1f} s; host frozen: moved in {frozen_move:.1f} s"
    )


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
