"""Tests of the collection's probes against real servers started by the services' fixtures (analytics_testing:
PostgreSQL with TLS and SCRAM, Kafka with SASL_SSL, SeaweedFS with S3 over TLS). scripts/test-apps.sh runs them with
the tool chain's Python after the services' own tests."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT / "collections", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.unit.modules.conftest import run_module  # noqa: E402 - the fixture, shared with the unit tests

__all__ = ["run_module", "s3_login"]


def s3_login(store) -> dict:
    """The S3 modules' connection options for the store's admin identity (TLS verified with the test CA)."""
    access, secret = store.identities["admin"]
    return {"endpoint": store.endpoint, "access_key": access, "secret_key": secret, "ca_path": str(store.pki["ca"])}
