"""Kafka -> PostgreSQL: the shared batch consumer with a COPY-based, idempotent writer."""

from __future__ import annotations

import psycopg
from analytics_common.consumer import BatchConsumer, RetryBatch, Written
from analytics_common.events import StoredEvent, first_per_event

from pg_sink import db


class Sink(BatchConsumer):
    service = "pg-sink"
    retry_errors = (psycopg.Error,)
    offsets_in_store = True  # analytics_sink_offsets, written with each batch (db.py says why)

    def __init__(self, cfg):
        super().__init__(
            cfg, cfg.batch_size, cfg.batch_seconds, {"partition.assignment.strategy": "cooperative-sticky"}
        )
        self.conn: psycopg.Connection | None = None
        # Whether the partitions were set to the offsets this connection's server holds since it was opened: a
        # batch is only written on such a connection (a new one may reach a new leader that lacks earlier batches).
        self.synced = False

    def run(self) -> None:
        try:
            self.conn = db.connect(self.cfg)
        except psycopg.Error as e:  # not fatal: the first batch connects again, /ready says not ready meanwhile
            self.log.warning("PostgreSQL not reachable at start-up", extra={"error": type(e).__name__})
        super().run()

    def store_ready(self) -> bool:
        return self.conn is not None and not self.conn.closed

    def _connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.synced = False
            self.conn = db.connect(self.cfg)
        return self.conn

    def stored_offsets(self, partitions):
        try:
            offsets = db.stored_offsets(self._connection(), self.cfg.group, partitions)
        except psycopg.Error:
            self.close_store()
            raise
        self.synced = True
        return offsets

    def write(self, records: list[StoredEvent], offsets) -> Written:
        conn = self._connection()
        if not self.synced:
            raise RetryBatch("a new connection to PostgreSQL: the partitions are set to the offsets it holds first")
        keep = first_per_event(records)  # a retried event twice in one batch: its first copy, as across batches
        inserted, refused = db.write_isolated(conn, [records[i] for i in keep], self.cfg.group, offsets)
        return Written(inserted, len(records) - inserted - len(refused), [(keep[i], why) for i, why in refused])

    def close_store(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn, self.synced = None, False
