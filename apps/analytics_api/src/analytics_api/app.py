"""The ingest API: POST /analytics (one event) and POST /analytics/batch (many, all or nothing), with API keys,
rate limits, CORS, size limits and strict validation; /health, /ready and /metrics."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from contextlib import asynccontextmanager

from analytics_common.events import Event, EventRecord, clean_header, problem_of, utcnow
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from pydantic import ValidationError

from analytics_api.keys import KeyStore
from analytics_api.producer import EventProducer, KafkaUnavailable
from analytics_api.ratelimit import RateLimiter, retry_after

log = logging.getLogger("analytics-api")
REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "path", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Request latency",
    ["path"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS = Counter("analytics_events_accepted_total", "Events acknowledged by Kafka")
KNOWN_PATHS = {"/analytics", "/analytics/batch", "/health", "/ready", "/metrics"}


class HTTPProblem(Exception):
    def __init__(self, status: int, error: str, headers: dict | None = None, **extra):
        super().__init__(error)
        self.status, self.error, self.headers, self.extra = status, error, headers or {}, extra


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


def create_app(cfg, keys: KeyStore, producer: EventProducer | None = None) -> FastAPI:
    producer = producer or EventProducer(cfg)
    limiter = RateLimiter(cfg.rate_limit, cfg.rate_window_seconds, cfg.rate_burst)
    proxies = [ipaddress.ip_network(p, strict=False) for p in cfg.trusted_proxies]

    @asynccontextmanager
    async def lifespan(_app):
        try:
            await producer.start()
        except Exception as e:  # the API starts anyway: /ready says not ready, POSTs answer 503
            log.warning("kafka not reachable at start-up", extra={"error": type(e).__name__})
        yield
        await producer.stop()

    app = FastAPI(title="analytics-api", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    if cfg.cors_origins:
        # CORS lives here, in the API, from its allow-list (nginx passes requests through untouched).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.cors_origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["content-type", "x-api-key"],
            max_age=600,
        )

    def client_address(request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        try:
            trusted = any(ipaddress.ip_address(peer) in n for n in proxies)
        except ValueError:
            trusted = False
        if trusted:
            forwarded = request.headers.get("x-real-ip") or request.headers.get("x-forwarded-for", "").split(",")[0]
            forwarded = forwarded.strip()
            try:
                return str(ipaddress.ip_address(forwarded))
            except ValueError:
                pass
        return peer

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > cfg.max_body_bytes:
                    raise HTTPProblem(413, f"request body larger than {cfg.max_body_bytes} bytes")
            except ValueError:
                raise HTTPProblem(400, "malformed Content-Length header") from None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > cfg.max_body_bytes:
                raise HTTPProblem(413, f"request body larger than {cfg.max_body_bytes} bytes")
        return bytes(body)

    def parse_json(body: bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPProblem(400, "request body is not valid UTF-8") from None
        try:
            return json.loads(text, parse_constant=not_json)
        except json.JSONDecodeError as e:
            raise HTTPProblem(400, f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        except RecursionError:
            raise HTTPProblem(400, "malformed JSON: nested too deep") from None
        except ValueError as e:  # NaN or Infinity, or an integer longer than Python converts (4300 digits)
            raise HTTPProblem(400, f"malformed JSON: {str(e).split(';')[0]}") from None

    def validation_problem(e: ValidationError, prefix: str = "") -> HTTPProblem:
        field, msg = problem_of(e, prefix)
        return HTTPProblem(422, f"invalid field '{field or 'body'}': {msg}", field=field or "body")

    def to_record(event: Event, request: Request, key_name: str, received) -> EventRecord:
        meta = {"ip_address": client_address(request), "api_key": key_name}
        ua = clean_header(request.headers.get("user-agent"))
        if ua:
            meta["user_agent"] = ua
        # The event was validated against the contract just now; the metadata is the API's own, cleaned above.
        return EventRecord.model_construct(**dict(event), received_at=received, metadata=meta)

    def unavailable(**ids) -> HTTPProblem:
        """Kafka did not acknowledge in time. The answer names the event ids: a client that retries with the same
        ids is deduplicated by every store, even if the first attempt arrives after all."""
        return HTTPProblem(503, "event store unavailable, retry later with the same event_id", {"Retry-After": "5"},
                           **ids)  # fmt: skip

    async def guard(request: Request) -> str:
        """Authentication, then rate limit; returns the key's name."""
        name = keys.identify(request.headers.get("x-api-key"))
        if name is None:
            raise HTTPProblem(401, "missing or invalid API key", {"WWW-Authenticate": "ApiKey"})
        wait = limiter.check(name, client_address(request))
        if wait > 0:
            raise HTTPProblem(429, "rate limit exceeded", {"Retry-After": retry_after(wait)})
        return name

    def not_json(constant: str):
        raise ValueError(f"{constant} is not JSON")

    @app.exception_handler(HTTPProblem)
    async def _problem(_request, exc: HTTPProblem):
        return JSONResponse({"error": exc.error, **exc.extra}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):  # a bug must not leak details; it is logged and counted as 500
        log.exception("unhandled error", extra={"error": type(exc).__name__})
        return JSONResponse({"error": "internal error"}, status_code=500)

    app.add_middleware(Measure)

    @app.post("/analytics", status_code=202)
    async def post_event(request: Request):
        key_name = await guard(request)
        data = parse_json(await read_body(request))
        if not isinstance(data, dict):
            raise HTTPProblem(422, "invalid field 'body': expected a JSON object (one event)", field="body")
        try:
            event = Event.model_validate(data)
        except ValidationError as e:
            raise validation_problem(e) from None
        record = to_record(event, request, key_name, utcnow())
        try:
            await producer.send_one(record)
        except KafkaUnavailable:
            raise unavailable(event_id=str(event.event_id)) from None
        EVENTS.inc()
        log.info("event received", extra={"session_id": event.session_id, "event_type": event.event_type})
        return {"status": "accepted", "event_id": str(event.event_id)}

    @app.post("/analytics/batch", status_code=202)
    async def post_batch(request: Request):
        key_name = await guard(request)
        data = parse_json(await read_body(request))
        items = data.get("events") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise HTTPProblem(422, "invalid field 'events': expected a non-empty list", field="events")
        if len(items) > cfg.max_batch:
            raise HTTPProblem(413, f"batch of {len(items)} events exceeds the limit of {cfg.max_batch}")
        received = utcnow()
        records = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise HTTPProblem(422, f"invalid field 'events.{i}': expected a JSON object", field=f"events.{i}")
            try:
                event = Event.model_validate(item)
            except ValidationError as e:
                raise validation_problem(e, f"events.{i}.") from None
            records.append(to_record(event, request, key_name, received))
        ids = [str(r.event_id) for r in records]
        if len(set(ids)) != len(ids):
            raise HTTPProblem(422, "invalid field 'events': duplicate event_id in the batch", field="events")
        try:
            await producer.send_batch(records)
        except KafkaUnavailable:
            raise unavailable(event_ids=ids) from None
        EVENTS.inc(len(records))
        log.info("batch received", extra={"batch_size": len(records)})
        return {"status": "accepted", "count": len(records), "event_ids": ids}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        ok = await producer.ready()
        return JSONResponse({"ready": ok, "kafka": "ok" if ok else "unreachable"}, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
