"""The API's settings, from API_* environment variables (see the role analytics_api for every one)."""

from __future__ import annotations

import json

from analytics_common.config import Setting, choice, cidr_list, csv_list, existing_file, integer, load, number
from analytics_common.kafka import kafka_settings

PREFIX = "API_"
LIMIT_FIELDS = ("limit", "window_seconds", "burst")


def key_limits(raw: str) -> dict[str, tuple[int, float, int]]:
    """API_KEY_RATE_LIMITS: {"<key name>": {"limit": N, "window_seconds": S, "burst": B}}, the keys whose rate limit
    is not the default one (a load test's key, a partner's batch uploader)."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError('must be a JSON object {"<key name>": {"limit": N, "window_seconds": S, "burst": B}}')
    limits = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or sorted(entry) != sorted(LIMIT_FIELDS):
            raise ValueError(f"key '{name}' needs exactly {', '.join(LIMIT_FIELDS)}")
        values = [entry[f] for f in LIMIT_FIELDS]
        if any(isinstance(v, bool) or not isinstance(v, int | float) or v <= 0 for v in values):
            raise ValueError(f"key '{name}': {', '.join(LIMIT_FIELDS)} must be positive numbers")
        limits[str(name)] = (int(values[0]), float(values[1]), int(values[2]))
    return limits


def settings() -> list[Setting]:
    return [
        *kafka_settings(PREFIX),
        Setting("API_KEYS_FILE", existing_file, required=True),
        Setting("API_HOST", default="127.0.0.1"),
        Setting("API_PORT", integer(1, 65535), default=3001),
        Setting("API_CORS_ORIGINS", csv_list, default=[]),
        Setting("API_RATE_LIMIT", integer(1), default=1000),
        Setting("API_RATE_WINDOW_SECONDS", number(1), default=900.0),
        Setting("API_RATE_BURST", integer(1), default=100),
        Setting("API_KEY_RATE_LIMITS", key_limits, default={}),
        Setting("API_MAX_BODY_BYTES", integer(256), default=1024 * 1024),
        Setting("API_MAX_BATCH", integer(1, 10000), default=500),
        Setting("API_TRUSTED_PROXIES", cidr_list, default=["127.0.0.1/32"]),
        # What a request without consent (Sec-GPC: 1 or DNT: 1) gets: its events stored without identifiers
        # (anonymize), not stored at all (drop), or stored as sent (ignore: consent handled elsewhere).
        Setting("API_CONSENT_MODE", choice("anonymize", "drop", "ignore"), default="anonymize"),
        Setting("API_TRANSACTIONAL_ID_PREFIX", default="analytics-api"),
        Setting("API_KAFKA_TIMEOUT_SECONDS", number(0.5), default=5.0),
        Setting("API_TLS_CERT_FILE", existing_file),
        Setting("API_TLS_KEY_FILE", existing_file),
        Setting("API_LOG_LEVEL", default="info"),
    ]


def load_config(environ=None):
    cfg = load(settings(), PREFIX, environ)
    if bool(cfg.tls_cert_file) != bool(cfg.tls_key_file):
        from analytics_common.config import ConfigError

        raise ConfigError("API_TLS_CERT_FILE and API_TLS_KEY_FILE must be set together")
    return cfg
