"""Watch the Delta table for a load test's probes: loadtest_delta_probe.py SESSION SECONDS.

Run with the delta-writer virtualenv and its environment file loaded (DELTA_* settings), like e2e_delta_count.py.
Every 0.5 s the table's log is read again; the data files a new version added (only those: the table's earlier files
are never read) are searched for the probes (session SESSION-probe), and each probe's freshness is the time it was
first seen minus its timestamp (set by the load generator when it sent the probe). Prints one JSON object.
"""

import json
import os
import sys
import time
from datetime import UTC, datetime

from delta_writer.config import load_config
from delta_writer.table import storage_options
from deltalake import DeltaTable

POLL_SECONDS = 0.5


def quantile(values, q):
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else None


def main():
    session, seconds = sys.argv[1], float(sys.argv[2])
    cfg = load_config()
    table = DeltaTable(cfg.table_uri, storage_options=storage_options(cfg))
    known = {fragment.path for fragment in table.to_pyarrow_dataset().get_fragments()}
    first_seen, versions, files_read = {}, 0, 0
    probes = f"{session}-probe"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        version = table.version()
        table.update_incremental()
        if table.version() != version:
            versions += table.version() - version
            now = datetime.now(UTC)
            for fragment in table.to_pyarrow_dataset().get_fragments():
                if fragment.path in known:
                    continue
                known.add(fragment.path)
                files_read += 1
                # Picked out here, not by the scan: a merged file's strings are string_view, which pyarrow's
                # filters cannot compare or take.
                rows = fragment.to_table(columns=["session_id", "event_id", "event_time"])
                columns = (rows[c].to_pylist() for c in ("session_id", "event_id", "event_time"))
                for sid, event_id, sent in zip(*columns, strict=True):
                    if sid == probes:
                        first_seen.setdefault(event_id, (now - sent).total_seconds())
        time.sleep(POLL_SECONDS)
    freshness = list(first_seen.values())
    print(
        json.dumps(
            {
                "probes_seen": len(freshness),
                "p50_ms": quantile(freshness, 0.5),
                "p99_ms": quantile(freshness, 0.99),
                "max_ms": round(max(freshness) * 1000, 1) if freshness else None,
                "versions": versions,
                "files_read": files_read,
                "poll_ms": POLL_SECONDS * 1000,
            }
        ),
        flush=True,
    )
    os._exit(0)  # delta-rs's runtime can abort the interpreter's teardown


if __name__ == "__main__":
    main()
