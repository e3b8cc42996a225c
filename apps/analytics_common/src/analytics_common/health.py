"""A small HTTP server for the consumers: /health (liveness), /ready (readiness) and /metrics (Prometheus)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


class Heartbeat:
    """The main loop beats; liveness fails when it has not beaten for `stale_after` seconds (a stuck loop)."""

    def __init__(self, stale_after: float):
        self.stale_after = stale_after
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.last < self.stale_after


def serve(host: str, port: int, heartbeat: Heartbeat, ready: Callable[[], tuple[bool, dict]]) -> ThreadingHTTPServer:
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
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
