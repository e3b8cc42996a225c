"""The ingest API: POST /analytics (one event) and POST /analytics/batch (many, all or nothing), with API keys,
rate limits, CORS, size limits and strict validation; /health, /ready and /metrics.

The parts, each tested on its own: auth (client address, key, rate limit), body (size limit, strict JSON), ingest
(the contract, the metadata, Kafka's acknowledgement), problems (the error answers) and metrics."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from analytics_common.events import compact_json
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request

from analytics_api.auth import ClientAddress, Guard
from analytics_api.ingest import Ingest
from analytics_api.keys import KeyStore
from analytics_api.metrics import Measure
from analytics_api.problems import HTTPProblem
from analytics_api.producer import EventProducer
from analytics_api.ratelimit import RateLimiter

log = logging.getLogger("analytics-api")


class IngestRoutes:
    """POST /analytics and POST /analytics/batch as plain ASGI, inside the API's metrics and CORS middleware and
    outside FastAPI's router: its routing, dependency and response machinery was over a third of the API's CPU per
    event under load (docs/benchmarks.md). Other methods on these paths get 405; every other path goes on to FastAPI.
    The answers are FastAPI's: 202 with the handler's JSON, an HTTPProblem as its status, JSON and headers, anything
    else a logged 500 without details."""

    def __init__(self, app, ingest: Ingest):
        self.app = app
        self.routes = {"/analytics": ingest.one, "/analytics/batch": ingest.batch}

    async def __call__(self, scope, receive, send):
        handler = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        headers = []
        if scope["method"] != "POST":
            status, content, headers = 405, {"error": "method not allowed"}, [(b"allow", b"POST")]
        else:
            try:
                status, content = 202, await handler(Request(scope, receive))
            except HTTPProblem as e:
                status, content = e.status, {"error": e.error, **e.extra}
                headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in e.headers.items()]
            except Exception as e:  # a bug must not leak details; it is logged and counted as 500
                log.exception("unhandled error", extra={"error": type(e).__name__})
                status, content = 500, {"error": "internal error"}
        body = compact_json(content).encode()
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(cfg, keys: KeyStore, producer: EventProducer | None = None) -> FastAPI:
    producer = producer or EventProducer(cfg)
    address = ClientAddress(cfg.trusted_proxies)
    limiter = RateLimiter(cfg.rate_limit, cfg.rate_window_seconds, cfg.rate_burst, per_key=cfg.key_rate_limits)
    guard = Guard(keys, limiter, address)
    ingest = Ingest(producer, guard, address, cfg.max_body_bytes, cfg.max_batch, cfg.consent_mode)

    @asynccontextmanager
    async def lifespan(_app):
        try:
            await producer.start()
        except Exception as e:  # the API starts anyway: /ready says not ready, POSTs answer 503
            log.warning("kafka not reachable at start-up", extra={"error": type(e).__name__})
        yield
        await producer.stop()

    app = FastAPI(title="analytics-api", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(IngestRoutes, ingest=ingest)  # added first: the innermost, inside CORS and the metrics
    if cfg.cors_origins:
        # CORS lives here, in the API, from its allow-list (nginx passes requests through untouched).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.cors_origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["content-type", "x-api-key"],
            max_age=600,
        )

    @app.exception_handler(HTTPProblem)
    async def _problem(_request, exc: HTTPProblem):
        return JSONResponse({"error": exc.error, **exc.extra}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):  # a bug must not leak details; it is logged and counted as 500
        log.exception("unhandled error", extra={"error": type(exc).__name__})
        return JSONResponse({"error": "internal error"}, status_code=500)

    app.add_middleware(Measure)

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
