"""Producing to Kafka with acks=all: an idempotent producer for single events and a transactional one for batches,
so that a batch is either all in Kafka or not at all (consumers read committed records only)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_lz4
from aiokafka.helpers import create_ssl_context
from analytics_common.events import EventRecord
from prometheus_client import Counter, Gauge

log = logging.getLogger("analytics-api.kafka")
QUEUE_DEPTH = Gauge("kafka_producer_queue_depth", "Events handed to the producer and not yet acknowledged")
PRODUCE_ERRORS = Counter("kafka_producer_errors_total", "Produce requests that Kafka did not acknowledge", ["kind"])


class KafkaUnavailable(RuntimeError):
    """Kafka did not acknowledge in time; the request gets 503 and nothing is half-written."""


class EventProducer:
    """Every call is bounded by the configured timeout, from the moment it is made: waiting for the connection (one
    start shared by all callers), for the transaction lock and for Kafka's acknowledgement all count against it, so a
    request never waits longer however many are in flight. A producer that failed mid-transaction is replaced and
    stopped in the background (stopping it may itself hang while Kafka is unreachable)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.topic = cfg.kafka_topic
        self.timeout = cfg.kafka_timeout_seconds
        self._single: AIOKafkaProducer | None = None
        self._tx: AIOKafkaProducer | None = None
        self._tx_lock = asyncio.Lock()
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
            "linger_ms": 5,
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
            self._single = await self._new()
        if self._tx is None:
            tx_id = f"{self.cfg.transactional_id_prefix}-{socket.gethostname()}-{os.getpid()}"
            self._tx = await self._new(transactional_id=tx_id)

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

    async def send_one(self, record: EventRecord) -> None:
        QUEUE_DEPTH.inc()
        try:
            async with asyncio.timeout(self.timeout):
                await self.start()
                await self._single.send_and_wait(self.topic, record.to_kafka(), key=record.key())
        except Exception as e:
            PRODUCE_ERRORS.labels("single").inc()
            raise KafkaUnavailable(type(e).__name__) from e
        finally:
            QUEUE_DEPTH.dec()

    async def send_batch(self, records: list[EventRecord]) -> None:
        """All records in one transaction: committed together or aborted together."""
        QUEUE_DEPTH.inc(len(records))
        try:
            async with asyncio.timeout(self.timeout):
                await self.start()
                async with self._tx_lock:
                    await self._send_in_transaction(records)
        except Exception as e:
            PRODUCE_ERRORS.labels("batch").inc()
            raise KafkaUnavailable(type(e).__name__) from e
        finally:
            QUEUE_DEPTH.dec(len(records))

    async def _send_in_transaction(self, records: list[EventRecord]) -> None:
        tx = self._tx
        if tx is None:  # replaced after a failure and not yet connected again
            await self.start()
            tx = self._tx
        try:
            await tx.begin_transaction()
            futures = [await tx.send(self.topic, r.to_kafka(), key=r.key()) for r in records]
            await asyncio.gather(*futures)
            await tx.commit_transaction()
        except BaseException:
            # Aborted, failed or cut off by the deadline: this producer may be mid-transaction. Replace it; the new
            # one (same transactional id) fences it, so nothing of this batch ever becomes readable.
            if self._tx is tx:
                self._tx = None
            self._dispose(tx)
            raise
