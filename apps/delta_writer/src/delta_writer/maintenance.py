"""Table maintenance: the data lifecycle (rows past the retention deleted, client addresses anonymised after a while:
the policies PostgreSQL applies), compaction of small files, vacuum of files older than the retention (the guide's 168
hours), and time-travel restore for data corruption (Delta keeps every version until vacuum removes its files)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from deltalake import DeltaTable

log = logging.getLogger("delta-writer")


# The client address in the metadata's compact JSON, its last part (an IPv4 octet, an IPv6 group) captured: the
# PostgreSQL role's anonymisation (anonymize.sql.j2) replaces the same part with XXX, which no longer matches.
_ADDRESS = '"ip_address":"([^"]*[.:])[0-9a-fA-F]+"'
_ANONYMIZED = '"ip_address":"${1}XXX"'


def _cutoff(days: int, today: date | None) -> str:
    return ((today or datetime.now(UTC).date()) - timedelta(days=days)).isoformat()


def expire(dt: DeltaTable, retention_days: int, today: date | None = None) -> int:
    """Delete the rows of the days older than the retention (whole partitions: no file is rewritten); their files
    leave the store at the first vacuum after vacuum's own retention. Returns the rows deleted (0: no new version)."""
    cutoff = _cutoff(retention_days, today)
    deleted = int(dt.delete(f"event_date < '{cutoff}'").get("num_deleted_rows", 0))
    log.info("expired", extra={"reason": f"{deleted} rows dated before {cutoff} ({retention_days} days)"})
    return deleted


def anonymize(dt: DeltaTable, after_days: int, today: date | None = None) -> int:
    """Replace the last part of the client address in the metadata of rows older than `after_days` days with XXX.
    Only the files holding such rows are rewritten; once done, a second run changes nothing. Returns the rows
    changed."""
    cutoff = _cutoff(after_days, today)
    metrics = dt.update(
        updates={"metadata": f"regexp_replace(metadata, '{_ADDRESS}', '{_ANONYMIZED}')"},
        predicate=f"event_date < '{cutoff}' AND regexp_like(metadata, '{_ADDRESS}')",
    )
    changed = int(metrics.get("num_updated_rows", 0))
    log.info("anonymized", extra={"reason": f"{changed} client addresses in rows dated before {cutoff}"})
    return changed


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
