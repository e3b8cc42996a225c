"""grafana_probe against a stand-in HTTP server that answers /login and /login/<provider> as Grafana documents them
(Grafana itself is AGPL-licensed and never runs on this project's machines)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_collections.analytics.platform.plugins.modules import grafana_probe


def grafana_stand_in(admin_password: str, oauth: set[str]):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # /login: 200 {"message": "Logged in"} or 401 {"message": "Invalid username or password"}
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            ok = self.path == "/login" and body == {"user": "admin", "password": admin_password}
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(json.dumps({"message": "Logged in" if ok else "Invalid username or password"}).encode())

        def do_GET(self):  # /login/<provider>: to the identity provider when enabled, else back to /login
            name = self.path.removeprefix("/login/")
            self.send_response(302)
            where = f"https://idp.example/authorize?client_id=grafana&provider={name}" if name in oauth else "/login"
            self.send_header("location", where)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def probe(run_module, server, **kw):
    args = {"url": f"http://127.0.0.1:{server.server_address[1]}", **kw}
    out = run_module(grafana_probe, args)
    server.shutdown()
    return {(r["control"], r["evidence"].get("check")): r for r in out.result["audit"]}


def test_strong_password_and_oauth_pass(run_module):
    r = probe(run_module, grafana_stand_in("a-long-random-password", {"generic_oauth"}))
    assert r[("grafana", "admin_password")]["status"] == "pass"
    assert r[("default_passwords", "admin_password")]["status"] == "pass"
    oauth = r[("grafana", "oauth")]
    assert oauth["status"] == "pass" and "generic_oauth" in oauth["reason"]


def test_default_admin_password_and_no_oauth_fail_with_evidence(run_module):
    r = probe(run_module, grafana_stand_in("admin", set()))
    login = r[("grafana", "admin_password")]
    assert login["status"] == "fail" and "admin/admin" in login["reason"]
    assert login["evidence"]["answers"] == {"admin": 200}
    assert r[("default_passwords", "admin_password")]["status"] == "fail"
    oauth = r[("grafana", "oauth")]
    assert oauth["status"] == "fail" and oauth["evidence"]["providers"]["github"]["location"] == "/login"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_grafana_that_does_not_answer_is_an_error(run_module, scheme):
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = run_module(grafana_probe, {"url": f"{scheme}://127.0.0.1:{port}", "timeout": 2})
    assert {(r["control"], r["status"]) for r in out.result["audit"]} == {
        ("default_passwords", "error"),
        ("grafana", "error"),
    }
