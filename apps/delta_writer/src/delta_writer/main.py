"""delta-writer [run] | maintain | restore --version N | --timestamp ISO | history
| subject count|export|erase --by user_id|session_id (the subject's id on standard input)"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from datetime import timedelta

from analytics_common import logs
from analytics_common.config import exit_on_error

from delta_writer import maintenance
from delta_writer.config import load_config
from delta_writer.table import EventTable, object_store
from delta_writer.writer import Writer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="delta-writer", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="consume Kafka and append to the Delta table (the default)")
    m = sub.add_parser(
        "maintain",
        help="delete rows past the retention, anonymise old client addresses, compact small files, vacuum files"
        " older than the vacuum retention, then remove old versions the bucket keeps of removed files",
    )
    m.add_argument(
        "--dry-run", action="store_true", help="change nothing: list what vacuum would remove, count old versions"
    )
    r = sub.add_parser("restore", help="time travel: make an earlier version current (data corruption)")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--version", type=int)
    g.add_argument("--timestamp", help="ISO 8601, e.g. 2026-11-29T10:00:00Z")
    sub.add_parser("history", help="print the table's recent versions")
    s = sub.add_parser(
        "subject",
        help="a data subject's rows: count them, export them as JSON Lines, or erase them; the subject's id is read"
        " from standard input (never an argument: arguments are visible to every user of the host)",
    )
    s.add_argument("action", choices=["count", "export", "erase"])
    s.add_argument("--by", required=True, choices=maintenance.SUBJECT_COLUMNS)
    s.add_argument("--out", help="export: the JSON Lines file to write (0600)")
    s.add_argument("--parquet", help="export: also write the rows as this Parquet file (0600)")
    s.add_argument("--dry-run", action="store_true", help="erase: count what would be removed, change nothing")
    s.add_argument(
        "--purge-after-minutes",
        type=int,
        metavar="M",
        help="erase: then remove the data files outside the current version that still hold the subject's rows and are"
        " older than M minutes, instead of leaving them to vacuum's retention",
    )
    args = parser.parse_args(argv)
    if args.command == "subject" and args.action == "export" and not args.out:
        parser.error("subject export needs --out FILE")

    cfg = exit_on_error("delta-writer", load_config)
    # The other commands print their result as JSON on standard output (playbooks/delta_maintenance.yml reads it).
    logs.setup("delta-writer", cfg.log_level, None if args.command in (None, "run") else sys.stderr)
    if args.command in (None, "run"):
        writer = Writer(cfg)
        signal.signal(signal.SIGTERM, writer.stop)
        signal.signal(signal.SIGINT, writer.stop)
        writer.run()
        return
    dt = EventTable(cfg).open()
    if dt is None:
        print(f"delta-writer: no Delta table at {cfg.table_uri}", file=sys.stderr)
        raise SystemExit(1)
    if args.command == "maintain":
        out: dict = {}
        if not args.dry_run:
            out["expired_rows"] = maintenance.expire(dt, cfg.retention_days)
            out["anonymized_rows"] = maintenance.anonymize(dt, cfg.anonymize_after_days)
            out["compact"] = maintenance.compact(dt)
        out["vacuumed"] = maintenance.vacuum(dt, cfg.vacuum_retention_hours, args.dry_run)
        keep = timedelta(hours=cfg.noncurrent_version_hours)
        out["old_versions"] = maintenance.expire_versions(*object_store(cfg), keep, args.dry_run)
    elif args.command == "subject":
        out = subject(EventTable(cfg), dt, args, cfg)
    elif args.command == "restore":
        out = maintenance.restore(dt, args.version, args.timestamp)
    else:
        out = maintenance.history(dt)
    print(json.dumps(out, default=str, indent=2), flush=True)
    logging.shutdown()
    sys.stderr.flush()
    # Done, and said so: leave without the interpreter's teardown, which delta-rs's runtime beside pyarrow's threads
    # can abort ("terminate called without an active exception", exit -6) after the work succeeded.
    os._exit(0)


def _private_file(path: str, mode: str = "w"):
    """A new file only its owner can read (an export holds a person's data)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8")


def subject(table: EventTable, dt, args, cfg) -> dict:
    value = sys.stdin.readline().rstrip("\n")
    if not value:
        raise SystemExit(f"delta-writer: give the subject's {args.by} on standard input")
    out: dict = {"store": "delta", "by": args.by}
    if args.action == "count" or (args.action == "erase" and args.dry_run):
        out["rows"] = maintenance.subject_rows(dt, args.by, value).num_rows
    elif args.action == "export":
        rows = maintenance.subject_rows(dt, args.by, value)
        with _private_file(args.out) as f:
            for line in maintenance.export_lines(rows):
                f.write(line + "\n")
        if args.parquet:
            import pyarrow.parquet as pq

            with _private_file(args.parquet, "wb") as f:
                pq.write_table(rows.drop_columns(["event_date"]), f)
        out.update(rows=rows.num_rows, version=dt.version())
    else:
        out.update(maintenance.erase(table.open, args.by, value))
        if args.purge_after_minutes is not None:
            done = maintenance.purge_subject_files(
                table.open(), args.by, value, timedelta(minutes=args.purge_after_minutes)
            )
            out.update(
                purged_files=len(done["purged"]),
                files_left_for_vacuum=len(done["left_for_vacuum"]),
                # Paths under the table's root (partition and file names: no personal data). In a versioned bucket
                # their old versions still hold the rows: playbooks/privacy_erase.yml removes those too.
                purged=done["purged"],
            )
        # How long files the purge left (too young) still hold the rows: vacuum's window, then the old versions'.
        out.update(
            vacuum_retention_hours=cfg.vacuum_retention_hours, noncurrent_version_hours=cfg.noncurrent_version_hours
        )
    return out


if __name__ == "__main__":
    main()
