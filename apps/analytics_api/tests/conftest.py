from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from analytics_api.app import create_app
from analytics_api.config import load_config
from analytics_api.keys import KeyStore, hash_key
from analytics_api.producer import KafkaUnavailable
from analytics_common.events import EventRecord

KEY = "test-key-0123456789abcdefghijkl"
OTHER_KEY = "rotated-key-0123456789abcdefghij"


@pytest.fixture(scope="session")
def keys():
    """The API keys the tests present: `keys.web` and `keys.web_next` (both valid, for rotation)."""
    return SimpleNamespace(web=KEY, web_next=OTHER_KEY)


class FakeProducer:
    """Stands in for Kafka in the unit tests (the integration tests use a real broker). `sent` holds what a consumer
    would read: each record's value parsed as an EventRecord (so the produced bytes are checked too); `keys` the
    records' partition keys."""

    def __init__(self):
        self.sent, self.keys, self.fail = [], [], False

    def _keep(self, record):
        self.sent.append(EventRecord.model_validate_json(record.value))
        self.keys.append(record.key)

    async def start(self):
        pass

    async def stop(self):
        pass

    async def ready(self):
        return not self.fail

    async def send_one(self, record):
        if self.fail:
            raise KafkaUnavailable("down")
        self._keep(record)

    async def send_batch(self, records):
        if self.fail:
            raise KafkaUnavailable("down")
        for r in records:
            self._keep(r)


@pytest.fixture
def fake_producer():
    return FakeProducer()


@pytest.fixture
def keys_file(tmp_path):
    p = tmp_path / "keys.json"
    p.write_text(json.dumps({"web": hash_key(KEY), "web-next": hash_key(OTHER_KEY)}))
    return p


@pytest.fixture
def api_env(keys_file, tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("not used by the fake producer")
    return {
        "API_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "API_KAFKA_USERNAME": "analytics-api",
        "API_KAFKA_PASSWORD": "secret",
        "API_KAFKA_CA_FILE": str(ca),
        "API_KEYS_FILE": str(keys_file),
        "API_CORS_ORIGINS": "https://app.example.com",
        "API_RATE_LIMIT": "1000",
        "API_RATE_BURST": "50",
        "API_MAX_BODY_BYTES": "65536",
        "API_MAX_BATCH": "100",
    }


@pytest.fixture
def make_client(api_env):
    from fastapi.testclient import TestClient

    def make(**overrides):
        cfg = load_config({**api_env, **{k: str(v) for k, v in overrides.items()}})
        producer = FakeProducer()
        app = create_app(cfg, KeyStore.from_file(cfg.keys_file), producer)
        client = TestClient(app, raise_server_exceptions=False)
        return SimpleNamespace(client=client, producer=producer, cfg=cfg)

    return make


@pytest.fixture
def api(make_client):
    made = make_client()
    with made.client:
        yield made
