"""Kafka connection settings shared by the services (SASL_SSL with SCRAM-SHA-512 and the platform's CA)."""

from __future__ import annotations

from analytics_common.config import Setting, csv_list, existing_file


def kafka_settings(prefix: str) -> list[Setting]:
    return [
        Setting(f"{prefix}KAFKA_BOOTSTRAP", csv_list, required=True, attr="kafka_bootstrap"),
        Setting(f"{prefix}KAFKA_USERNAME", required=True, attr="kafka_username"),
        Setting(f"{prefix}KAFKA_PASSWORD", required=True, secret=True, attr="kafka_password"),
        Setting(f"{prefix}KAFKA_CA_FILE", existing_file, required=True, attr="kafka_ca_file"),
        Setting(f"{prefix}KAFKA_TOPIC", default="analytics-events", attr="kafka_topic"),
    ]


def librdkafka_conf(cfg) -> dict:
    """confluent-kafka (librdkafka) client configuration."""
    return {
        "bootstrap.servers": ",".join(cfg.kafka_bootstrap),
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": cfg.kafka_username,
        "sasl.password": cfg.kafka_password,
        "ssl.ca.location": str(cfg.kafka_ca_file),
        "ssl.endpoint.identification.algorithm": "https",
    }
