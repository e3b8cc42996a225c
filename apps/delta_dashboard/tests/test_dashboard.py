"""The dashboard against a real Delta table on SeaweedFS, read with the read-only identity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from analytics_common.events import EventRecord
from delta_dashboard.app import create_app
from delta_dashboard.config import load_config
from deltalake import write_deltalake
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def table(seaweedfs):
    """A table written as the writer writes it: 3 types over the last hours."""
    from delta_writer.config import load_config as writer_config
    from delta_writer.table import EventTable, to_arrow

    access, secret = seaweedfs.identities["delta-writer"]
    uri = f"s3://analytics/delta/dashboard-{uuid.uuid4().hex[:8]}"
    cfg = writer_config(
        {
            "DELTA_KAFKA_BOOTSTRAP": "unused:1",
            "DELTA_KAFKA_USERNAME": "u",
            "DELTA_KAFKA_PASSWORD": "p",
            "DELTA_KAFKA_CA_FILE": str(seaweedfs.pki["ca"]),
            "DELTA_TABLE_URI": uri,
            "DELTA_S3_ENDPOINT": seaweedfs.endpoint,
            "DELTA_S3_ACCESS_KEY": access,
            "DELTA_S3_SECRET_KEY": secret,
            "DELTA_S3_CA_FILE": str(seaweedfs.pki["ca"]),
        }
    )
    now = datetime.now(UTC)
    plan = {"page_view": [30, 20, 10], "click": [5, 5, 5], "purchase": [0, 2, 1]}  # per hour: 2h ago, 1h ago, now
    table = EventTable(cfg)
    for hour_index in range(3):
        recs = []
        for etype, per_hour in plan.items():
            ts = now - timedelta(hours=2 - hour_index)
            recs += [
                EventRecord(event_id=uuid.uuid4(), event_type=etype, timestamp=ts, received_at=ts).stored()
                for _n in range(per_hour[hour_index])
            ]
        table.append(to_arrow(recs), {("analytics-events", 0): hour_index})
    return uri, plan


@pytest.fixture
def client(seaweedfs, table):
    access, secret = seaweedfs.identities["delta-dashboard"]
    cfg = load_config(
        {
            "DASH_TABLE_URI": table[0],
            "DASH_S3_ENDPOINT": seaweedfs.endpoint,
            "DASH_S3_ACCESS_KEY": access,
            "DASH_S3_SECRET_KEY": secret,
            "DASH_S3_CA_FILE": str(seaweedfs.pki["ca"]),
            "DASH_HOURS": "6",
            "DASH_CACHE_SECONDS": "0",
        }
    )
    with TestClient(create_app(cfg)) as c:
        yield c


def test_summary_counts_per_type_and_hour(client, table):
    _unused, plan = table
    body = client.get("/api/summary").json()
    assert body["totals"] == {k: sum(v) for k, v in sorted(plan.items(), key=lambda kv: -sum(kv[1]))}
    assert body["total"] == sum(sum(v) for v in plan.values())
    assert body["counts"]["page_view"][-3:] == [30, 20, 10]
    assert body["version"] == 2
    assert [h["operation"] for h in body["history"]][:3] == ["MERGE", "MERGE", "WRITE"]  # the writer's event_id dedup
    assert body["history"][0]["rows"] == 16


def test_page_renders_charts(client):
    r = client.get("/")
    assert r.status_code == 200
    html = r.text
    assert html.count("<svg") == 3
    assert "page_view" in html and "purchase" in html
    assert "<script" not in html  # no JavaScript, nothing fetched from elsewhere
    assert r.headers["content-security-policy"].startswith("default-src 'none'")


def test_health_ready_metrics(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200
    client.get("/")
    assert 'dashboard_requests_total{path="/",status="200"}' in client.get("/metrics").text


def test_the_dashboard_identity_cannot_write(seaweedfs, table):
    access, secret = seaweedfs.identities["delta-dashboard"]
    opts = {
        "AWS_ENDPOINT_URL": seaweedfs.endpoint,
        "AWS_ACCESS_KEY_ID": access,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "AWS_S3_ADDRESSING_STYLE": "path",
        "conditional_put": "etag",
    }
    from delta_writer.table import to_arrow

    now = datetime.now(UTC)
    row = to_arrow([EventRecord(event_id=uuid.uuid4(), event_type="x", timestamp=now, received_at=now).stored()])
    with pytest.raises(Exception, match=r"(?i)access denied|forbidden|403"):
        write_deltalake(table[0], row, mode="append", storage_options=opts)


def test_store_down_is_a_503_page_not_a_crash(seaweedfs, table):
    access, secret = seaweedfs.identities["delta-dashboard"]
    cfg = load_config(
        {
            "DASH_TABLE_URI": table[0],
            "DASH_S3_ENDPOINT": "https://127.0.0.1:9",
            "DASH_S3_ACCESS_KEY": access,
            "DASH_S3_SECRET_KEY": secret,
            "DASH_CACHE_SECONDS": "0",
        }
    )
    with TestClient(create_app(cfg)) as c:
        assert c.get("/").status_code == 503
        assert c.get("/api/summary").status_code == 503
        assert c.get("/health").status_code == 200
