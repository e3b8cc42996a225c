"""Writing events to PostgreSQL: COPY a batch into a temporary table, then insert what is new in one statement.
Redelivered events conflict on (event_id, event_time) and are skipped, so the sink is idempotent."""

from __future__ import annotations

import psycopg
from analytics_common.events import EventRecord
from psycopg import sql
from psycopg.types.json import Jsonb

COLUMNS = (
    "event_id", "event_type", "session_id", "user_id", "event_time", "received_at", "page", "properties", "metadata",
)  # fmt: skip
TYPES = ("uuid", "text", "text", "text", "timestamptz", "timestamptz", "text", "jsonb", "jsonb")


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
        connect_timeout=10,
        autocommit=True,  # every write is an explicit transaction block (conn.transaction())
    )


def row(r: EventRecord) -> tuple:
    return (
        r.event_id,
        r.event_type,
        r.session_id,
        r.user_id,
        r.timestamp,
        r.received_at,
        r.page,
        Jsonb(r.properties),
        Jsonb(r.metadata),
    )


def write_events(conn: psycopg.Connection, records: list[EventRecord]) -> int:
    """Insert the batch in one transaction; returns how many rows were new."""
    cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(COLUMNS, TYPES, strict=True)
    )
    with conn.transaction(), conn.cursor() as cur:
        create = sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS pg_sink_incoming ({}) ON COMMIT DELETE ROWS")
        cur.execute(create.format(definition))
        with cur.copy(sql.SQL("COPY pg_sink_incoming ({}) FROM STDIN").format(cols)) as copy:
            copy.set_types(list(TYPES))
            for r in records:
                copy.write_row(row(r))
        cur.execute(
            sql.SQL(
                "INSERT INTO analytics_events ({cols}) SELECT DISTINCT ON (event_id, event_time) {cols} "
                "FROM pg_sink_incoming ON CONFLICT (event_id, event_time) DO NOTHING"
            ).format(cols=cols)
        )
        return cur.rowcount
