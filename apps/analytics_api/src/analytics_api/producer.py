"""Producing to Kafka with acks=all: an idempotent producer for single events and a transactional one for batches,
so that a batch is either all in Kafka or not at all (consumers read committed records only).

Batches are committed in groups: the batches that arrive while a transaction is in flight share the next one (group
commit, as databases do with their log). Each batch is still all or nothing (a transaction holds whole batches
only), one transaction's round trips are paid for many batches, and no request queues behind another's lock; a
failed transaction fails every batch of its group (503, retried by the clients with the same event ids)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_lz4
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner
from analytics_common.events import KafkaRecord
from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger("analytics-api.kafka")
QUEUE_DEPTH = Gauge("kafka_producer_queue_depth", "Events handed to the producer and not yet acknowledged")
PRODUCE_ERRORS = Counter("kafka_producer_errors_total", "Produce requests that Kafka did not acknowledge", ["kind"])
TRANSACTIONS = Counter("kafka_producer_transactions_total", "Transactions of the batch path by outcome", ["outcome"])
GROUP_SIZE = Histogram(
    "kafka_producer_batches_per_transaction",
    "Request batches committed together in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


# At most this many records in one transaction (whole batches only: a batch is never split across two).
MAX_GROUP_RECORDS = 20_000
# The transactional producer's record batches (per partition): large, as a group holds many requests' events.
TX_BATCH_BYTES = 256 * 1024


class KafkaUnavailable(RuntimeError):
    """Kafka did not acknowledge in time; the request gets 503 and nothing is half-written."""


@dataclass(slots=True)
class _Waiting:
    """One batch waiting for a transaction: its records, the future its request awaits, and its deadline (loop time)."""

    records: list[KafkaRecord]
    done: asyncio.Future
    deadline: float


class EventProducer:
    """Every call is bounded by the configured timeout, from the moment it is made: waiting for the connection (one
    start shared by all callers), for its transaction and for Kafka's acknowledgement all count against it, so a
    request never waits longer however many are in flight: a transaction is cut off at the earliest deadline of the
    batches it carries, and a batch whose request gave up before its transaction began is dropped. A producer that
    failed mid-transaction is replaced and stopped in the background (stopping it may itself hang while Kafka is
    unreachable)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.topic = cfg.kafka_topic
        self.timeout = cfg.kafka_timeout_seconds
        self._single: AIOKafkaProducer | None = None
        self._tx: AIOKafkaProducer | None = None
        self._waiting: deque[_Waiting] = deque()
        self._committer: asyncio.Task | None = None
        self._partitioner = DefaultPartitioner()
        self._starting: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self._ready_at = 0.0
        self._ready = False

    def _common(self) -> dict:
        return {
            "bootstrap_servers": self.cfg.kafka_bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": self.cfg.kafka_username,
            "sasl_plain_password": self.cfg.kafka_password,
            "ssl_context": create_ssl_context(cafile=str(self.cfg.kafka_ca_file)),
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": "lz4" if has_lz4() else None,
            "request_timeout_ms": int(self.timeout * 1000),
        }

    async def _new(self, **extra) -> AIOKafkaProducer:
        p = AIOKafkaProducer(**self._common(), **extra)
        try:
            await p.start()
        except BaseException:
            self._dispose(p)
            raise
        return p

    async def _connect(self) -> None:
        if self._single is None:
            # Single events: 5 ms of linger gathers concurrent requests' events into one produce request.
            self._single = await self._new(linger_ms=5)
        if self._tx is None:
            tx_id = f"{self.cfg.transactional_id_prefix}-{socket.gethostname()}-{os.getpid()}"
            # Batches: a group is complete when it is handed over, so its record batches go out at once (no linger).
            self._tx = await self._new(transactional_id=tx_id, max_batch_size=TX_BATCH_BYTES, linger_ms=0)

    async def start(self) -> None:
        """Connect both producers. One attempt at a time, shared by every caller; each caller waits only as long as
        its own deadline (asyncio.timeout around this call), and a failed attempt is made again by the next call."""
        if self._single is not None and self._tx is not None:
            return
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(asyncio.wait_for(self._connect(), self.timeout))
            self._starting.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
        await asyncio.shield(self._starting)

    def _dispose(self, p: AIOKafkaProducer | None) -> None:
        """Stop a producer without waiting for it (its stop may hang while Kafka is unreachable)."""
        if p is None:
            return

        async def stop():
            try:
                await asyncio.wait_for(p.stop(), 10)
            except Exception:
                log.warning("a Kafka producer did not stop cleanly")

        task = asyncio.ensure_future(stop())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        if self._committer is not None and not self._committer.done():
            self._committer.cancel()
            await asyncio.wait([self._committer])
        for p in (self._single, self._tx):
            if p is not None:
                try:
                    await asyncio.wait_for(p.stop(), 10)
                except Exception:
                    log.warning("a Kafka producer did not stop cleanly")
        self._single = self._tx = None
        if self._background:
            await asyncio.wait(self._background, timeout=10)

    async def ready(self) -> bool:
        """Kafka answers and knows the topic (cached for 5 seconds)."""
        now = time.monotonic()
        if now - self._ready_at < 5:
            return self._ready
        try:
            async with asyncio.timeout(min(self.timeout, 5)):
                await self.start()
                parts = await self._single.partitions_for(self.topic)
            self._ready = bool(parts)
        except Exception as e:
            log.warning("kafka not ready", extra={"error": type(e).__name__})
            self._ready = False
        self._ready_at = now
        return self._ready

    async def send_one(self, record: KafkaRecord) -> None:
        QUEUE_DEPTH.inc()
        try:
            async with asyncio.timeout(self.timeout):
                await self.start()
                await self._single.send_and_wait(self.topic, record.value, key=record.key)
        except Exception as e:
            PRODUCE_ERRORS.labels("single").inc()
            raise KafkaUnavailable(type(e).__name__) from e
        finally:
            QUEUE_DEPTH.dec()

    async def send_batch(self, records: list[KafkaRecord]) -> None:
        """All records in one transaction (shared with the batches of other requests): committed together or aborted
        together. Returns once Kafka committed it; raises KafkaUnavailable otherwise, within the timeout."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(records, loop.create_future(), loop.time() + self.timeout)
        waiting.done.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no warning if unawaited
        QUEUE_DEPTH.inc(len(records))
        self._waiting.append(waiting)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_groups())
        try:
            async with asyncio.timeout_at(waiting.deadline):
                await asyncio.shield(waiting.done)
        except KafkaUnavailable:
            PRODUCE_ERRORS.labels("batch").inc()
            raise
        except Exception as e:
            PRODUCE_ERRORS.labels("batch").inc()
            raise KafkaUnavailable(type(e).__name__) from e
        finally:
            # Resolved: no effect. Still waiting for its transaction (this request gave up, or was cancelled): the
            # committer drops it. Already in a transaction in flight: that transaction is cut off at this deadline.
            waiting.done.cancel()
            QUEUE_DEPTH.dec(len(records))

    def _next_group(self) -> list[_Waiting]:
        group, size = [], 0
        while self._waiting and (not group or size + len(self._waiting[0].records) <= MAX_GROUP_RECORDS):
            w = self._waiting.popleft()
            if not w.done.done():
                group.append(w)
                size += len(w.records)
        return group

    async def _commit_groups(self) -> None:
        """The only user of the transactional producer: one transaction at a time, each with every batch waiting."""
        while self._waiting:
            group = self._next_group()
            if not group:
                continue
            try:
                async with asyncio.timeout_at(min(w.deadline for w in group)):
                    await self.start()
                    await self._send_in_transaction([r for w in group for r in w.records])
            except BaseException as e:
                TRANSACTIONS.labels("failed").inc()
                for w in group:
                    if not w.done.done():
                        w.done.set_exception(KafkaUnavailable(type(e).__name__))
                if not isinstance(e, Exception):
                    raise
            else:
                TRANSACTIONS.labels("committed").inc()
                GROUP_SIZE.observe(len(group))
                for w in group:
                    if not w.done.done():
                        w.done.set_result(None)

    async def _send_in_transaction(self, records: list[KafkaRecord]) -> None:
        tx = self._tx
        if tx is None:  # replaced after a failure and not yet connected again
            await self.start()
            tx = self._tx
        try:
            await tx.begin_transaction()
            # Record batches built here, one per partition at a time (the default partitioner on the record's key, as
            # send() would): a record appended costs a fraction of a send() (no coroutine, no future per record).
            partitions = sorted(await tx.partitions_for(self.topic))
            open_batches, sent = {}, []
            for r in records:
                p = self._partitioner(r.key, partitions, partitions)
                batch = open_batches.get(p)
                if batch is None:
                    batch = open_batches[p] = tx.create_batch()
                if batch.append(timestamp=None, key=r.key, value=r.value) is None:  # full: send it, start another
                    sent.append(await tx.send_batch(batch, self.topic, partition=p))
                    batch = open_batches[p] = tx.create_batch()
                    batch.append(timestamp=None, key=r.key, value=r.value)
            for p, batch in open_batches.items():
                sent.append(await tx.send_batch(batch, self.topic, partition=p))
            await asyncio.gather(*sent)
            await tx.commit_transaction()
        except BaseException:
            # Aborted, failed or cut off by the deadline: this producer may be mid-transaction. Replace it; the new
            # one (same transactional id) fences it, so nothing of this group ever becomes readable.
            if self._tx is tx:
                self._tx = None
            self._dispose(tx)
            raise
