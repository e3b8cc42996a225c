"""The dashboard's settings, from DASH_* environment variables. It reads the table with a read-only S3 identity."""

from __future__ import annotations

from analytics_common.config import ConfigError, Setting, existing_file, integer, load, number

PREFIX = "DASH_"


def settings() -> list[Setting]:
    return [
        Setting("DASH_TABLE_URI", required=True),
        Setting("DASH_S3_ENDPOINT", required=True),
        Setting("DASH_S3_ACCESS_KEY", required=True),
        Setting("DASH_S3_SECRET_KEY", required=True, secret=True),
        Setting("DASH_S3_REGION", default="us-east-1"),
        Setting("DASH_S3_CA_FILE", existing_file),
        Setting("DASH_HOST", default="127.0.0.1"),
        Setting("DASH_PORT", integer(1, 65535), default=8501),
        Setting("DASH_HOURS", integer(1, 24 * 90), default=48),
        Setting("DASH_CACHE_SECONDS", number(0), default=30.0),
        Setting("DASH_TLS_CERT_FILE", existing_file),
        Setting("DASH_TLS_KEY_FILE", existing_file),
        Setting("DASH_LOG_LEVEL", default="info"),
    ]


def load_config(environ=None):
    cfg = load(settings(), PREFIX, environ)
    if not cfg.table_uri.startswith("s3://"):
        raise ConfigError(f"DASH_TABLE_URI must be an s3:// URI (got {cfg.table_uri!r})")
    if not cfg.s3_endpoint.startswith("https://"):
        raise ConfigError("DASH_S3_ENDPOINT must be https:// (the object store is only reached over TLS)")
    if bool(cfg.tls_cert_file) != bool(cfg.tls_key_file):
        raise ConfigError("DASH_TLS_CERT_FILE and DASH_TLS_KEY_FILE must be set together")
    return cfg
