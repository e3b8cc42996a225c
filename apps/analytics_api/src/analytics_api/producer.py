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
    def __init__(self, cfg):
        self.cfg = cfg
        self.topic = cfg.kafka_topic
        self.timeout = cfg.kafka_timeout_seconds
        self._single: AIOKafkaProducer | None = None
        self._tx: AIOKafkaProducer | None = None
        self._tx_lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
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

    async def start(self) -> None:
        """Connect both producers; safe to call repeatedly (a failed start is retried on the next call)."""
        async with self._start_lock:
            if self._single is None:
                p = AIOKafkaProducer(**self._common())
                try:
                    await asyncio.wait_for(p.start(), self.timeout)
                except BaseException:
                    await p.stop()
                    raise
                self._single = p
            if self._tx is None:
                tx_id = f"{self.cfg.transactional_id_prefix}-{socket.gethostname()}-{os.getpid()}"
                p = AIOKafkaProducer(transactional_id=tx_id, **self._common())
                try:
                    await asyncio.wait_for(p.start(), self.timeout)
                except BaseException:
                    await p.stop()
                    raise
                self._tx = p

    async def stop(self) -> None:
        for p in (self._single, self._tx):
            if p is not None:
                await p.stop()
        self._single = self._tx = None

    async def ready(self) -> bool:
        """Kafka answers and knows the topic (cached for 5 seconds)."""
        now = time.monotonic()
        if now - self._ready_at < 5:
            return self._ready
        try:
            await self.start()
            parts = await asyncio.wait_for(self._single.partitions_for(self.topic), 5)
            self._ready = bool(parts)
        except Exception as e:
            log.warning("kafka not ready", extra={"error": type(e).__name__})
            self._ready = False
        self._ready_at = now
        return self._ready

    async def send_one(self, record: EventRecord) -> None:
        QUEUE_DEPTH.inc()
        try:
            await self.start()
            await asyncio.wait_for(
                self._single.send_and_wait(self.topic, record.to_kafka(), key=record.key()), self.timeout
            )
        except Exception as e:
            PRODUCE_ERRORS.labels("single").inc()
            raise KafkaUnavailable(type(e).__name__) from e
        finally:
            QUEUE_DEPTH.dec()

    async def send_batch(self, records: list[EventRecord]) -> None:
        """All records in one transaction: committed together or aborted together."""
        QUEUE_DEPTH.inc(len(records))
        try:
            await self.start()
            async with self._tx_lock:
                try:
                    await asyncio.wait_for(self._send_in_transaction(records), self.timeout * 2)
                except Exception:
                    await self._reset_tx()
                    raise
        except Exception as e:
            PRODUCE_ERRORS.labels("batch").inc()
            raise KafkaUnavailable(type(e).__name__) from e
        finally:
            QUEUE_DEPTH.dec(len(records))

    async def _send_in_transaction(self, records: list[EventRecord]) -> None:
        async with self._tx.transaction():
            futures = [await self._tx.send(self.topic, r.to_kafka(), key=r.key()) for r in records]
            await asyncio.gather(*futures)

    async def _reset_tx(self) -> None:
        """After a failed transaction the producer may be unusable: replace it (the new one fences the old id)."""
        p, self._tx = self._tx, None
        if p is not None:
            try:
                await asyncio.wait_for(p.stop(), 5)
            except Exception:
                log.warning("transactional producer did not stop cleanly")
