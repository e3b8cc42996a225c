#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: pg_subject
short_description: Count, export or erase one data subject's events in the platform's PostgreSQL database
description:
  - The GDPR functions of the guide's compliance section for the events table, run on a database member (as the
    C(postgres) user through the local socket by default). A data subject is found by O(by) (C(user_id) or
    C(session_id)); the id itself is O(subject) and never leaves the module (it is not returned, logged or recorded).
  - "C(erase) deletes the subject's events from every partition of C(analytics_events) in one transaction on the
    leader (replicas follow by streaming replication) and records an HMAC of the subject under O(erasure_key) in
    C(analytics_erasures) (no personal data: the HMAC cannot be reversed without the key), which the dead-letter replay
    consults. The claims of the events' ids in C(analytics_event_ids) are kept, so a redelivered event stays skipped.
    A second run removes nothing and changes nothing. On a replica it only counts what is left there."
  - C(export) writes the subject's events as JSON Lines to O(dest) (mode 0600, oldest first, one object per event in
    the shape C(delta-writer subject export) writes, with the table's columns, properties and metadata as objects,
    times in UTC) and returns the file's SHA-256.
  - Check mode counts what C(erase) would remove or C(export) would write, and changes and writes nothing.
version_added: 0.3.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  by:
    description: The column that identifies the data subject.
    type: str
    choices: [user_id, session_id]
    required: true
  subject:
    description: The subject's id in that column (personal data; never returned or logged).
    type: str
    required: true
  action:
    description: What to do with the subject's events.
    type: str
    choices: [count, export, erase]
    default: count
  dest:
    description: O(action=export) only, the JSON Lines file to write on the module's host.
    type: path
  erasure_key:
    description:
      - O(action=erase) only, the secret key of the HMAC recorded for the subject (at least 32 characters; from the
        vault, C(privacy_erasure_key)). The same key must be used for every erasure of an environment.
    type: str
  request:
    description:
      - O(action=erase) only, the reference of the erasure request (a ticket id; letters, digits and C(._:/-), no
        personal data), recorded with the first erasure of the subject.
    type: str
  db:
    description: The database.
    type: str
    default: analytics
  login_user:
    description: The database user (a superuser or the events' owner).
    type: str
    default: postgres
  login_password:
    description: Its password (not needed through the local socket with peer authentication).
    type: str
  login_host:
    description: The server's address, or the folder of its local socket.
    type: str
    default: /var/run/postgresql
  port:
    description: The server's port.
    type: int
    default: 5432
  ssl_mode:
    description: libpq's sslmode for a TCP connection.
    type: str
    choices: [disable, prefer, require, verify-ca, verify-full]
    default: prefer
  ca_path:
    description: The CA that signed the server's certificate (verify-ca, verify-full).
    type: path
requirements:
  - psycopg 3 or psycopg2 on the module's host (the postgresql role installs python3-psycopg2)
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Erase a user's events
  analytics.platform.pg_subject:
    by: user_id
    subject: "{{ privacy_subject }}"
    action: erase
    erasure_key: "{{ privacy_erasure_key }}"
    request: DPO-2026-0142
  become: true
  become_user: postgres
  no_log: true
"""

RETURN = r"""
standby:
  description: The member is a replica (in recovery); nothing was changed there.
  returned: always
  type: bool
rows:
  description: The subject's events removed (erase), written (export) or counted (count, check mode, a replica).
  returned: always
  type: int
partitions:
  description: Partition -> the subject's events there (removed, or in check mode to be removed).
  returned: when action is erase
  type: dict
recorded:
  description: The erasure added the subject's HMAC to analytics_erasures (its first erasure).
  returned: when action is erase
  type: bool
sha256:
  description: The SHA-256 of the export file.
  returned: when action is export and not in check mode
  type: str
"""

import hashlib
import json
import os
import re
from datetime import UTC

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.analytics.platform.plugins.module_utils.privacy import subject_digest

try:
    import psycopg as driver
    from psycopg import sql

    HAS_DRIVER = True
except ImportError:
    try:
        import psycopg2 as driver
        from psycopg2 import sql

        HAS_DRIVER = True
    except ImportError:
        driver = sql = None
        HAS_DRIVER = False

REQUEST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
MIN_KEY = 32
COUNT = "SELECT count(*) FROM analytics_events WHERE {by} = %s"
PER_PARTITION = "SELECT tableoid::regclass::text, count(*) FROM analytics_events WHERE {by} = %s GROUP BY 1"
DELETE = (
    "WITH gone AS (DELETE FROM analytics_events WHERE {by} = %s RETURNING tableoid::regclass::text AS part) "
    "SELECT part, count(*) FROM gone GROUP BY part"
)
EXPORT = (
    "SELECT event_id::text, event_type, session_id, user_id, event_time, received_at, page, properties, metadata "
    "FROM analytics_events WHERE {by} = %s ORDER BY event_time, event_id"
)


def statement(template: str, by: str):
    """The statement for the subject's column, the column quoted by the driver (it is one of `by`'s choices)."""
    return sql.SQL(template).format(by=sql.Identifier(by))


def iso(t):
    # One spelling for every store's export: UTC, microseconds, Z (delta_writer.maintenance writes the same).
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def export_line(row) -> str:
    names = ("event_id", "event_type", "session_id", "user_id", "event_time", "received_at", "page")
    out = dict(zip(names, row[:7], strict=True))
    out["event_time"], out["received_at"] = iso(out["event_time"]), iso(out["received_at"])
    props, meta = row[7], row[8]
    out["properties"] = json.loads(props) if isinstance(props, str) else props
    out["metadata"] = json.loads(meta) if isinstance(meta, str) else meta
    return json.dumps(out, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def connect(p):
    args = {"dbname": p["db"], "user": p["login_user"], "host": p["login_host"], "port": p["port"]}
    if p["login_password"]:
        args["password"] = p["login_password"]
    if not p["login_host"].startswith("/"):
        args["sslmode"] = p["ssl_mode"]
        if p["ca_path"]:
            args["sslrootcert"] = p["ca_path"]
    return driver.connect(**args)


def erase(cur, p, check: bool) -> dict:
    by, subject = p["by"], p["subject"]
    if check:
        cur.execute(statement(PER_PARTITION, by), (subject,))
        parts = dict(cur.fetchall())
        return {"rows": sum(parts.values()), "partitions": parts, "recorded": False}
    cur.execute(statement(DELETE, by), (subject,))
    parts = dict(cur.fetchall())
    rows = sum(parts.values())
    digest = subject_digest(p["erasure_key"], by, subject)
    cur.execute(
        "INSERT INTO analytics_erasures (subject_digest, first_request, rows_erased) VALUES (%s, %s, %s) "
        "ON CONFLICT (subject_digest) DO NOTHING RETURNING 1",
        (digest, p["request"], rows),
    )
    recorded = cur.fetchone() is not None
    if not recorded and rows:  # erased again: events stored since the first erasure
        cur.execute(
            "UPDATE analytics_erasures SET rows_erased = rows_erased + %s, last_erased_at = now() "
            "WHERE subject_digest = %s",
            (rows, digest),
        )
    return {"rows": rows, "partitions": parts, "recorded": recorded}


def export(cur, p, check: bool) -> dict:
    if check:
        cur.execute(statement(COUNT, p["by"]), (p["subject"],))
        return {"rows": cur.fetchone()[0]}
    cur.execute(statement(EXPORT, p["by"]), (p["subject"],))
    digest, rows = hashlib.sha256(), 0
    fd = os.open(p["dest"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        for row in cur:
            line = (export_line(row) + "\n").encode("utf-8")
            f.write(line)
            digest.update(line)
            rows += 1
    return {"rows": rows, "sha256": digest.hexdigest()}


def main():
    module = AnsibleModule(
        argument_spec={
            "by": {"type": "str", "choices": ["user_id", "session_id"], "required": True},
            "subject": {"type": "str", "required": True, "no_log": True},
            "action": {"type": "str", "choices": ["count", "export", "erase"], "default": "count"},
            "dest": {"type": "path"},
            "erasure_key": {"type": "str", "no_log": True},
            "request": {"type": "str"},
            "db": {"type": "str", "default": "analytics"},
            "login_user": {"type": "str", "default": "postgres"},
            "login_password": {"type": "str", "no_log": True},
            "login_host": {"type": "str", "default": "/var/run/postgresql"},
            "port": {"type": "int", "default": 5432},
            "ssl_mode": {
                "type": "str",
                "choices": ["disable", "prefer", "require", "verify-ca", "verify-full"],
                "default": "prefer",
            },
            "ca_path": {"type": "path"},
        },
        required_if=[("action", "export", ["dest"]), ("action", "erase", ["erasure_key", "request"])],
        supports_check_mode=True,
    )
    p = module.params
    if not HAS_DRIVER:
        module.fail_json(msg=missing_required_lib("psycopg (or psycopg2)"))
    if not p["subject"]:
        module.fail_json(msg="subject: the data subject's id is empty")
    if p["action"] == "erase":
        if len(p["erasure_key"]) < MIN_KEY:
            module.fail_json(msg=f"erasure_key: at least {MIN_KEY} characters are needed (got {len(p['erasure_key'])})")
        if not REQUEST.match(p["request"]):
            module.fail_json(
                msg=f"request: {p['request']!r} is not a reference (letters, digits and ._:/-, up to 128; "
                "no personal data)"
            )
    try:
        conn = connect(p)
    except driver.Error as e:
        module.fail_json(msg=f"cannot connect to {p['db']} at {p['login_host']}:{p['port']}: {str(e).strip()}")
    try:
        cur = conn.cursor()
        cur.execute("SELECT pg_is_in_recovery()")
        standby = cur.fetchone()[0]
        check = module.check_mode or standby
        if p["action"] == "export":
            result = export(cur, p, module.check_mode)
        elif p["action"] == "erase":
            result = erase(cur, p, check)
        else:
            cur.execute(statement(COUNT, p["by"]), (p["subject"],))
            result = {"rows": cur.fetchone()[0]}
        conn.commit()
    except driver.Error as e:
        conn.rollback()
        module.fail_json(msg=f"{p['action']} by {p['by']} in {p['db']}: {str(e).strip()}")
    finally:
        conn.close()
    changed = p["action"] == "erase" and not check and (result["rows"] > 0 or result["recorded"])
    changed = changed or (p["action"] == "export" and not module.check_mode)
    module.exit_json(changed=changed, standby=standby, **result)


if __name__ == "__main__":
    main()
