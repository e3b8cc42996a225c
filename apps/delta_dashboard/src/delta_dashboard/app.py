"""The dashboard: one page of charts (GET /), the numbers behind it (GET /api/summary), /health, /ready, /metrics."""

from __future__ import annotations

import logging
import time
from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

from delta_dashboard import charts
from delta_dashboard.data import Reader

log = logging.getLogger("delta-dashboard")
PAGES = Counter("dashboard_requests_total", "Dashboard requests", ["path", "status"])
READ_SECONDS = Histogram("dashboard_table_read_seconds", "Time to read and aggregate the table")

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px;font-weight:600}
header p{margin:4px 0 0;color:#b9c0cc;font-size:13px}main{padding:20px 28px;display:grid;gap:18px;
grid-template-columns:repeat(auto-fit,minmax(420px,1fr))}section{background:#fff;border-radius:10px;padding:16px 18px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}section.wide{grid-column:1/-1}h2{font-size:15px;margin:0 0 10px;color:#3b4456}
.tiles{display:flex;gap:14px;flex-wrap:wrap}.tile{background:#fff;border-radius:10px;padding:14px 18px;min-width:150px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}.tile b{display:block;font-size:26px}.tile span{color:#6b7385;font-size:12px}
.chart{width:100%;height:auto}.grid{stroke:#e6e8ec}.axis{font-size:11px;fill:#6b7385}.label{font-size:12px;fill:#3b4456}
.value{font-size:12px;fill:#3b4456;font-weight:600}.legend{display:flex;flex-wrap:wrap;gap:12px;margin-top:6px;font-size:12px}
.key i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}.muted{color:#6b7385}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{padding:5px 6px;border-bottom:1px solid #eef0f3;text-align:left}
"""


def render(s) -> str:
    tiles = [
        (charts.fmt(s.total), f"events in the last {len(s.hours)} hours"),
        (str(len(s.totals)), "event types"),
        ("—" if s.version is None else f"v{s.version}", "table version"),
        (charts.fmt(max((sum(v) for v in zip(*s.counts.values(), strict=True)), default=0)), "busiest hour"),
    ]
    rows = "".join(
        f"<tr><td>v{h['version']}</td><td>{escape(h['timestamp'][:19].replace('T', ' '))}</td>"
        f"<td>{escape(str(h['operation']))}</td><td>{h['rows']}</td><td>{h['files']}</td></tr>"
        for h in s.history[:12]
    )
    tile_html = "".join(f'<div class="tile"><b>{v}</b><span>{k}</span></div>' for v, k in tiles)
    by_type = charts.horizontal_bars(s.totals) if s.totals else '<p class="muted">No events in this window.</p>'
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><meta http-equiv="refresh" content="60">
<title>Analytics events - Delta Lake</title><style>{STYLE}</style></head><body>
<header><h1>Analytics events</h1><p>Delta Lake table, read {s.generated_at:%Y-%m-%d %H:%M} UTC</p></header>
<main><section class="wide"><div class="tiles">{tile_html}</div></section>
<section class="wide"><h2>Events per hour, by type</h2>{charts.stacked_bars(s.hours, s.counts)}</section>
<section><h2>Events per type</h2>{by_type}</section>
<section><h2>Table history: rows added per version</h2>{charts.history_bars(s.history)}
<table><tr><th>Version</th><th>Time (UTC)</th><th>Operation</th><th>Rows</th><th>Files</th></tr>{rows}</table></section>
</main></body></html>"""


def create_app(cfg, reader: Reader | None = None) -> FastAPI:
    reader = reader or Reader(cfg)
    app = FastAPI(title="delta-dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    def summary():
        t0 = time.perf_counter()
        s = reader.summary()
        READ_SECONDS.observe(time.perf_counter() - t0)
        return s

    @app.middleware("http")
    async def count(request, call_next):
        response = await call_next(request)
        PAGES.labels(
            request.url.path if request.url.path in {"/", "/api/summary"} else "other", str(response.status_code)
        ).inc()
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"
        return response

    @app.get("/", response_class=HTMLResponse)
    def page():
        try:
            return HTMLResponse(render(summary()))
        except Exception as e:  # the store is down: say so, as a page, not a stack trace
            log.warning("table not readable", extra={"error": type(e).__name__})
            return HTMLResponse("<h1>Analytics events</h1><p>The Delta table cannot be read right now.</p>", 503)

    @app.get("/api/summary")
    def api_summary():
        try:
            return JSONResponse(summary().to_json())
        except Exception as e:
            log.warning("table not readable", extra={"error": type(e).__name__})
            return JSONResponse({"error": "the Delta table cannot be read right now"}, 503)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        try:
            reader.table()
            return {"ready": True}
        except Exception:
            return JSONResponse({"ready": False, "store": "unreachable"}, 503)

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
