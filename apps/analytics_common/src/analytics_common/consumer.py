"""The batch consumer both sinks share: consume -> parse -> park poison records -> write -> commit offsets.

A subclass implements `write(records, offsets)`; it must be durable and idempotent when it returns (a redelivered
batch must not double anything). Offsets are committed only after `write` returned and the dead-letter topic
acknowledged every poison record, so a crash at any point loses nothing and duplicates nothing. A failed batch is
rewound (every touched partition seeks back to the batch's first offset) and retried with backoff.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from analytics_common.events import EventRecord, PoisonRecord, parse_record
from analytics_common.health import Heartbeat, serve
from analytics_common.kafka import librdkafka_conf

CONSUMED = Counter("consumer_records_consumed_total", "Kafka records consumed", ["service"])
WRITTEN = Counter("consumer_records_written_total", "Events written to the store", ["service"])
DUPLICATES = Counter("consumer_duplicates_skipped_total", "Redelivered events skipped (already stored)", ["service"])
PARKED = Counter("consumer_dead_letters_total", "Poison records parked in the dead-letter topic", ["service"])
ERRORS = Counter("consumer_batch_errors_total", "Batches that failed and were retried", ["service"])
BATCH_SECONDS = Histogram("consumer_batch_seconds", "Time to write and commit one batch", ["service"])
LAG = Gauge("kafka_consumer_lag", "Records not yet consumed", ["group", "topic", "partition"])


class RetryBatch(RuntimeError):
    """The batch could not be completed; it is rewound and retried."""


class BatchConsumer:
    service = "consumer"
    retry_errors: tuple[type[BaseException], ...] = ()  # store errors worth retrying, besides Kafka's

    def __init__(self, cfg, batch_size: int, batch_seconds: float, consumer_extra: dict | None = None):
        self.cfg = cfg
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.running = True
        self.joined = False
        self.log = logging.getLogger(self.service)
        self.heartbeat = Heartbeat(stale_after=max(120.0, batch_seconds * 3))
        base = librdkafka_conf(cfg)
        self.consumer = Consumer(
            {
                **base,
                "group.id": cfg.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "max.poll.interval.ms": 600000,
                **(consumer_extra or {}),
            }
        )
        self.dlq = Producer({**base, "acks": "all", "enable.idempotence": True, "linger.ms": 0})
        self._reset_batch()

    # --- for subclasses ---
    def write(self, records: list[EventRecord], offsets: dict[tuple[str, int], int]) -> tuple[int, int]:
        """Store the records durably and idempotently; returns (written, skipped as duplicates)."""
        raise NotImplementedError

    def store_ready(self) -> bool:
        return True

    def on_assign(self, consumer, partitions) -> None:
        """Called with newly assigned partitions (offsets may be set before they are assigned)."""

    def close_store(self) -> None:
        """Release the store's connection after a failure or at shutdown."""

    # --- health ---
    def ready(self) -> tuple[bool, dict]:
        # Only the loop's thread touches the Kafka handles; this reads flags it maintains.
        store = self.store_ready()
        kafka = self.joined and self.heartbeat.alive()
        return store and kafka, {"store": "ok" if store else "down", "kafka": "ok" if kafka else "down"}

    def stop(self, *_):
        self.running = False

    # --- the loop ---
    def _reset_batch(self) -> None:
        self.records: list[EventRecord] = []
        self.positions: list[tuple[str, int, int]] = []
        self.poison: list = []
        self.first: dict[tuple[str, int], int] = {}
        self.last: dict[tuple[str, int], int] = {}
        self.started = None

    def _assigned(self, consumer, partitions) -> None:
        self.joined = True
        self.on_assign(consumer, partitions)

    def run(self) -> None:
        self.http = serve(self.cfg.metrics_host, self.cfg.metrics_port, self.heartbeat, self.ready)
        self.consumer.subscribe([self.cfg.kafka_topic], on_assign=self._assigned)
        backoff = 1.0
        try:
            while self.running:
                msgs = self.consumer.consume(num_messages=min(self.batch_size, 10000), timeout=0.5)
                self.heartbeat.beat()
                self._collect(msgs)
                full = len(self.records) + len(self.poison) >= self.batch_size
                due = self.started is not None and time.monotonic() - self.started >= self.batch_seconds
                if not (full or due):
                    if not msgs:
                        self._update_lag()
                    continue
                try:
                    self._flush()
                    backoff = 1.0
                except (KafkaException, RetryBatch, *self.retry_errors) as e:
                    ERRORS.labels(self.service).inc()
                    self.log.warning("batch failed, retrying: %s", f"{type(e).__name__}: {e}"[:300])
                    self._rewind()
                    self.close_store()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            self.close_store()
            self.consumer.close()  # leaves the group; uncommitted work is redelivered to whoever takes over
            self.dlq.flush(10)
            self.dlq = None  # releases the producer's threads now

    def _collect(self, msgs) -> None:
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.log.warning("consume error", extra={"error": err.str()})
                continue
            CONSUMED.labels(self.service).inc()
            key = (m.topic(), m.partition())
            self.first.setdefault(key, m.offset())
            self.last[key] = m.offset()
            if self.started is None:
                self.started = time.monotonic()
            try:
                self.records.append(parse_record(m.value()))
                self.positions.append((*key, m.offset()))  # where each record came from (topic, partition, offset)
            except PoisonRecord as p:
                self.poison.append((m, p.reason))

    def _flush(self) -> None:
        start = time.perf_counter()
        if self.poison:
            self._park(self.poison)
            self.poison = []  # parked: a retry of the rest must not park them twice
        if self.records:
            written, skipped = self.write(self.records, dict(self.last))
            WRITTEN.labels(self.service).inc(written)
            DUPLICATES.labels(self.service).inc(skipped)
        if self.last:
            # The store has the batch: now, and only now, move the group's offsets.
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in self.last.items()]
            self.consumer.commit(offsets=offsets, asynchronous=False)
        BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - start)
        self.log.debug("batch written", extra={"batch_size": len(self.records)})
        self._reset_batch()
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
            self.log.warning("poison record parked", extra=where)
        if self.dlq.flush(30) != 0 or failures:
            raise RetryBatch("the dead-letter topic did not acknowledge")
        PARKED.labels(self.service).inc(len(poison))

    def _rewind(self) -> None:
        """Go back to the first offset of the failed batch on every partition it touched, and start over."""
        for (t, p), o in self.first.items():
            try:
                self.consumer.seek(TopicPartition(t, p, o))
            except KafkaException as e:  # revoked meanwhile: its new owner re-reads it from the committed offset
                self.log.info("seek skipped", extra={"partition": p, "error": type(e).__name__})
        self._reset_batch()

    def _update_lag(self) -> None:
        try:
            for tp in self.consumer.assignment():
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                pos = self.consumer.position([tp])[0].offset
                if high >= 0 and pos >= 0:
                    LAG.labels(self.cfg.group, tp.topic, str(tp.partition)).set(max(high - pos, 0))
        except KafkaException as e:  # lag is best effort; a failure here never stops the consumer
            self.log.debug("lag not updated", extra={"error": type(e).__name__})
