"""Kafka -> Delta Lake: the shared batch consumer, batching by size and time into few, large files."""

from __future__ import annotations

import time

from analytics_common.consumer import BatchConsumer
from analytics_common.events import EventRecord
from deltalake.exceptions import DeltaError

from delta_writer.table import EventTable


class Writer(BatchConsumer):
    service = "delta-writer"
    retry_errors = (DeltaError, OSError)

    def __init__(self, cfg):
        super().__init__(cfg, cfg.batch_rows, cfg.batch_seconds)
        self.table = EventTable(cfg)
        self.written: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset already in the table
        self._store_ok, self._store_checked = False, 0.0

    def on_assign(self, consumer, partitions) -> None:
        """Before reading a partition, learn how far the table already has it (a crash may have left the Kafka
        offset behind the table) and start after that."""
        by_topic: dict[str, list] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp)
        for topic, tps in by_topic.items():
            done = self.table.written_up_to(topic, [tp.partition for tp in tps])
            committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=30)}
            for tp in tps:
                if tp.partition in done:
                    self.written[(topic, tp.partition)] = done[tp.partition]
                    if committed.get(tp.partition, -1) <= done[tp.partition]:
                        tp.offset = done[tp.partition] + 1
        consumer.assign(partitions)

    def write(self, records: list[EventRecord], offsets) -> tuple[int, int]:
        fresh = [r for r, (t, p, o) in zip(records, self.positions, strict=True) if o > self.written.get((t, p), -1)]
        if fresh:
            self.table.append(fresh, offsets)
        for key, last in offsets.items():
            self.written[key] = max(self.written.get(key, -1), last)
        return len(fresh), len(records) - len(fresh)

    def store_ready(self) -> bool:
        """The object store answers (checked at most every 15 seconds)."""
        now = time.monotonic()
        if now - self._store_checked > 15:
            try:
                self.table.open()
                self._store_ok = True
            except (DeltaError, OSError):
                self._store_ok = False
            self._store_checked = now
        return self._store_ok
