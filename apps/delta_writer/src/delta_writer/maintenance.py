"""Table maintenance: compaction of small files, vacuum of files older than the retention (the guide's 168 hours),
and time-travel restore for data corruption (Delta keeps every version until vacuum removes its files)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from deltalake import DeltaTable

log = logging.getLogger("delta-writer")


def compact(dt: DeltaTable, target_size: int = 256 * 1024 * 1024) -> dict:
    metrics = dt.optimize.compact(target_size=target_size)
    done = f"{metrics.get('numFilesRemoved', 0)} files into {metrics.get('numFilesAdded', 0)}"
    log.info("compacted", extra={"reason": done})
    return metrics


def vacuum(dt: DeltaTable, retention_hours: int, dry_run: bool = False) -> list[str]:
    removed = dt.vacuum(retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=True)
    log.info("vacuumed", extra={"reason": f"{len(removed)} files older than {retention_hours} hours"})
    return removed


def restore(dt: DeltaTable, version: int | None = None, timestamp: str | None = None) -> dict:
    """Make an earlier version the current one (a new commit; history is kept)."""
    if (version is None) == (timestamp is None):
        raise ValueError("give exactly one of version or timestamp")
    target = version if version is not None else datetime.fromisoformat(timestamp).astimezone(UTC)
    return dt.restore(target)


def history(dt: DeltaTable, limit: int = 20) -> list[dict]:
    return [{k: h.get(k) for k in ("version", "timestamp", "operation", "operationMetrics")} for h in dt.history(limit)]
