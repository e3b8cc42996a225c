"""Request metrics: counts by method, path and status, latency by path, accepted events."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "path", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Request latency",
    ["path"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS = Counter("analytics_events_accepted_total", "Events acknowledged by Kafka")
WITHOUT_CONSENT = Counter(
    "analytics_events_without_consent_total",
    "Events of requests without consent (Sec-GPC or DNT), by what was done: anonymized or dropped",
    ["action"],
)
KNOWN_PATHS = {"/analytics", "/analytics/batch", "/health", "/ready", "/metrics"}


class Measure:
    """Counts every request by method, path and status, observes its latency, and marks every response
    Cache-Control: no-store. A plain ASGI middleware: Starlette's BaseHTTPMiddleware (@app.middleware("http")) costs a
    task and a pair of memory streams per request, about a fifth of the API's CPU under load (scripts/benchmark.py)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        status = 500  # an exception that escapes the app becomes a 500 (ServerErrorMiddleware, outside this one)

        async def send_measured(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", b"no-store")]}
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
            LATENCY.labels(path).observe(time.perf_counter() - start)
        finally:
            REQUESTS.labels(scope["method"], path, str(status)).inc()
