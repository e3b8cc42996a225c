"""Writing events to PostgreSQL: COPY a batch into a temporary table, then insert what is new in one statement.

Exactly once per event_id: every event_id is claimed in analytics_event_ids (its primary key) in the same
transaction that inserts the event, so a redelivered record and a client's retried POST (same event_id, maybe another
timestamp when the client sent none) are both skipped. A batch with a row PostgreSQL refuses as data is split in halves
until the refused rows are alone; everything else is written, and the refused rows are returned with the server's
reason (the sink parks them in the dead-letter topic).

The sink's place in Kafka is kept here too (analytics_sink_offsets: per consumer group and partition, the next offset),
in the transaction that writes the batch. A failover under asynchronous replication may promote a member that lacks
the last acknowledged transactions; their events then lack there, and so do the offsets that passed them: the sink
reads those records from Kafka again instead of trusting Kafka's committed offset, and nothing acknowledged is lost.
"""

from __future__ import annotations

import psycopg
from analytics_common.events import StoredEvent
from psycopg import sql

COLUMNS = (
    "event_id",
    "event_type",
    "session_id",
    "user_id",
    "event_time",
    "received_at",
    "page",
    "properties",
    "metadata",
)
TYPES = ("uuid", "text", "text", "text", "timestamptz", "timestamptz", "text", "jsonb", "jsonb")
# How the rows are sent (COPY's text format): a StoredEvent as it is, the server parses the uuid and the JSON text.
COPY_TYPES = ["text", "text", "text", "text", "timestamptz", "timestamptz", "text", "text", "text"]
# Errors that are about the rows, not about the server or the connection: class 22 (data exception) and 23 (integrity
# constraint violation: a CHECK, a missing partition). Anything else is an outage and retries the whole batch.
DATA_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)


def connect(cfg) -> psycopg.Connection:
    return psycopg.connect(
        host=cfg.pg_host,
        port=cfg.pg_port,
        dbname=cfg.pg_dbname,
        user=cfg.pg_user,
        password=cfg.pg_password,
        sslmode="verify-full",
        sslrootcert=str(cfg.pg_ca_file),
        application_name="pg-sink",
        # PGSINK_PG_HOST may list every member of the cluster: the one that takes writes is used, so the sink follows
        # the leader after a failover. The timeout is per host tried.
        target_session_attrs="read-write",
        connect_timeout=5,
        autocommit=True,  # every write is an explicit transaction block (conn.transaction())
    )


_COLS = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
_CREATE = sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS pg_sink_incoming ({}) ON COMMIT DELETE ROWS").format(
    sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(COLUMNS, TYPES, strict=True)
    )
)
_COPY = sql.SQL("COPY pg_sink_incoming ({}) FROM STDIN").format(_COLS)
_INSERT = sql.SQL(
    "WITH claimed AS ("
    " INSERT INTO analytics_event_ids (event_id, event_time) SELECT event_id, event_time FROM pg_sink_incoming"
    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id)"
    " INSERT INTO analytics_events ({cols}) SELECT {cols} FROM pg_sink_incoming JOIN claimed USING (event_id)"
    " ON CONFLICT (event_id, event_time) DO NOTHING"
).format(cols=_COLS)


_SAVE_OFFSETS = (
    "INSERT INTO analytics_sink_offsets (consumer_group, topic, kafka_partition, next_offset)"
    " SELECT %s, t, p, o FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS x(t, p, o)"
    " ON CONFLICT (consumer_group, topic, kafka_partition)"
    " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()"
)
_READ_OFFSETS = (
    "SELECT topic, kafka_partition, next_offset FROM analytics_sink_offsets"
    " WHERE consumer_group = %s AND (topic, kafka_partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))"
)


def save_offsets(cur: psycopg.Cursor, group: str, last: dict[tuple[str, int], int]) -> None:
    """Record that the batch's records up to `last` (per (topic, partition), the last offset) are stored."""
    keys = sorted(last)
    cur.execute(_SAVE_OFFSETS, (group, [t for t, _p in keys], [p for _t, p in keys], [last[k] + 1 for k in keys]))


def stored_offsets(conn: psycopg.Connection, group: str, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The next offset stored for each of `keys` (those without one are left out)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_READ_OFFSETS, (group, [t for t, _p in keys], [p for _t, p in keys]))
        return {(t, p): o for t, p, o in cur.fetchall()}


def write_events(conn: psycopg.Connection, records: list[StoredEvent], group: str | None = None, last=None) -> int:
    """Insert the batch (one record per event_id) in one transaction, with the offsets `last` when given; returns
    how many rows were new."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_CREATE)
        with cur.copy(_COPY) as copy:
            copy.set_types(COPY_TYPES)
            for r in records:  # a StoredEvent is the row, in the order of COLUMNS
                copy.write_row(r)
        cur.execute(_INSERT)
        inserted = cur.rowcount
        if last:
            save_offsets(cur, group, last)
        return inserted


def reason(e: psycopg.Error) -> str:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return f"PostgreSQL refused the row: {e.sqlstate or '?'} {first}"[:500]


def write_isolated(
    conn: psycopg.Connection, records: list[StoredEvent], group: str | None = None, last=None
) -> tuple[int, list[tuple[int, str]]]:
    """Write the batch and its offsets `last`; if PostgreSQL refuses rows as data, write every other row, then the
    offsets (never before the rows they pass), and return the refused ones as (index, reason). An outage (connection,
    server) propagates: the caller retries the whole batch."""
    try:
        return write_events(conn, records, group, last), []
    except DATA_ERRORS as e:
        if len(records) == 1:
            refused = [(0, reason(e))]
            if last:
                with conn.transaction(), conn.cursor() as cur:
                    save_offsets(cur, group, last)
            return 0, refused
    mid = len(records) // 2
    written_a, refused_a = write_isolated(conn, records[:mid])
    written_b, refused_b = write_isolated(conn, records[mid:], group, last)
    return written_a + written_b, refused_a + [(i + mid, why) for i, why in refused_b]
