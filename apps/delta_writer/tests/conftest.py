from __future__ import annotations

import pytest


@pytest.fixture
def delta_env(kafka, seaweedfs, tmp_path):
    access, secret = seaweedfs.identities["delta-writer"]
    return {
        **kafka.env("DELTA_", "delta-writer"),
        "DELTA_TABLE_URI": f"s3://analytics/delta/{tmp_path.name}",
        "DELTA_S3_ENDPOINT": seaweedfs.endpoint,
        "DELTA_S3_ACCESS_KEY": access,
        "DELTA_S3_SECRET_KEY": secret,
        "DELTA_S3_CA_FILE": str(seaweedfs.pki["ca"]),
        "DELTA_BATCH_ROWS": "500",
        "DELTA_BATCH_SECONDS": "1",
        "DELTA_METRICS_PORT": "0",
    }
