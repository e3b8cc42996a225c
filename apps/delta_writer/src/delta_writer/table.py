"""The Delta table of events: schema, storage options, appends with app transactions, maintenance.

Exactly once: each commit carries, for every Kafka partition in the batch, a Delta app transaction
(app id "<group>/<topic>/<partition>", version = the batch's last offset of that partition). A batch that is
redelivered after a crash (offsets not yet committed to Kafka) is recognised from those versions and skipped.

Exactly once per event_id (DELTA_DEDUP=event_id, the default): the batch is merged into the table on event_id, looking
at the partitions of the batch's dates and the DELTA_DEDUP_DAYS before them, so a client's retried POST (same event_id,
a later server timestamp when the client sent none) is not stored twice. DELTA_DEDUP=offsets only appends (cheaper;
exactly once per Kafka record, not per event_id).

Concurrent commits: several writers (consumer-group members) append to one table. delta-rs makes concurrent commits
safe on S3 through conditional writes (`conditional_put=etag`); the pinned SeaweedFS supports them (tested in
tests/test_delta_writer.py with concurrent writers).
"""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
from analytics_common.events import StoredEvent
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

MERGE_ATTEMPTS = 8  # a merge that lost a race with another writer's commit is made again on the new version

SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("session_id", pa.string()),
        ("user_id", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("page", pa.string()),
        ("properties", pa.string()),  # JSON
        ("metadata", pa.string()),  # JSON
        ("event_date", pa.date32()),  # partition column
    ]
)


def storage_options(cfg) -> dict:
    if cfg.s3_ca_file:
        # object_store (Rust) reads the trust store from SSL_CERT_FILE; on hosts the pki role also installs the CA
        # system-wide.
        os.environ["SSL_CERT_FILE"] = str(cfg.s3_ca_file)
    return {
        "AWS_ENDPOINT_URL": cfg.s3_endpoint,
        "AWS_ACCESS_KEY_ID": cfg.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": cfg.s3_secret_key,
        "AWS_REGION": cfg.s3_region,
        "AWS_S3_ADDRESSING_STYLE": "path",
        "conditional_put": "etag",
    }


def object_store(cfg):
    """A boto3 client of the table's object store and the table's (bucket, key prefix ending in "/"): what the
    maintenance needs beyond delta-rs (the store's object versions)."""
    import boto3
    from botocore.config import Config

    bucket, _slash, path = cfg.table_uri.removeprefix("s3://").partition("/")
    client = boto3.client(
        "s3",
        endpoint_url=cfg.s3_endpoint,
        aws_access_key_id=cfg.s3_access_key,
        aws_secret_access_key=cfg.s3_secret_key,
        region_name=cfg.s3_region,
        verify=str(cfg.s3_ca_file) if cfg.s3_ca_file else True,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
    )
    return client, bucket, path.strip("/") + "/" if path.strip("/") else ""


def to_arrow(records: list[StoredEvent]) -> pa.Table:
    """The batch as Arrow columns: the rows transposed at once, each column converted in one call."""
    if not records:
        return SCHEMA.empty_table()
    columns = list(zip(*records, strict=True))  # StoredEvent's fields are SCHEMA's columns but the last
    # The partition: the event's date where it happened (its own UTC offset), as the table has always had it.
    columns.append([t.date() for t in columns[StoredEvent._fields.index("timestamp")]])
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, SCHEMA, strict=True)], schema=SCHEMA)


CONVERSION_ERRORS = (pa.ArrowException, ValueError, TypeError, OverflowError)


def to_arrow_isolated(records: list[StoredEvent]) -> tuple[pa.Table, list[int], list[tuple[int, str]]]:
    """The batch as Arrow: (table, the index of the record behind each row, the refused records as (index, reason)).
    A record Arrow refuses is left out; the others are all there."""
    try:
        return to_arrow(records), list(range(len(records))), []
    except CONVERSION_ERRORS:
        pass
    good, refused = [], []
    for i, r in enumerate(records):
        try:
            to_arrow([r])
            good.append(i)
        except CONVERSION_ERRORS as e:
            refused.append((i, f"the Delta table refused the row: {type(e).__name__}: {e}"[:500]))
    return to_arrow([records[i] for i in good]), good, refused


class EventTable:
    def __init__(self, cfg):
        self.uri = cfg.table_uri
        self.options = storage_options(cfg)
        self.group = cfg.group
        self.dedup = cfg.dedup
        self.dedup_days = cfg.dedup_days

    def app_id(self, topic: str, partition: int) -> str:
        return f"{self.group}/{topic}/{partition}"

    def open(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, storage_options=self.options)
        except TableNotFoundError:
            return None

    def written_up_to(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The last offset of each partition that a commit of this group already carries."""
        dt = self.open()
        if dt is None:
            return {}
        out = {}
        for p in partitions:
            v = dt.transaction_version(self.app_id(topic, p))
            if v is not None:
                out[p] = v
        return out

    def append(self, data: pa.Table, last_offsets: dict[tuple[str, int], int]) -> int:
        """Append the batch (one row per event_id) in one commit with its app transactions; returns the rows written
        (with event_id dedup: those whose event_id the table did not have yet)."""
        txns = [Transaction(app_id=self.app_id(t, p), version=o) for (t, p), o in sorted(last_offsets.items())]
        props = CommitProperties(app_transactions=txns)
        table = self.open() if self.dedup == "event_id" else None
        if table is None:
            write_deltalake(
                self.uri,
                data,
                mode="append",
                partition_by=["event_date"],
                storage_options=self.options,
                commit_properties=props,
            )
            return data.num_rows
        dates = {
            d - dt.timedelta(days=k)
            for d in set(data.column("event_date").to_pylist())
            for k in range(self.dedup_days + 1)
        }
        window = ", ".join(f"'{d.isoformat()}'" for d in sorted(dates))
        for attempt in range(MERGE_ATTEMPTS):
            try:
                metrics = (
                    table.merge(
                        source=data,
                        predicate=f"t.event_date IN ({window}) AND t.event_id = s.event_id",
                        source_alias="s",
                        target_alias="t",
                        commit_properties=props,
                    )
                    .when_not_matched_insert_all()
                    .execute()
                )
                return int(metrics.get("num_target_rows_inserted", data.num_rows))
            except CommitFailedError:
                # Another writer committed rows into the same partitions meanwhile: merge again against them.
                if attempt == MERGE_ATTEMPTS - 1:
                    raise
                table = self.open()
        raise AssertionError("unreachable")
