"""Count the rows of sessions in the Delta table, with the writer's own settings: e2e_delta_count.py SESSION...
With --distinct, prints the rows and the distinct event_ids among them (playbooks/loadtest.yml).

Run with the delta-writer virtualenv and its environment file loaded (DELTA_* settings). Counted by delta-rs's own
query engine: the files a merge wrote hold string_view columns, which pyarrow's dataset filters cannot compare."""

import os
import sys

import pyarrow as pa
from delta_writer.config import load_config
from delta_writer.table import storage_options
from deltalake import DeltaTable, QueryBuilder

distinct = "--distinct" in sys.argv[1:]
sessions = [a for a in sys.argv[1:] if a != "--distinct"]
cfg = load_config()
try:
    table = DeltaTable(cfg.table_uri, storage_options=storage_options(cfg))
except Exception:  # no table yet: nothing written so far
    print("0 0" if distinct else 0, flush=True)
    os._exit(0)
quoted = ", ".join("'" + s.replace("'", "''") + "'" for s in sessions)
query = f"SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events WHERE session_id IN ({quoted})"  # noqa: S608
row = pa.table(QueryBuilder().register("events", table).execute(query)).to_pylist()[0]
print(f"{row['n']} {row['d']}" if distinct else row["n"], flush=True)
os._exit(0)  # delta-rs's runtime can abort the interpreter's teardown
