"""Kafka -> Delta Lake: the shared batch consumer, batching by size and time into few, large files."""

from __future__ import annotations

import time

from analytics_common.consumer import BatchConsumer, Written
from analytics_common.events import StoredEvent, first_per_event
from deltalake.exceptions import DeltaError

from delta_writer.table import EventTable, to_arrow_isolated


class Writer(BatchConsumer):
    service = "delta-writer"
    retry_errors = (DeltaError, OSError)

    def __init__(self, cfg):
        super().__init__(cfg, cfg.batch_rows, cfg.batch_seconds)
        self.table = EventTable(cfg)
        self.written: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset already in the table
        self.unsure = False  # a write failed: its commit may have landed all the same (ask the table before writing)
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

    def write(self, records: list[StoredEvent], offsets) -> Written:
        if self.unsure:
            self._learn_written(offsets)
        keep = first_per_event(records)  # a retried event twice in one batch: its first copy, as across batches
        # Every record is converted, also those the table has already: a record Arrow refuses must be refused (and
        # parked) again when a batch is retried after its Delta commit landed.
        data, rows, refused = to_arrow_isolated([records[i] for i in keep])
        fresh = [
            n
            for n, i in enumerate(rows)
            if self.positions[keep[i]][2] > self.written.get(self.positions[keep[i]][:2], -1)
        ]
        written = 0
        if fresh:
            try:
                written = self.table.append(data.take(fresh) if len(fresh) < data.num_rows else data, offsets)
            except BaseException:
                self.unsure = True
                raise
        for key, last in offsets.items():
            self.written[key] = max(self.written.get(key, -1), last)
        rejected = [(keep[i], why) for i, why in refused]
        return Written(written, len(records) - written - len(rejected), rejected)

    def _learn_written(self, offsets) -> None:
        """After a failed write: how far the table really has each partition (the commit may have landed although
        the call failed, as when the answer to the commit was lost). Raises while the store does not answer."""
        by_topic: dict[str, list[int]] = {}
        for t, p in offsets:
            by_topic.setdefault(t, []).append(p)
        for topic, partitions in by_topic.items():
            for p, last in self.table.written_up_to(topic, partitions).items():
                self.written[(topic, p)] = max(self.written.get((topic, p), -1), last)
        self.unsure = False

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
