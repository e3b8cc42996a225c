"""The writer's settings, from DELTA_* environment variables."""

from __future__ import annotations

from analytics_common.config import ConfigError, Setting, choice, existing_file, integer, load, number
from analytics_common.consumer import lag_settings
from analytics_common.health import check_metrics_tls, metrics_settings
from analytics_common.kafka import kafka_settings

PREFIX = "DELTA_"


def settings() -> list[Setting]:
    return [
        *kafka_settings(PREFIX),
        Setting("DELTA_GROUP", default="delta-writer"),
        *lag_settings("DELTA_", "delta-writer"),
        Setting("DELTA_DLQ_TOPIC", default="analytics-events-dlq"),
        Setting("DELTA_TABLE_URI", required=True),
        Setting("DELTA_S3_ENDPOINT", required=True),
        Setting("DELTA_S3_ACCESS_KEY", required=True),
        Setting("DELTA_S3_SECRET_KEY", required=True, secret=True),
        Setting("DELTA_S3_REGION", default="us-east-1"),
        Setting("DELTA_S3_CA_FILE", existing_file),
        Setting("DELTA_BATCH_ROWS", integer(1, 5_000_000), default=50_000),
        # event_id: exactly once per event_id (a client's retried POST too), by merging the batch into the partitions
        # of its dates and of DELTA_DEDUP_DAYS before them. offsets: exactly once per Kafka record only (cheaper).
        Setting("DELTA_DEDUP", choice("offsets", "event_id"), default="event_id"),
        Setting("DELTA_DEDUP_DAYS", integer(0, 90), default=1),
        Setting("DELTA_BATCH_SECONDS", number(0.1), default=60.0),
        Setting("DELTA_VACUUM_RETENTION_HOURS", integer(0), default=168),
        # In a versioned bucket a file vacuum removed stays as a noncurrent version: removed for good after this.
        Setting("DELTA_NONCURRENT_VERSION_HOURS", integer(0), default=168),
        # The data lifecycle, as PostgreSQL's (postgresql_retention, postgresql_anonymize_after): rows of days older
        # than the retention are deleted, client addresses of days older than ANONYMIZE_AFTER lose their last part.
        Setting("DELTA_RETENTION_DAYS", integer(1, 36500), default=90),
        Setting("DELTA_ANONYMIZE_AFTER_DAYS", integer(1, 36500), default=30),
        *metrics_settings("DELTA_", 9102),
        Setting("DELTA_LOG_LEVEL", default="info"),
    ]


def load_config(environ=None):
    cfg = load(settings(), PREFIX, environ)
    check_metrics_tls(cfg, PREFIX)
    if not cfg.table_uri.startswith("s3://"):
        raise ConfigError(f"DELTA_TABLE_URI must be an s3:// URI (got {cfg.table_uri!r})")
    if not cfg.s3_endpoint.startswith("https://"):
        raise ConfigError("DELTA_S3_ENDPOINT must be https:// (the object store is only reached over TLS)")
    return cfg
