"""The batch consumer both sinks share: consume -> parse -> write -> park what cannot be stored -> commit offsets.

A subclass implements `write(records, offsets)`: it stores the batch durably and idempotently (a redelivered batch or
a retried event doubles nothing) and returns what it wrote, what it skipped as already stored, and the records the
store itself refused as data (not an outage) with the store's reason, having written all the others.

Records that break the event contract (parsed here) and records the store refused are parked in the dead-letter topic
**in one Kafka transaction with the batch's offsets**: either both the parked copies and the new offsets are committed,
or neither is. A batch retried after any failure therefore never parks a record twice, and a crash at any point loses
nothing and duplicates nothing. After a failure the consumer goes back to the group's committed offsets (not blindly to
the batch's start: a commit whose answer was lost may have landed) and tries again with backoff.

A store that can lose its own last commits (PostgreSQL with asynchronous replication: a failover may promote a
replica that lacks the last acknowledged transactions) keeps each partition's next offset itself, in the transaction
that writes the batch (`offsets_in_store`, `stored_offsets`). Such a consumer starts every partition it is assigned,
and every partition after any failure, at the store's offset when that is behind Kafka's: what the store lost is read
again and written again. Records below Kafka's committed offset were already parked with it, so they are not parked
twice.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client import Counter, Gauge, Histogram

from analytics_common.config import Setting, csv_list, number
from analytics_common.events import PoisonRecord, StoredEvent, parse_stored
from analytics_common.health import Heartbeat, serve
from analytics_common.kafka import librdkafka_conf

CONSUMED = Counter("consumer_records_consumed_total", "Kafka records consumed", ["service"])
WRITTEN = Counter("consumer_records_written_total", "Events written to the store", ["service"])
DUPLICATES = Counter("consumer_duplicates_skipped_total", "Redelivered events skipped (already stored)", ["service"])
PARKED = Counter("consumer_dead_letters_total", "Records parked in the dead-letter topic", ["service", "source"])
ERRORS = Counter("consumer_batch_errors_total", "Batches that failed and were retried", ["service"])
BATCH_SECONDS = Histogram("consumer_batch_seconds", "Time to write and commit one batch", ["service"])
LAG = Gauge("kafka_consumer_lag", "Records after the group's committed offset", ["group", "topic", "partition"])
LAG_UPDATED = Gauge("kafka_consumer_lag_updated_seconds", "When the lag was last read from Kafka (Unix time)")

COMMIT_ATTEMPTS = 3
# A batch allocates a few objects per record (the Kafka message, the parsed row, its JSON values): with the default
# threshold (700) the cyclic collector ran hundreds of times per batch, an eighth of delta_writer's time (py-spy). The
# batch holds no cycles; collections are rarer, and what start-up made is frozen out of them.
GC_THRESHOLD = (100_000, 50, 100)


def lag_settings(prefix: str, group: str) -> list[Setting]:
    """The consumer groups whose lag this service exports (its own by default), and how often it reads them."""
    return [
        Setting(f"{prefix}LAG_GROUPS", csv_list, default=[group], attr="lag_groups"),
        Setting(f"{prefix}LAG_SECONDS", number(1.0), default=10.0, attr="lag_seconds"),
    ]


class LagMonitor(threading.Thread):
    """Exports kafka_consumer_lag of each group in `groups`: per partition of the topic, its end offset minus the
    group's committed offset, read from Kafka every `every` seconds on its own connections.

    It does not depend on the consume loop: the lag of a group whose consumers are stuck (a store that refuses every
    batch commits nothing) or stopped still grows here, which is why every sink reports every platform group (each
    service's user may DESCRIBE those groups). A group that has committed nothing yet is not reported; when Kafka
    cannot be read for three rounds in a row, the series are removed rather than left at a stale value."""

    def __init__(self, base: dict, topic: str, groups: list[str], every: float, log: logging.Logger):
        super().__init__(name="lag-monitor", daemon=True)
        self.base, self.topic, self.groups, self.every, self.log = base, topic, groups, every, log
        self.stopped = threading.Event()
        self.admin: AdminClient | None = None
        self.readers: dict[str, Consumer] = {}
        self.exported: set[tuple[str, str, str]] = set()
        self.unreadable: set[str] = set()
        self.failures = 0

    def reader(self, group: str) -> Consumer:
        """A consumer that never joins `group`: it only reads the group's committed offsets (OffsetFetch). The admin
        client's list_consumer_group_offsets crashes the process with confluent-kafka 2.16 (segfault)."""
        if group not in self.readers:
            self.readers[group] = Consumer({**self.base, "group.id": group, "enable.auto.commit": False})
        return self.readers[group]

    def read(self) -> dict[tuple[str, str, str], int]:
        if self.admin is None:
            self.admin = AdminClient(self.base)
        meta = self.admin.list_topics(self.topic, timeout=10).topics[self.topic]
        if meta.error is not None:
            raise KafkaException(meta.error)
        tps = [TopicPartition(self.topic, p) for p in sorted(meta.partitions)]
        ends, starts = (
            {
                tp.partition: f.result().offset
                for tp, f in self.admin.list_offsets({tp: spec for tp in tps}, request_timeout=10).items()
            }
            for spec in (OffsetSpec.latest(), OffsetSpec.earliest())
        )
        lag = {}
        for group in self.groups:
            try:
                committed = {tp.partition: tp.offset for tp in self.reader(group).committed(tps, timeout=10)}
            except KafkaException as e:  # this group only (not allowed to DESCRIBE it?): the others are still told
                log = self.log.debug if group in self.unreadable else self.log.warning  # once, not every round
                log("lag of group %s not read: %s", group, e.args[0].str())
                self.unreadable.add(group)
                continue
            self.unreadable.discard(group)
            if all(o < 0 for o in committed.values()):
                continue  # the group has not committed anything (yet): no lag to tell
            for p, end in ends.items():
                where = committed.get(p, -1)
                lag[(group, self.topic, str(p))] = max(end - (where if where >= 0 else starts[p]), 0)
        return lag

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                lag = self.read()
                self.failures = 0
            except Exception as e:  # whatever happens, the thread goes on and the lag is not left stale
                self.failures += 1
                log = self.log.warning if self.failures == 1 else self.log.debug  # once per outage, not every round
                log("lag not read: %s", f"{type(e).__name__}: {e}"[:200])
                if self.failures >= 3:
                    lag = {}
                else:
                    self.stopped.wait(self.every)
                    continue
            else:
                LAG_UPDATED.set(time.time())
            for labels, value in lag.items():
                LAG.labels(*labels).set(value)
            for labels in self.exported - set(lag):
                LAG.remove(*labels)
            self.exported = set(lag)
            self.stopped.wait(self.every)
        for reader in self.readers.values():
            reader.close()
        self.readers, self.admin = {}, None


class RetryBatch(RuntimeError):
    """The batch could not be completed; it is rewound and retried."""


@dataclass
class Written:
    """What `write` did with a batch: events written, events skipped as already stored, and the records the store
    refused as data, as (index into the batch, the store's reason)."""

    written: int
    skipped: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


class BatchConsumer:
    service = "consumer"
    retry_errors: tuple[type[BaseException], ...] = ()  # store outages worth retrying, besides Kafka's
    # The store keeps the offsets (stored_offsets): every assigned partition is set to them after an assignment and
    # after any failure, not only the partitions of the failed batch (the store may have lost earlier batches).
    offsets_in_store = False

    def __init__(self, cfg, batch_size: int, batch_seconds: float, consumer_extra: dict | None = None):
        self.cfg = cfg
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.running = True
        self.joined = False
        self.log = logging.getLogger(self.service)
        self.heartbeat = Heartbeat(stale_after=max(120.0, batch_seconds * 3))
        self.base = librdkafka_conf(cfg)
        # One transactional id per instance, stable across restarts on a host: a restarted consumer fences its
        # predecessor and settles the transaction it may have left open at once.
        self.transactional_id = getattr(cfg, "transactional_id", None) or f"{cfg.group}-{socket.gethostname()}"
        self.consumer = Consumer(
            {
                **self.base,
                "group.id": cfg.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "max.poll.interval.ms": 600000,
                **(consumer_extra or {}),
            }
        )
        for counter in (CONSUMED, WRITTEN, DUPLICATES, ERRORS):  # every series exists from the start, at 0
            counter.labels(self.service)
        for source in ("contract", "store"):
            PARKED.labels(self.service, source)
        self.dlq: Producer | None = None  # transactional; created (and its transactions initialised) when needed
        self._unsynced: dict[tuple[str, int], int] = {}  # partitions to put back at their committed offsets
        self.assigned: set[tuple[str, int]] = set()
        # Per partition, Kafka's committed offset when the partition was last set back: the records below it were
        # parked (if they had to be) in the transaction that committed it, so they are not parked again.
        self.parked_below: dict[tuple[str, int], int] = {}
        self._reset_batch()

    # --- for subclasses ---
    def write(self, records: list[StoredEvent], offsets: dict[tuple[str, int], int]) -> Written:
        """Store the records durably and idempotently; see Written."""
        raise NotImplementedError

    def store_ready(self) -> bool:
        return True

    def on_assign(self, consumer, partitions) -> None:
        """Called with newly assigned partitions (offsets may be set before they are assigned)."""

    def stored_offsets(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """With offsets_in_store: the next offset the store holds for each (topic, partition) it knows. Raises one
        of retry_errors while the store cannot say."""
        return {}

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
        self.records: list[StoredEvent] = []
        self.messages: list = []  # the Kafka message of each record (parked as it came, when the store refuses it)
        self.positions: list[tuple[str, int, int]] = []
        self.poison: list = []
        self.first: dict[tuple[str, int], int] = {}
        self.last: dict[tuple[str, int], int] = {}
        self.started = None

    def _assigned(self, consumer, partitions) -> None:
        self.joined = True
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self.assigned.update(keys)
        if self.offsets_in_store:
            # Read nothing of these partitions until they are set to the store's offsets (the loop's next _resync):
            # what consume() returns for them meanwhile is dropped (_collect) and read again from there.
            for key in keys:
                self._unsynced.setdefault(key, -1)
        self.on_assign(consumer, partitions)

    def _revoked(self, consumer, partitions) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self.assigned.discard(key)
            self._unsynced.pop(key, None)
            self.parked_below.pop(key, None)

    def run(self) -> None:
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)
        self.http = serve(
            self.cfg.metrics_host,
            self.cfg.metrics_port,
            self.heartbeat,
            self.ready,
            self.cfg.metrics_tls_cert_file,
            self.cfg.metrics_tls_key_file,
        )
        groups = getattr(self.cfg, "lag_groups", None) or [self.cfg.group]
        self.lag = LagMonitor(self.base, self.cfg.kafka_topic, groups, getattr(self.cfg, "lag_seconds", 10.0), self.log)
        self.lag.start()
        self.consumer.subscribe(
            [self.cfg.kafka_topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )
        backoff = 1.0
        try:
            while self.running:
                if self._unsynced and not self._resync():
                    self._wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                msgs = self.consumer.consume(num_messages=min(self.batch_size, 10000), timeout=0.5)
                self.heartbeat.beat()
                self._collect(msgs)
                full = len(self.records) + len(self.poison) >= self.batch_size
                due = self.started is not None and time.monotonic() - self.started >= self.batch_seconds
                if not (full or due):
                    continue
                try:
                    self._flush()
                    backoff = 1.0
                except (KafkaException, RetryBatch, *self.retry_errors) as e:
                    ERRORS.labels(self.service).inc()
                    self.log.warning("batch failed, retrying: %s", f"{type(e).__name__}: {e}"[:300])
                    self.close_store()  # before the rewind: a store that keeps the offsets is read on a new connection
                    self._rewind()
                    self._wait(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            self.lag.stopped.set()
            self.close_store()
            self.consumer.close()  # leaves the group; uncommitted work is redelivered to whoever takes over
            self.lag.join(30)  # its readers closed too
            self.dlq = None  # releases the producer's threads now

    def _wait(self, seconds: float) -> None:
        """Wait before a retry, beating meanwhile: the loop is not stuck, so systemd's watchdog (WatchdogSec may be
        shorter than the longest backoff) must not kill it; a stop ends the wait."""
        end = time.monotonic() + seconds
        while self.running and (left := end - time.monotonic()) > 0:
            self.heartbeat.beat()
            time.sleep(min(left, 1.0))

    def _collect(self, msgs) -> None:
        consumed = 0
        records, messages, positions, first, last = self.records, self.messages, self.positions, self.first, self.last
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.log.warning("consume error", extra={"error": err.str()})
                continue
            key = (m.topic(), m.partition())
            if key in self._unsynced:
                continue  # assigned during this consume(): read again once set to the store's offset
            consumed += 1
            offset = m.offset()
            if key not in first:
                first[key] = offset
            last[key] = offset
            try:
                records.append(parse_stored(m.value()))
                messages.append(m)
                positions.append((*key, offset))  # where each record came from (topic, partition, offset)
            except PoisonRecord as p:
                self.poison.append((m, p.reason, "contract"))
        if consumed:
            CONSUMED.labels(self.service).inc(consumed)
            if self.started is None:
                self.started = time.monotonic()

    def _flush(self) -> None:
        start = time.perf_counter()
        park = list(self.poison)
        if self.records:
            done = self.write(self.records, dict(self.last))
            WRITTEN.labels(self.service).inc(done.written)
            DUPLICATES.labels(self.service).inc(done.skipped)
            park += [(self.messages[i], reason, "store") for i, reason in done.rejected]
        # Read again because the store had lost them: parked already, with the offsets Kafka has committed.
        park = [x for x in park if x[0].offset() >= self.parked_below.get((x[0].topic(), x[0].partition()), -1)]
        if self.last:
            # The store has the batch: now, and only now, park what it could not hold and move the group's offsets,
            # both in one transaction.
            self._commit(park)
        BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - start)
        self.log.debug("batch written", extra={"batch_size": len(self.records)})
        self._reset_batch()

    def _producer(self) -> Producer:
        if self.dlq is None:
            p = Producer(
                {
                    **self.base,
                    "transactional.id": self.transactional_id,
                    "transaction.timeout.ms": 60000,
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 5,
                }
            )
            p.init_transactions(30)  # fences an earlier instance with this id and settles its open transaction
            self.dlq = p
        return self.dlq

    def _commit(self, park) -> None:
        p = self._producer()
        try:
            p.begin_transaction()
            for m, reason, source in park:
                headers = [
                    ("dlq-reason", reason.encode()),
                    ("dlq-source", f"{m.topic()}/{m.partition()}/{m.offset()}".encode()),
                    ("dlq-consumer", self.cfg.group.encode()),
                    ("dlq-stage", source.encode()),
                ]
                p.produce(self.cfg.dlq_topic, m.value(), key=m.key(), headers=headers)
                where = {"reason": reason, "partition": m.partition(), "offset": m.offset()}
                self.log.warning("record parked in the dead-letter topic", extra=where)
            offsets = [TopicPartition(t, part, o + 1) for (t, part), o in self.last.items()]
            p.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(), 30)
            for attempt in range(COMMIT_ATTEMPTS):
                try:
                    p.commit_transaction(30)
                    break
                except KafkaException as e:
                    if not e.args[0].retriable() or attempt == COMMIT_ATTEMPTS - 1:
                        raise
        except KafkaException as e:
            self._abandon(p, e.args[0])
            raise RetryBatch(f"the offsets and dead letters were not committed: {e.args[0].str()}") from None
        for _m, _reason, source in park:
            PARKED.labels(self.service, source).inc()

    def _abandon(self, p: Producer, err: KafkaError) -> None:
        """Leave a failed transaction behind. Aborted when the client can; otherwise the producer is dropped, and
        the next one (same transactional id) settles it: either way the rewind then reads the committed offsets."""
        if not err.fatal() and err.txn_requires_abort():
            try:
                p.abort_transaction(30)
                return
            except KafkaException:
                pass
        self.dlq = None

    def _rewind(self) -> None:
        """After a failure: back to the group's committed offsets on every partition the batch touched (every
        assigned partition when the store keeps the offsets)."""
        if self.offsets_in_store:
            for key in self.assigned:
                self._unsynced.setdefault(key, -1)
        self._unsynced.update(self.first)
        self._reset_batch()
        self._resync()

    def _resync(self) -> bool:
        """Seek each unsynced partition to its committed offset (to where the batch started when none is committed),
        or to the store's offset when the store keeps them and is behind. False when Kafka or the store could not
        say: nothing is consumed until they can."""
        keys = list(self._unsynced)
        try:
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in self.consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=10)
            }
            stored = self.stored_offsets(keys) if self.offsets_in_store else {}
        except (KafkaException, *self.retry_errors) as e:
            self.log.warning(
                "offsets unknown (Kafka's committed or the store's), retrying: %s", f"{type(e).__name__}: {e}"[:300]
            )
            return False
        for (t, p), first in self._unsynced.items():
            kafka = committed.get((t, p), -1)
            # Neither known: from the start, as auto.offset.reset says (what _collect dropped is read again).
            target = max(first, kafka)
            if (t, p) in stored and (target < 0 or stored[(t, p)] < target):
                target = stored[(t, p)]
                if target < kafka:
                    self.log.warning(
                        "the store lacks records Kafka's committed offset has passed: reading them again",
                        extra={"partition": p, "offset": target, "committed": kafka},
                    )
            if kafka >= 0:
                self.parked_below[(t, p)] = kafka
            try:
                self.consumer.seek(TopicPartition(t, p, target if target >= 0 else OFFSET_BEGINNING))
            except KafkaException as e:  # revoked meanwhile: its new owner reads it from the committed offset
                self.log.info("seek skipped", extra={"partition": p, "error": type(e).__name__})
        self._unsynced = {}
        return True
