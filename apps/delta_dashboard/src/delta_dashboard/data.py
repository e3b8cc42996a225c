"""Reading the Delta table: events per hour and type over the last hours, totals, and the version history."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError


@dataclass
class Summary:
    generated_at: datetime
    version: int | None
    hours: list[datetime] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    counts: dict[str, list[int]] = field(default_factory=dict)  # type -> count per hour
    totals: dict[str, int] = field(default_factory=dict)  # type -> count over the window
    history: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def to_json(self) -> dict:
        return {
            "generated_at": self.generated_at.isoformat(),
            "version": self.version,
            "hours": [h.isoformat() for h in self.hours],
            "counts": self.counts,
            "totals": self.totals,
            "total": self.total,
            "history": self.history,
        }


class Reader:
    def __init__(self, cfg):
        self.cfg = cfg
        if cfg.s3_ca_file:
            os.environ["SSL_CERT_FILE"] = str(cfg.s3_ca_file)
        self.options = {
            "AWS_ENDPOINT_URL": cfg.s3_endpoint,
            "AWS_ACCESS_KEY_ID": cfg.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": cfg.s3_secret_key,
            "AWS_REGION": cfg.s3_region,
            "AWS_S3_ADDRESSING_STYLE": "path",
        }
        self._cache: tuple[float, Summary] | None = None

    def table(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.cfg.table_uri, storage_options=self.options)
        except TableNotFoundError:
            return None

    def summary(self, now: datetime | None = None) -> Summary:
        if self._cache and time.monotonic() - self._cache[0] < self.cfg.cache_seconds:
            return self._cache[1]
        s = self._read(now or datetime.now(UTC))
        self._cache = (time.monotonic(), s)
        return s

    def _read(self, now: datetime) -> Summary:
        end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        start = end - timedelta(hours=self.cfg.hours)
        hours = [start + timedelta(hours=i) for i in range(self.cfg.hours)]
        dt = self.table()
        if dt is None:
            return Summary(now, None, hours, [], {}, {}, [])
        dataset = dt.to_pyarrow_dataset()
        flt = (ds.field("event_date") >= start.date()) & (
            ds.field("event_time") >= pa.scalar(start, pa.timestamp("us", "UTC"))
        )
        t = dataset.to_table(columns=["event_type", "event_time"], filter=flt)
        counts: dict[str, list[int]] = {}
        if t.num_rows:
            hour = pc.floor_temporal(t["event_time"], unit="hour")
            grouped = (
                pa.table({"event_type": t["event_type"], "hour": hour})
                .group_by(["event_type", "hour"])
                .aggregate([([], "count_all")])
            )
            index = {h: i for i, h in enumerate(hours)}
            for et, h, n in zip(*(grouped[c].to_pylist() for c in ("event_type", "hour", "count_all")), strict=True):
                i = index.get(h.replace(tzinfo=UTC) if h.tzinfo is None else h)
                if i is not None:
                    counts.setdefault(et, [0] * len(hours))[i] += n
        totals = {k: sum(v) for k, v in counts.items()}
        types = sorted(totals, key=lambda k: -totals[k])
        history = []
        for h in dt.history(30):
            m = h.get("operationMetrics") or {}
            history.append(
                {
                    "version": h.get("version"),
                    "timestamp": datetime.fromtimestamp(h.get("timestamp", 0) / 1000, UTC).isoformat(),
                    "operation": h.get("operation"),
                    # An append (WRITE) or the writer's event_id merge (MERGE): the rows and files it added.
                    "rows": int(
                        m.get("num_added_rows") or m.get("numOutputRows") or m.get("num_target_rows_inserted") or 0
                    ),
                    "files": int(
                        m.get("num_added_files") or m.get("numFilesAdded") or m.get("num_target_files_added") or 0
                    ),
                }
            )
        return Summary(
            now, dt.version(), hours, types, {k: counts[k] for k in types}, {k: totals[k] for k in types}, history
        )
