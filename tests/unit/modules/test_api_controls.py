"""api_controls against a stand-in HTTPS API on 127.0.0.1 (a real TLS server answering as nginx + the API would):
each control reaches pass, fail and error."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_collections.analytics.platform.plugins.modules import api_controls

from .test_tls_probe import make_ca, make_leaf


def stand_in(cert, key, *, key_required=True, limit=None, cors=()):
    """An API behind TLS: 401 without a valid key (or 202 when keys are not required), 429 after `limit` requests,
    CORS for the origins in `cors` (and '*' when cors is '*')."""
    seen = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, status, headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            seen["n"] += 1
            if limit is not None and seen["n"] > limit:
                return self._answer(429, [("retry-after", "5")])
            return self._answer(401 if key_required else 202)

        def do_OPTIONS(self):
            origin = self.headers.get("origin", "")
            allowed = "*" if cors == "*" else (origin if origin in cors else None)
            return self._answer(200, [("access-control-allow-origin", allowed)] if allowed else [])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def tls(tmp_path):
    ca = make_ca(tmp_path)
    return (*make_leaf(tmp_path, ca), ca[2])


def probe(run_module, server, ca_path, **kw):
    args = {
        "host": "localhost",
        "port": server.server_address[1],
        "ca_path": str(ca_path),
        "burst": 30,
        "allowed_origin": "https://app.example.com",
        **kw,
    }
    out = run_module(api_controls, args)
    return {r["control"]: r for r in out.result["audit"]}


def free_port():
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_a_hardened_api_passes_every_control(run_module, tls):
    cert, key, ca = tls
    server = stand_in(cert, key, limit=10, cors=["https://app.example.com"])
    try:
        got = probe(run_module, server, ca, api_hosts=[{"host": "app-a", "address": "127.0.0.1"}], api_port=free_port())
    finally:
        server.shutdown()
    assert {c: r["status"] for c, r in got.items()} == {
        "api_auth": "pass",
        "cors": "pass",
        "api_rate_limit": "pass",
        "reverse_proxy": "pass",
    }, got
    assert got["reverse_proxy"]["host"] == "app-a" and got["api_auth"]["host"] == "localhost"


def test_an_open_api_fails_every_control(run_module, tls):
    cert, key, ca = tls
    server = stand_in(cert, key, key_required=False, cors="*")
    api = socket.create_server(("127.0.0.1", 0))  # the API's own port answers from here
    try:
        got = probe(
            run_module, server, ca, api_hosts=[{"host": "app-a", "address": "127.0.0.1"}], api_port=api.getsockname()[1]
        )
    finally:
        server.shutdown()
        api.close()
    assert {c: r["status"] for c, r in got.items()} == {c: "fail" for c in got}, got
    assert "without a key: 202" in got["api_auth"]["reason"]


def test_cors_that_is_not_configured_fails(run_module, tls):
    """The finding: CORS passed when it was not configured at all (no allowed origin)."""
    cert, key, ca = tls
    server = stand_in(cert, key, limit=5)
    try:
        got = probe(run_module, server, ca, allowed_origin="")
    finally:
        server.shutdown()
    assert got["cors"]["status"] == "fail" and "not configured" in got["cors"]["reason"]


def test_an_api_host_whose_name_does_not_resolve_is_an_error_not_closed(run_module, tls):
    """The finding: the reverse-proxy probe treated any connection error, DNS included, as 'closed' (a pass)."""
    cert, key, ca = tls
    server = stand_in(cert, key, limit=5, cors=["https://app.example.com"])
    try:
        got = probe(run_module, server, ca, api_hosts=[{"host": "app-x", "address": "app-x.invalid"}])
    finally:
        server.shutdown()
    assert got["reverse_proxy"]["status"] == "error" and "does not resolve" in got["reverse_proxy"]["reason"]


def test_a_load_balancer_that_does_not_answer_is_an_error(run_module, tls):
    _cert, _key, ca = tls

    class Gone:
        server_address = ("127.0.0.1", free_port())

    got = probe(run_module, Gone(), ca)
    assert {got[c]["status"] for c in ("api_auth", "cors", "api_rate_limit")} == {"error"}
    assert json.dumps(got)  # serialisable evidence
