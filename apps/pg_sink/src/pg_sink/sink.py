"""The consume -> write -> commit loop. Offsets are committed only after the database transaction commits; a poison
record goes to the dead-letter topic (with the reason) before its offset is committed; nothing is lost or doubled."""

from __future__ import annotations

import logging
import time

import psycopg
from analytics_common.events import PoisonRecord, parse_record
from analytics_common.health import Heartbeat, serve
from analytics_common.kafka import librdkafka_conf
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from pg_sink import db

log = logging.getLogger("pg-sink")
CONSUMED = Counter("pg_sink_records_consumed_total", "Kafka records consumed")
INSERTED = Counter("pg_sink_rows_inserted_total", "Rows inserted into PostgreSQL")
DUPLICATES = Counter("pg_sink_duplicates_skipped_total", "Redelivered events skipped (already in PostgreSQL)")
PARKED = Counter("pg_sink_dead_letters_total", "Poison records parked in the dead-letter topic")
ERRORS = Counter("pg_sink_errors_total", "Batches that failed and were retried", ["stage"])
BATCH_SECONDS = Histogram("pg_sink_batch_seconds", "Time to write and commit one batch")
LAG = Gauge("kafka_consumer_lag", "Records not yet consumed", ["group", "topic", "partition"])


class Sink:
    def __init__(self, cfg):
        self.cfg = cfg
        self.running = True
        self.joined = False
        self.heartbeat = Heartbeat(stale_after=max(60.0, cfg.batch_seconds * 10))
        self.conn: psycopg.Connection | None = None
        base = librdkafka_conf(cfg)
        self.consumer = Consumer(
            {
                **base,
                "group.id": cfg.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "cooperative-sticky",
                "max.poll.interval.ms": 300000,
            }
        )
        self.dlq = Producer({**base, "acks": "all", "enable.idempotence": True, "linger.ms": 0})

    # --- health ---
    def ready(self) -> tuple[bool, dict]:
        # Only the loop's thread touches the consumer (librdkafka handles are not shared across threads here).
        db_ok = self.conn is not None and not self.conn.closed
        kafka_ok = self.joined and self.heartbeat.alive()
        return db_ok and kafka_ok, {"postgresql": "ok" if db_ok else "down", "kafka": "ok" if kafka_ok else "down"}

    def _on_assign(self, _consumer, _partitions):
        self.joined = True

    def stop(self, *_):
        self.running = False

    # --- the loop ---
    def run(self) -> None:
        self.http = serve(self.cfg.metrics_host, self.cfg.metrics_port, self.heartbeat, self.ready)
        self.consumer.subscribe([self.cfg.kafka_topic], on_assign=self._on_assign)
        try:
            self.conn = db.connect(self.cfg)
        except psycopg.Error as e:  # not fatal: the first batch connects again, /ready says not ready meanwhile
            log.warning("PostgreSQL not reachable at start-up", extra={"error": type(e).__name__})
        backoff = 1.0
        try:
            while self.running:
                msgs = self.consumer.consume(num_messages=self.cfg.batch_size, timeout=self.cfg.batch_seconds)
                self.heartbeat.beat()
                if not msgs:
                    self._update_lag()
                    continue
                try:
                    self.handle(msgs)
                    backoff = 1.0
                except (psycopg.Error, KafkaException, RetryBatch) as e:
                    ERRORS.labels("write").inc()
                    log.warning("batch failed, retrying: %s", f"{type(e).__name__}: {e}"[:300])
                    self._rewind(msgs)
                    self._close_db()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            self._close_db()
            self.consumer.close()  # leaves the group cleanly; uncommitted work is redelivered to whoever takes over
            self.dlq.flush(10)

    def handle(self, msgs) -> None:
        good, poison, last = [], [], {}
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error", extra={"error": err.str()})
                continue
            CONSUMED.inc()
            last[(m.topic(), m.partition())] = m.offset()
            try:
                good.append(parse_record(m.value()))
            except PoisonRecord as p:
                poison.append((m, p.reason))
        start = time.perf_counter()
        if poison:
            self._park(poison)
        if good:
            if self.conn is None or self.conn.closed:
                self.conn = db.connect(self.cfg)
            inserted = db.write_events(self.conn, good)
            INSERTED.inc(inserted)
            DUPLICATES.inc(len(good) - inserted)
        if last:
            # The database transaction has committed: now, and only now, move the group's offsets.
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
            self.consumer.commit(offsets=offsets, asynchronous=False)
        BATCH_SECONDS.observe(time.perf_counter() - start)
        log.debug("batch written", extra={"batch_size": len(good)})
        self._update_lag()

    def _park(self, poison) -> None:
        failures = []
        for m, reason in poison:
            headers = [
                ("dlq-reason", reason.encode()),
                ("dlq-source", f"{m.topic()}/{m.partition()}/{m.offset()}".encode()),
                ("dlq-consumer", self.cfg.group.encode()),
            ]
            self.dlq.produce(
                self.cfg.dlq_topic, m.value(), key=m.key(), headers=headers,
                on_delivery=lambda err, _msg: failures.append(err) if err else None,
            )  # fmt: skip
            where = {"reason": reason, "partition": m.partition(), "offset": m.offset()}
            log.warning("poison record parked", extra=where)
        if self.dlq.flush(30) != 0 or failures:
            raise RetryBatch("the dead-letter topic did not acknowledge")
        PARKED.inc(len(poison))

    def _rewind(self, msgs) -> None:
        """Go back to the first offset of the failed batch on every partition it touched."""
        first = {}
        for m in msgs:
            if m.error() is None:
                key = (m.topic(), m.partition())
                first[key] = min(first.get(key, m.offset()), m.offset())
        for (t, p), o in first.items():
            try:
                self.consumer.seek(TopicPartition(t, p, o))
            except Exception as e:  # the partition may have been revoked meanwhile: its new owner re-reads it
                log.info("seek skipped", extra={"partition": p, "error": type(e).__name__})

    def _update_lag(self) -> None:
        try:
            for tp in self.consumer.assignment():
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                pos = self.consumer.position([tp])[0].offset
                if high >= 0 and pos >= 0:
                    LAG.labels(self.cfg.group, tp.topic, str(tp.partition)).set(max(high - pos, 0))
        except Exception as e:  # lag is best effort; a failure here never stops the sink
            log.debug("lag not updated", extra={"error": type(e).__name__})

    def _close_db(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


class RetryBatch(RuntimeError):
    """The batch could not be completed; it is re-read and retried."""
