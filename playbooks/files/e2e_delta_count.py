"""Count the rows of one session in the Delta table, with the writer's own settings: e2e_delta_count.py SESSION.

Run with the delta-writer virtualenv and its environment file loaded (DELTA_* settings)."""

import sys

import pyarrow.dataset as ds
from delta_writer.config import load_config
from delta_writer.table import storage_options
from deltalake import DeltaTable

cfg = load_config()
try:
    table = DeltaTable(cfg.table_uri, storage_options=storage_options(cfg))
except Exception:  # no table yet: nothing written so far
    print(0)
    sys.exit(0)
rows = table.to_pyarrow_dataset().to_table(columns=["session_id"], filter=ds.field("session_id") == sys.argv[1])
print(rows.num_rows)
