# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The one definition of a strong secret, used by every role's preflight (the strong_secret test plugin)."""

from __future__ import annotations

MIN_LENGTH = 16

# Well-known defaults and weak values of the platform's components and of the guide's examples, compared without case.
KNOWN_WEAK = frozenset(
    {
        "admin",
        "admin123",
        "administrator",
        "analytics",
        "analytics123",
        "any",
        "changeit",
        "changeme",
        "changeme123",
        "default",
        "grafana",
        "kafka",
        "kafka123",
        "letmein",
        "minio",
        "minio123",
        "minioadmin",
        "password",
        "password123",
        "passwordpassword",
        "postgres",
        "qwerty",
        "root",
        "seaweedfs",
        "secret",
        "secretsecret",
        "sw2ycwtib9zpoohopsmm",  # Grafana's shipped secret_key
        "test",
        "12345678",
        "123456789",
        "1234567890",
        "1234567890123456",
    }
)


def weakness(value: object, min_length: int = MIN_LENGTH) -> str | None:
    """Why value is not a strong secret, or None when it is."""
    if not isinstance(value, str) or not value:
        return "missing"
    if len(value) < min_length:
        return f"shorter than {min_length} characters"
    if value.lower() in KNOWN_WEAK:
        return "a well-known default or weak value"
    if len(set(value)) == 1:
        return "one character repeated"
    return None
