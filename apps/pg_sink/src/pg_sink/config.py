"""The sink's settings, from PGSINK_* environment variables."""

from __future__ import annotations

from analytics_common.config import Setting, existing_file, integer, load, number
from analytics_common.consumer import lag_settings
from analytics_common.health import check_metrics_tls, metrics_settings
from analytics_common.kafka import kafka_settings

PREFIX = "PGSINK_"


def settings() -> list[Setting]:
    return [
        *kafka_settings(PREFIX),
        Setting("PGSINK_GROUP", default="pg-sink"),
        *lag_settings("PGSINK_", "pg-sink"),
        Setting("PGSINK_DLQ_TOPIC", default="analytics-events-dlq"),
        Setting("PGSINK_PG_HOST", required=True),
        Setting("PGSINK_PG_PORT", integer(1, 65535), default=5432),
        Setting("PGSINK_PG_DBNAME", default="analytics"),
        Setting("PGSINK_PG_USER", default="analytics_sink"),
        Setting("PGSINK_PG_PASSWORD", required=True, secret=True),
        Setting("PGSINK_PG_CA_FILE", existing_file, required=True),
        Setting("PGSINK_BATCH_SIZE", integer(1, 100_000), default=5000),
        Setting("PGSINK_BATCH_SECONDS", number(0.05), default=1.0),
        *metrics_settings("PGSINK_", 9101),
        Setting("PGSINK_LOG_LEVEL", default="info"),
    ]


def load_config(environ=None):
    cfg = load(settings(), PREFIX, environ)
    check_metrics_tls(cfg, PREFIX)
    return cfg
