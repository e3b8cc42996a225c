#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: events_parquet
short_description: Write an export's JSON Lines of events as a Parquet file
description:
  - Reads the JSON Lines a data subject export holds (the shape both stores' exports share, written by the
    C(pg_subject) module and by C(delta-writer subject export)) and writes them as Parquet with the Delta table's
    columns and types (the partition column left out) and zstd compression. C(properties) and C(metadata) become
    compact JSON text, as the table holds them; times are UTC timestamps in microseconds.
  - The file is written private (0600) and only replaced when its bytes change, so a second run changes nothing.
  - Used by playbooks/privacy_export.yml on the controller (pyarrow is one of the collection's controller
    requirements).
version_added: 0.3.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  src:
    description: The JSON Lines file.
    type: path
    required: true
  dest:
    description: The Parquet file to write.
    type: path
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - pyarrow
"""

EXAMPLES = r"""
- name: The PostgreSQL export as Parquet too
  analytics.platform.events_parquet:
    src: reports/privacy/exports/lab/DSAR-1/postgresql.jsonl
    dest: reports/privacy/exports/lab/DSAR-1/postgresql.parquet
  delegate_to: localhost
"""

RETURN = r"""
rows:
  description: Events written.
  returned: always
  type: int
"""

import json
import os
import tempfile
from datetime import datetime

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import pyarrow as pa
    import pyarrow.parquet as pq

    HAS_PYARROW = True
except ImportError:
    HAS_PYARROW = False

# The Delta table's columns (apps/delta_writer: table.SCHEMA) without the partition column event_date; a test holds
# the two equal.
COLUMNS = (
    ("event_id", "string"),
    ("event_type", "string"),
    ("session_id", "string"),
    ("user_id", "string"),
    ("event_time", "time"),
    ("received_at", "time"),
    ("page", "string"),
    ("properties", "json"),
    ("metadata", "json"),
)


def schema():
    kinds = {"string": pa.string(), "json": pa.string(), "time": pa.timestamp("us", tz="UTC")}
    return pa.schema([(name, kinds[kind]) for name, kind in COLUMNS])


def cell(kind: str, value):
    if value is None:
        return None
    if kind == "time":
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return str(value)


def read_lines(path: str) -> list:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                rows.append({name: cell(kind, event.get(name)) for name, kind in COLUMNS})
            except (ValueError, TypeError, AttributeError) as e:
                raise ValueError(f"{path} line {number}: not an exported event ({type(e).__name__}: {e})") from e
    return rows


def held(path: str):
    """The file's bytes, or None when there is none."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        return f.read()


def main():
    module = AnsibleModule(
        argument_spec={"src": {"type": "path", "required": True}, "dest": {"type": "path", "required": True}},
        supports_check_mode=True,
    )
    if not HAS_PYARROW:
        module.fail_json(msg=missing_required_lib("pyarrow"))
    src, dest = module.params["src"], module.params["dest"]
    if not os.path.isfile(src):
        module.fail_json(msg=f"src: {src} is not a file")
    try:
        rows = read_lines(src)
    except (OSError, ValueError) as e:
        module.fail_json(msg=f"src: {e}")
    sink = pa.BufferOutputStream()  # made in memory: check mode writes nothing
    pq.write_table(pa.Table.from_pylist(rows, schema=schema()), sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    changed = held(dest) != data
    if changed and not module.check_mode:
        fd, tmp = tempfile.mkstemp(prefix=".events-parquet-", dir=os.path.dirname(os.path.abspath(dest)))  # 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)  # beside dest: atomic
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    module.exit_json(changed=changed, rows=len(rows))


if __name__ == "__main__":
    main()
