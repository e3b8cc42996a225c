"""Kafka -> PostgreSQL: the shared batch consumer with a COPY-based, idempotent writer."""

from __future__ import annotations

import psycopg
from analytics_common.consumer import BatchConsumer, Written
from analytics_common.events import EventRecord, first_per_event

from pg_sink import db


class Sink(BatchConsumer):
    service = "pg-sink"
    retry_errors = (psycopg.Error,)

    def __init__(self, cfg):
        super().__init__(
            cfg, cfg.batch_size, cfg.batch_seconds, {"partition.assignment.strategy": "cooperative-sticky"}
        )
        self.conn: psycopg.Connection | None = None

    def run(self) -> None:
        try:
            self.conn = db.connect(self.cfg)
        except psycopg.Error as e:  # not fatal: the first batch connects again, /ready says not ready meanwhile
            self.log.warning("PostgreSQL not reachable at start-up", extra={"error": type(e).__name__})
        super().run()

    def store_ready(self) -> bool:
        return self.conn is not None and not self.conn.closed

    def write(self, records: list[EventRecord], offsets) -> Written:
        if self.conn is None or self.conn.closed:
            self.conn = db.connect(self.cfg)
        keep = first_per_event(records)  # a retried event twice in one batch: its first copy, as across batches
        inserted, refused = db.write_isolated(self.conn, [records[i] for i in keep])
        return Written(inserted, len(records) - inserted - len(refused), [(keep[i], why) for i, why in refused])

    def close_store(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None
