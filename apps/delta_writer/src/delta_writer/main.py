"""delta-writer [run] | maintain | restore --version N | --timestamp ISO | history"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from analytics_common import logs
from analytics_common.config import exit_on_error

from delta_writer import maintenance
from delta_writer.config import load_config
from delta_writer.table import EventTable
from delta_writer.writer import Writer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="delta-writer", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="consume Kafka and append to the Delta table (the default)")
    m = sub.add_parser(
        "maintain",
        help="delete rows past the retention, anonymise old client addresses, compact small files, then vacuum files"
        " older than the vacuum retention",
    )
    m.add_argument("--dry-run", action="store_true", help="change nothing: list what vacuum would remove")
    r = sub.add_parser("restore", help="time travel: make an earlier version current (data corruption)")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--version", type=int)
    g.add_argument("--timestamp", help="ISO 8601, e.g. 2026-11-29T10:00:00Z")
    sub.add_parser("history", help="print the table's recent versions")
    args = parser.parse_args(argv)

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
    elif args.command == "restore":
        out = maintenance.restore(dt, args.version, args.timestamp)
    else:
        out = maintenance.history(dt)
    print(json.dumps(out, default=str, indent=2))


if __name__ == "__main__":
    main()
