"""A small HTTP(S) server for the consumers: /health (liveness), /ready (readiness) and /metrics (Prometheus).

With a certificate and key (<PREFIX>METRICS_TLS_CERT_FILE and _KEY_FILE, the host certificate from the pki role on
the platform's hosts) it serves TLS 1.2+ only, as every other endpoint of the platform does.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from analytics_common.config import ConfigError, Setting, existing_file, integer


def metrics_settings(prefix: str, port: int) -> list[Setting]:
    """The settings of a consumer's health and metrics server (port 0: any free port, for tests)."""
    return [
        Setting(f"{prefix}METRICS_HOST", default="127.0.0.1", attr="metrics_host"),
        Setting(f"{prefix}METRICS_PORT", integer(0, 65535), default=port, attr="metrics_port"),
        Setting(f"{prefix}METRICS_TLS_CERT_FILE", existing_file, attr="metrics_tls_cert_file"),
        Setting(f"{prefix}METRICS_TLS_KEY_FILE", existing_file, attr="metrics_tls_key_file"),
    ]


def check_metrics_tls(cfg, prefix: str) -> None:
    if bool(cfg.metrics_tls_cert_file) != bool(cfg.metrics_tls_key_file):
        raise ConfigError(f"{prefix}METRICS_TLS_CERT_FILE and {prefix}METRICS_TLS_KEY_FILE must be set together")


class SystemdWatchdog:
    """Pings systemd's watchdog (WatchdogSec= in the unit: systemd sets NOTIFY_SOCKET and WATCHDOG_USEC) at a quarter
    of its period. None of this happens outside such a unit."""

    def __init__(self, environ: dict | None = None):
        env = os.environ if environ is None else environ
        address, usec, pid = env.get("NOTIFY_SOCKET", ""), env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        self.enabled = bool(address and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())))
        self.address = "\0" + address[1:] if address.startswith("@") else address  # "@": an abstract socket
        self.every = int(usec) / 1e6 / 4 if self.enabled else 0.0
        self.last = float("-inf")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self.enabled else None

    def ping(self) -> None:
        now = time.monotonic()
        if self.sock is None or now - self.last < self.every:
            return
        self.last = now
        with contextlib.suppress(OSError):  # systemd gone (shutting down): nothing to tell
            self.sock.sendto(b"WATCHDOG=1", self.address)


class Heartbeat:
    """The main loop beats; liveness fails when it has not beaten for `stale_after` seconds (a stuck loop). Each beat
    also pings systemd's watchdog, when the unit has one: a loop stuck for good (a client library call that ignores its
    timeout) is killed and restarted by systemd, which loses and duplicates nothing (offsets commit after the store)."""

    def __init__(self, stale_after: float):
        self.stale_after = stale_after
        self.last = time.monotonic()
        self.watchdog = SystemdWatchdog()

    def beat(self) -> None:
        self.last = time.monotonic()
        self.watchdog.ping()

    def alive(self) -> bool:
        return time.monotonic() - self.last < self.stale_after


def serve(
    host: str, port: int, heartbeat: Heartbeat, ready: Callable[[], tuple[bool, dict]], tls_cert=None, tls_key=None
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                ok = heartbeat.alive()
                self._send(200 if ok else 503, json.dumps({"status": "ok" if ok else "stalled"}).encode())
            elif self.path == "/ready":
                ok, detail = ready()
                self._send(200 if ok else 503, json.dumps({"ready": ok, **detail}).encode())
            elif self.path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b'{"error": "not found"}')

        def log_message(self, *args):  # the services log JSON themselves
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    if tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(tls_cert), str(tls_key))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
