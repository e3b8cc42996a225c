"""Table maintenance: the data lifecycle (rows past the retention deleted, client addresses anonymised after a while:
the policies PostgreSQL applies), a data subject's rows found, exported or erased, compaction of small files, vacuum of
files older than the retention (the guide's 168 hours), and time-travel restore for data corruption (Delta keeps every
version until vacuum removes its files)."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import CommitFailedError
from deltalake.fs import DeltaStorageHandler

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


# A data subject is found by one of these columns (the event contract's identifiers of a person).
SUBJECT_COLUMNS = ("user_id", "session_id")
ERASE_ATTEMPTS = 8  # a delete that lost a race with a writer's commit is made again on the new version


def _subject_column(column: str) -> str:
    if column not in SUBJECT_COLUMNS:
        raise ValueError(f"a data subject is found by {' or '.join(SUBJECT_COLUMNS)}, not {column!r}")
    return column


def subject_rows(dt: DeltaTable, column: str, value: str) -> pa.Table:
    """The subject's rows in the current version."""
    # Through delta-rs's own query engine: pyarrow's dataset over the table's files aborts the process at exit after
    # some scans (a C++ thread left running), and it types the column string where merged files hold string_view.
    query = f"SELECT * FROM events WHERE {_predicate(column, value)}"  # noqa: S608 - _predicate quotes the value
    rows = pa.table(QueryBuilder().register("events", dt).execute(query))
    return rows.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in rows.schema]))


def _plain(kind: pa.DataType) -> pa.DataType:
    return pa.string() if kind == pa.string_view() else kind


def _predicate(column: str, value: str) -> str:
    """column = 'value', the column one of SUBJECT_COLUMNS, the value a SQL string literal (quotes doubled: the only
    escape delta-rs's SQL knows; a backslash is an ordinary character, tested)."""
    return f"{_subject_column(column)} = '" + value.replace("'", "''") + "'"


def _iso(t: datetime | None) -> str | None:
    # One spelling for every store's export: UTC, microseconds, Z (plugins/modules/pg_subject.py writes the same).
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def export_lines(rows: pa.Table) -> Iterator[str]:
    """The rows as JSON Lines in the export's shape (the table's columns but the partition; properties and metadata as
    JSON objects; times in UTC), oldest first."""
    for r in rows.sort_by([("event_time", "ascending"), ("event_id", "ascending")]).to_pylist():
        r.pop("event_date", None)
        r["event_time"], r["received_at"] = _iso(r["event_time"]), _iso(r["received_at"])
        r["properties"], r["metadata"] = json.loads(r["properties"]), json.loads(r["metadata"])
        yield json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def erase(open_table, column: str, value: str) -> dict:
    """Delete the subject's rows: one new version, only the files holding them rewritten. A delete that conflicts with
    a concurrent commit is made again on the new version. Returns {"rows": deleted, "version": the table's version}."""
    predicate = _predicate(column, value)
    for attempt in range(1, ERASE_ATTEMPTS + 1):
        dt = open_table()
        try:
            deleted = int(dt.delete(predicate).get("num_deleted_rows", 0))
            break
        except CommitFailedError:
            if attempt == ERASE_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    log.info("erased", extra={"reason": f"{deleted} rows of a data subject (by {column})"})
    return {"rows": deleted, "version": dt.version()}


def purge_subject_files(dt: DeltaTable, column: str, value: str, grace: timedelta) -> dict:
    """Remove now, rather than at the vacuum after its retention, the data files outside the current version that
    still hold the subject's rows (rewritten by the erase, compacted or anonymised before it). A file younger than
    `grace` is left to vacuum: outside the current version it may be a commit in flight, which vacuum's own retention
    protects too. Time travel to versions before the erase loses those files: that is the point.
    Returns {"purged": [paths], "left_for_vacuum": [paths]}."""
    column = _subject_column(column)
    fs = pafs.PyFileSystem(DeltaStorageHandler.from_table(dt._table))
    outside = dt.vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False)  # lists, deletes nothing
    purged, left = [], []
    now = datetime.now(UTC)
    for path in sorted(outside):
        if not path.endswith(".parquet"):
            continue
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:  # vacuum lists the log's removals, also those already gone (purged)
            continue
        held = pq.read_table(path, filesystem=fs, columns=[column]).column(column).cast(pa.string())
        if not pc.any(pc.equal(held, value)).as_py():
            continue
        if info.mtime is None or now - info.mtime.astimezone(UTC) < grace:
            left.append(path)
            continue
        fs.delete_file(path)
        purged.append(path)
    log.info(
        "purged", extra={"reason": f"{len(purged)} files holding a data subject's rows, {len(left)} left to vacuum"}
    )
    return {"purged": purged, "left_for_vacuum": left}


