# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Where the platform keeps personal data, for how long, and who can read it: the record of processing activities
(the guide's "Document data processing activities"), derived from the inventory by the privacy_record filter.

Each setting names the inventory variable that decides it and the owning role's default (used when the inventory does
not set it); tests/unit/plugins/test_privacy.py checks that every default here is the owning role's default."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

EVENT_FIELDS = (
    "user_id, session_id, page and properties (free-form: whatever clients send), the client address and user agent"
    " (metadata), event and receive times"
)


@dataclass(frozen=True)
class Setting:
    var: str
    default: object
    role: str


SETTINGS = {
    s.var: s
    for s in (
        Setting("kafka_topics", None, "kafka"),  # a list of topics: its default is checked by the test as a whole
        Setting("kafka_clients", None, "kafka"),
        Setting("kafka_admin_user", "admin", "kafka"),
        Setting("postgresql_database", "analytics", "postgresql"),
        Setting("postgresql_retention", "90 days", "postgresql"),
        Setting("postgresql_anonymize_after", "30 days", "postgresql"),
        Setting("postgresql_sink_user", "analytics_sink", "postgresql"),
        Setting("postgresql_reader_user", "analytics_reader", "postgresql"),
        Setting("postgresql_backup_enabled", True, "postgresql"),
        Setting("postgresql_backup_retention_days", 30, "postgresql"),
        Setting("postgresql_backup_repo_path", "/var/lib/pgbackrest", "postgresql"),
        Setting("postgresql_backup_s3_endpoint", "", "postgresql"),
        Setting("postgresql_backup_s3_bucket", "pgbackrest", "postgresql"),
        Setting("delta_writer_table_uri", "s3://analytics/delta/analytics-events", "delta_writer"),
        Setting("delta_writer_retention_days", 90, "delta_writer"),
        Setting("delta_writer_anonymize_after_days", 30, "delta_writer"),
        Setting("delta_writer_vacuum_retention_hours", 168, "delta_writer"),
        Setting("delta_writer_noncurrent_version_hours", 168, "delta_writer"),
        Setting("seaweedfs_s3_identities", None, "seaweedfs"),
        Setting("monitoring_logs_enabled", True, "monitoring"),
        Setting("monitoring_log_retention_days", 30, "monitoring"),
        Setting("monitoring_log_dir", "/var/log/platform", "monitoring"),
    )
}

# The Kafka topics and their retention when the inventory sets no kafka_topics (the kafka role's default).
DEFAULT_TOPIC_RETENTION_MS = {"analytics-events": 604800000, "analytics-events-dlq": 2592000000}
# The services' Kafka users that read the events topic when the inventory sets no kafka_clients.
DEFAULT_TOPIC_READERS = {"analytics-events": ["pg-sink", "delta-writer", "bento"], "analytics-events-dlq": []}
# The object store's identities that may read the data bucket when the inventory sets no seaweedfs_s3_identities.
DEFAULT_BUCKET_READERS = ["admin", "delta-writer", "delta-dashboard", "backup"]


def value(host_vars, var):
    """The variable as the host's inventory sets it, else the owning role's default."""
    v = (host_vars or {}).get(var)
    return SETTINGS[var].default if v is None else v


def duration_ms(ms) -> str:
    hours = int(ms) / 3_600_000
    if hours >= 24 and hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def topic_retention(host_vars, topic) -> str:
    topics = (host_vars or {}).get("kafka_topics")
    if topics is None:
        ms = DEFAULT_TOPIC_RETENTION_MS.get(topic)
    else:
        entry = next((t for t in topics if t.get("name") == topic), None)
        ms = ((entry or {}).get("config") or {}).get("retention.ms")
    if ms is None:
        return "Kafka's broker default (kafka_log_retention_hours)"
    return duration_ms(ms)


def topic_readers(host_vars, topic) -> list[str]:
    clients = (host_vars or {}).get("kafka_clients")
    readers = (
        list(DEFAULT_TOPIC_READERS.get(topic, []))
        if clients is None
        else [c["name"] for c in clients if topic in (c.get("consume") or [])]
    )
    return [*readers, f"{value(host_vars, 'kafka_admin_user')} (Kafka's super user)"]


def bucket_readers(host_vars, bucket) -> list[str]:
    identities = (host_vars or {}).get("seaweedfs_s3_identities")
    if identities is None:
        return list(DEFAULT_BUCKET_READERS)
    out = []
    for ident in identities:
        actions = [str(a) for a in ident.get("actions") or []]
        if "Admin" in actions or "Read" in actions or f"Read:{bucket}" in actions:
            out.append(ident.get("name") or ident.get("access_key"))
    return out


def subject_digest(key: str, by: str, subject: str) -> str:
    """What the platform keeps of an erased data subject: HMAC-SHA256 of "<by>:<id>" under the environment's
    privacy_erasure_key (hex). Without the key it cannot be reversed or tested against guessed ids."""
    return hmac.new(key.encode("utf-8"), f"{by}:{subject}".encode(), hashlib.sha256).hexdigest()