def compact(dt: DeltaTable, target_size: int = 256 * 1024 * 1024) -> dict:
    metrics = dt.optimize.compact(target_size=target_size)
    done = f"{metrics.get('numFilesRemoved', 0)} files into {metrics.get('numFilesAdded', 0)}"
    log.info("compacted", extra={"reason": done})
    return metrics


def vacuum(dt: DeltaTable, retention_hours: int, dry_run: bool = False) -> list[str]:
    removed = dt.vacuum(retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=True)
    log.info("vacuumed", extra={"reason": f"{len(removed)} files older than {retention_hours} hours"})
    return removed


DELETE_BATCH = 1000  # keys per DeleteObjects request (the S3 API's limit)


def old_versions(s3, bucket: str, prefix: str, keep: timedelta, now: datetime | None = None) -> dict:
    """What a versioned bucket still holds under `prefix` that no current object shows: the versions and delete
    markers that have been noncurrent (replaced or deleted) for longer than `keep`. A version is noncurrent since its
    successor (the next newer version or delete marker of its key) was written. A delete marker that is the current
    entry of its key is expired once no older version remains. A current version is never chosen. Returns
    {"doomed": [(key, version_id, size)], "kept": noncurrent entries younger than `keep`}."""
    now = now or datetime.now(UTC)
    by_key: dict[str, list] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for marker, entries in ((False, page.get("Versions", [])), (True, page.get("DeleteMarkers", []))):
            for e in entries:
                by_key.setdefault(e["Key"], []).append(
                    (bool(e.get("IsLatest")), e["LastModified"], e.get("VersionId") or "null", marker, e.get("Size", 0))
                )
    doomed, kept = [], 0
    for key, entries in by_key.items():
        entries.sort(key=lambda e: (e[0], e[1]), reverse=True)  # the current entry first, then newest to oldest
        older_left = False
        for newer, entry in itertools.pairwise(entries):
            if entry[0]:  # two current entries (a store's bug): decide nothing for this key
                older_left = True
                break
            if now - newer[1] >= keep:
                doomed.append((key, entry[2], entry[4]))
            else:
                kept += 1
                older_left = True
        latest = entries[0]
        if latest[0] and latest[3] and not older_left:  # only a delete marker would be left: it goes too
            doomed.append((key, latest[2], 0))
    return {"doomed": doomed, "kept": kept}


def expire_versions(s3, bucket: str, prefix: str, keep: timedelta, dry_run: bool = False) -> dict:
    """Remove for good what the table's files left in a versioned bucket (see old_versions): the data of files that
    vacuum, the retention, the anonymisation or compaction removed stays there as noncurrent versions until then. In
    an unversioned bucket there is nothing to remove. Returns counts, and the bytes freed."""
    found = old_versions(s3, bucket, prefix, keep)
    doomed = found["doomed"]
    if not dry_run:
        for start in range(0, len(doomed), DELETE_BATCH):
            batch = doomed[start : start + DELETE_BATCH]
            objects = [{"Key": k, **({"VersionId": v} if v != "null" else {})} for k, v, _size in batch]
            errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True}).get("Errors", [])
            if errors:
                first = errors[0]
                raise RuntimeError(
                    f"{len(errors)} old versions under s3://{bucket}/{prefix} not removed, first"
                    f" {first.get('Key')} ({first.get('VersionId')}): {first.get('Code')}: {first.get('Message')}"
                )
    out = {"removed": len(doomed), "bytes": sum(entry[2] for entry in doomed), "kept": found["kept"]}
    log.info(
        "old versions",
        extra={"reason": f"{'would remove' if dry_run else 'removed'} {out['removed']} ({out['bytes']} bytes),"
               f" {out['kept']} younger than {keep}"},
    )  # fmt: skip
    return out


def restore(dt: DeltaTable, version: int | None = None, timestamp: str | None = None) -> dict:
    """Make an earlier version the current one (a new commit; history is kept)."""
    if (version is None) == (timestamp is None):
        raise ValueError("give exactly one of version or timestamp")
    target = version if version is not None else datetime.fromisoformat(timestamp).astimezone(UTC)
    return dt.restore(target)


def history(dt: DeltaTable, limit: int = 20) -> list[dict]:
    return [{k: h.get(k) for k in ("version", "timestamp", "operation", "operationMetrics")} for h in dt.history(limit)]
