"""The ingest API's behaviour, with a fake producer: authentication, validation, limits, CORS, errors."""

from __future__ import annotations

import json
import uuid

import pytest

KEY = "test-key-0123456789abcdefghijkl"  # the keys fixture's web key (see conftest.py)
OTHER_KEY = "rotated-key-0123456789abcdefghij"
H = {"x-api-key": KEY, "content-type": "application/json"}


def test_the_keys_used_here_are_the_configured_ones(keys):
    assert (keys.web, keys.web_next) == (KEY, OTHER_KEY)


def event(**kw):
    return {"event_type": "page_view", "session_id": "session-123", "properties": {"path": "/"}, **kw}


def test_accepts_an_event_and_assigns_an_id(api):
    r = api.client.post("/analytics", json=event(), headers=H)
    assert r.status_code == 202
    body = r.json()
    assert uuid.UUID(body["event_id"])
    (sent,) = api.producer.sent
    assert str(sent.event_id) == body["event_id"]
    assert sent.metadata["api_key"] == "web"
    assert sent.metadata["ip_address"] == "testclient"


def test_keeps_a_client_event_id(api):
    eid = str(uuid.uuid4())
    r = api.client.post("/analytics", json=event(event_id=eid), headers=H)
    assert r.status_code == 202 and r.json()["event_id"] == eid


def test_rotation_keys_both_work(api):
    assert api.client.post("/analytics", json=event(), headers=dict(H, **{"x-api-key": OTHER_KEY})).status_code == 202
    assert api.producer.sent[-1].metadata["api_key"] == "web-next"


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong-key-0123456789abcdefghijkl"}, {"x-api-key": ""}])
def test_missing_or_wrong_key_is_401(api, headers):
    r = api.client.post("/analytics", json=event(), headers=headers)
    assert r.status_code == 401
    assert r.json() == {"error": "missing or invalid API key"}
    assert api.producer.sent == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"session_id": "s"}, "event_type"),
        (event(event_type=42), "event_type"),
        (event(event_type="Bad Type!"), "event_type"),
        (event(event_id="not-a-uuid"), "event_id"),
        (event(timestamp="yesterday-ish"), "timestamp"),
        (event(timestamp="2001-01-01T00:00:00Z"), "timestamp"),
        (event(properties=[1, 2]), "properties"),
        (event(properties={"x": "y" * 20000}), "properties"),
        (event(unexpected="field"), "unexpected"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(api, body, field):
    r = api.client.post("/analytics", json=body, headers=H)
    assert r.status_code == 422
    assert r.json()["field"] == field
    assert f"'{field}'" in r.json()["error"]
    assert api.producer.sent == []


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b"\xff\xfe\xfa", b"", b"[]", b"null", b'"string"', b"123", b'{"event_type": "a",}'],
)
def test_malformed_bodies_are_4xx_never_5xx(api, raw):
    r = api.client.post("/analytics", content=raw, headers=H)
    assert 400 <= r.status_code < 500, r.text
    assert "error" in r.json()


def test_invalid_utf8_is_named(api):
    r = api.client.post("/analytics", content=b'{"event_type": "\xff"}', headers=H)
    assert r.status_code == 400 and r.json()["error"] == "request body is not valid UTF-8"


def test_oversized_body_is_413_by_header_and_by_stream(api):
    big = json.dumps(event(properties={"x": "y" * 70000})).encode()
    assert api.client.post("/analytics", content=big, headers=H).status_code == 413

    def chunks():
        yield big[:30000]
        yield big[30000:]

    r = api.client.post("/analytics", content=chunks(), headers=H)  # no Content-Length: chunked
    assert r.status_code == 413


def test_batch_is_accepted_whole(api):
    r = api.client.post("/analytics/batch", json={"events": [event(), event(event_type="click")]}, headers=H)
    assert r.status_code == 202 and r.json()["count"] == 2
    assert len(api.producer.sent) == 2


def test_batch_with_one_bad_event_writes_nothing(api):
    r = api.client.post("/analytics/batch", json={"events": [event(), event(event_type=None)]}, headers=H)
    assert r.status_code == 422
    assert r.json()["field"] == "events.1.event_type"
    assert api.producer.sent == []


@pytest.mark.parametrize(
    ("body", "status"),
    [({"events": []}, 422), ({"events": "x"}, 422), ([], 422), ({"events": [1]}, 422)],
)
def test_batch_shape_errors(api, body, status):
    assert api.client.post("/analytics/batch", json=body, headers=H).status_code == status


def test_huge_batch_is_413(api):
    r = api.client.post("/analytics/batch", json={"events": [event() for _n in range(101)]}, headers=H)
    assert r.status_code == 413 and "exceeds the limit of 100" in r.json()["error"]


def test_duplicate_ids_in_a_batch_are_refused(api):
    eid = str(uuid.uuid4())
    r = api.client.post("/analytics/batch", json={"events": [event(event_id=eid), event(event_id=eid)]}, headers=H)
    assert r.status_code == 422


def test_rate_limit_is_429_with_retry_after(make_client):
    made = make_client(API_RATE_LIMIT=5, API_RATE_WINDOW_SECONDS=60, API_RATE_BURST=3)
    with made.client as c:
        codes = [c.post("/analytics", json=event(), headers=H).status_code for _n in range(5)]
        assert codes[:3] == [202, 202, 202]
        r = c.post("/analytics", json=event(), headers=H)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        # Another key is limited separately.
        assert c.post("/analytics", json=event(), headers=dict(H, **{"x-api-key": OTHER_KEY})).status_code == 202


def test_a_key_whose_limit_is_raised_gets_its_own_limit_and_the_others_keep_the_default(make_client):
    raised = {"web-next": {"limit": 30, "window_seconds": 60, "burst": 20}}
    made = make_client(
        API_RATE_LIMIT=5, API_RATE_WINDOW_SECONDS=60, API_RATE_BURST=2, API_KEY_RATE_LIMITS=json.dumps(raised)
    )
    other = dict(H, **{"x-api-key": OTHER_KEY})
    with made.client as c:
        assert [c.post("/analytics", json=event(), headers=H).status_code for _n in range(3)] == [202, 202, 429]
        codes = [c.post("/analytics", json=event(), headers=other).status_code for _n in range(21)]
        assert codes[:20] == [202] * 20 and codes[20] == 429


def test_cors_allow_list(api):
    ok = api.client.options(
        "/analytics",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    foreign = api.client.post("/analytics", json=event(), headers=dict(H, Origin="https://evil.example"))
    assert "access-control-allow-origin" not in foreign.headers
    pre = api.client.options(
        "/analytics", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert pre.headers.get("access-control-allow-origin") != "https://evil.example"


def test_kafka_down_is_503_and_not_ready(api):
    api.producer.fail = True
    r = api.client.post("/analytics", json=event(), headers=H)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert api.client.get("/ready").status_code == 503
    assert api.client.get("/health").status_code == 200


def test_metrics_count_requests_by_status(api):
    api.client.post("/analytics", json=event(), headers=H)
    api.client.post("/analytics", json=event(), headers={})
    text = api.client.get("/metrics").text
    assert 'http_requests_total{method="POST",path="/analytics",status="202"}' in text
    assert 'http_requests_total{method="POST",path="/analytics",status="401"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert "kafka_producer_queue_depth" in text


def test_the_ingest_routes_answer_as_the_rest_of_the_api(api, caplog):
    """The ingest routes are plain ASGI (IngestRoutes): still inside CORS and the metrics, other methods get 405,
    and a bug is a logged 500 without details, counted and not cached."""
    ok = api.client.post("/analytics", json=event(), headers=dict(H, Origin="https://app.example.com"))
    assert ok.status_code == 202 and ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert ok.headers["content-type"] == "application/json" and ok.headers["cache-control"] == "no-store"
    for path in ("/analytics", "/analytics/batch"):
        r = api.client.get(path, headers=H)
        assert (r.status_code, r.headers["allow"], r.json()) == (405, "POST", {"error": "method not allowed"})

    async def broken(records):
        raise KeyError("a bug, with a detail that must not leak")

    api.producer.send_batch = broken
    r = api.client.post("/analytics/batch", json={"events": [event()]}, headers=H)
    assert (r.status_code, r.json()) == (500, {"error": "internal error"})
    assert "must not leak" not in r.text and r.headers["cache-control"] == "no-store"
    assert any(rec.getMessage() == "unhandled error" and rec.exc_info for rec in caplog.records)
    text = api.client.get("/metrics").text
    assert 'http_requests_total{method="POST",path="/analytics/batch",status="500"}' in text
    assert 'http_requests_total{method="GET",path="/analytics",status="405"}' in text


def test_client_address_comes_from_a_trusted_proxy_only(api_env, fake_producer):
    from analytics_api.app import create_app
    from analytics_api.config import load_config
    from analytics_api.keys import KeyStore
    from fastapi.testclient import TestClient

    def sent_ip(trusted, peer):
        cfg = load_config({**api_env, "API_TRUSTED_PROXIES": trusted})
        producer = fake_producer
        with TestClient(create_app(cfg, KeyStore.from_file(cfg.keys_file), producer), client=(peer, 40000)) as c:
            c.post("/analytics", json=event(), headers=dict(H, **{"x-real-ip": "203.0.113.9"}))
        return producer.sent[-1].metadata["ip_address"]

    assert sent_ip("10.0.0.0/8", "10.1.2.3") == "203.0.113.9"  # nginx in the trusted range: its X-Real-IP counts
    assert sent_ip("10.0.0.0/8", "192.0.2.7") == "192.0.2.7"  # anyone else cannot claim an address


# --- the event contract: everything answered 202 is storable; anything else is a 4xx naming the field ---------------
def nested(depth, leaf=1):
    v = leaf
    for _n in range(depth):
        v = {"n": v}
    return v


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        (event(session_id="a\u0000b"), "session_id", "NUL"),
        (event(user_id="\u0000"), "user_id", "NUL"),
        (event(page="/p\u0000"), "page", "NUL"),
        (event(properties={"k": "v\u0000"}), "properties.k", "NUL"),
        (event(properties={"k": ["ok", {"deep": "\u0000"}]}), "properties.k.1.deep", "NUL"),
        (event(properties={"a\u0000b": 1}), "properties", "a key contains a NUL"),
        (event(properties={"k": 2**64}), "properties.k", "64-bit"),
        (event(properties={"k": -(2**63) - 1}), "properties.k", "64-bit"),
        (event(properties=nested(17)), "properties" + ".n" * 16, "nested deeper than 16"),
        (event(properties=nested(250)), "properties" + ".n" * 16, "nested deeper than 16"),
    ],
)
def test_values_no_store_can_hold_are_422_naming_the_field(api, body, field, text):
    r = api.client.post("/analytics", json=body, headers=H)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert text in r.json()["error"]
    assert api.producer.sent == []


def test_contract_limits_are_inclusive(api):
    ok = event(properties={"deep": nested(15), "big": 2**63 - 1, "small": -(2**63), "f": 1.5e308, "u": "\U0001f600"})
    r = api.client.post("/analytics", json=ok, headers=H)
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b'{"event_type": "a", "properties": {"s": "\\ud800"}}', "unpaired surrogate"),  # escaped lone surrogate
        (b'{"event_type": "a", "properties": {"s": "\\udfff x"}}', "unpaired surrogate"),
        (b'{"event_type": "a", "properties": {"x": 1e400}}', "not finite"),  # parses as infinity
    ],
)
def test_json_that_parses_to_unstorable_values_is_422(api, raw, text):
    r = api.client.post("/analytics", content=raw, headers=H)
    assert r.status_code == 422, r.text
    assert text in r.json()["error"]


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b'{"event_type": "a", "properties": {"x": NaN}}', "NaN is not JSON"),
        (b'{"event_type": "a", "properties": {"x": -Infinity}}', "-Infinity is not JSON"),
        (b'{"event_type": "a", "properties": {"x": ' + b"9" * 5000 + b"}}", "malformed JSON"),
        (b'{"event_type": "a", "properties": ' + b'{"n": ' * 1200 + b"1" + b"}" * 1201, "nested too deep"),
        (b'{"event_type": "a", "properties": {"x": ' + b"[" * 30000 + b"]" * 30000 + b"}}", "nested too deep"),
    ],
)
def test_json_beyond_what_python_parses_is_400_never_5xx(api, raw, text):
    r = api.client.post("/analytics", content=raw, headers=H)
    assert r.status_code == 400, r.text
    assert text in r.json()["error"]


def test_batch_names_the_event_and_the_value(api):
    body = {"events": [event(), event(properties={"list": [1, "x\u0000"]})]}
    r = api.client.post("/analytics/batch", json=body, headers=H)
    assert r.status_code == 422
    assert r.json()["field"] == "events.1.properties.list.1"
    assert api.producer.sent == []


def test_user_agent_is_stored_without_control_characters(api):
    r = api.client.post("/analytics", json=event(), headers=dict(H, **{"user-agent": "agent\x01/1.0\x7f" + "x" * 600}))
    assert r.status_code == 202
    ua = api.producer.sent[-1].metadata["user_agent"]
    assert ua.startswith("agent/1.0x") and len(ua) <= 512


def test_events_without_a_session_are_keyed_by_event_id(api):
    r = api.client.post("/analytics", json=event(session_id=None), headers=H)
    assert r.status_code == 202
    rec = api.producer.sent[-1]
    assert api.producer.keys[-1] == str(rec.event_id).encode()  # a retried event lands in the same partition


def test_503_names_the_event_ids_to_retry_with(api):
    api.producer.fail = True
    one = api.client.post("/analytics", json=event(), headers=H)
    assert one.status_code == 503 and uuid.UUID(one.json()["event_id"])
    batch = api.client.post("/analytics/batch", json={"events": [event(), event()]}, headers=H)
    assert batch.status_code == 503 and len(batch.json()["event_ids"]) == 2


@pytest.mark.parametrize("signal", [{"sec-gpc": "1"}, {"dnt": "1"}])
def test_without_consent_the_events_are_stored_without_identifiers(api, signal):
    """Global Privacy Control or Do Not Track: no user_id, no session_id, no client address, no user agent (the
    default mode, anonymize); the event itself is kept and the metadata says consent was withheld."""
    one = api.client.post("/analytics", json=event(user_id="u-1"), headers={**H, **signal, "user-agent": "ua/1"})
    batch = api.client.post(
        "/analytics/batch", json={"events": [event(user_id="u-2"), event()]}, headers={**H, **signal}
    )
    assert (one.status_code, batch.status_code) == (202, 202)
    assert batch.json()["count"] == 2
    assert len(api.producer.sent) == 3
    for sent in api.producer.sent:
        assert (sent.user_id, sent.session_id) == (None, None)
        assert sent.metadata == {"api_key": "web", "consent": "withheld"}
        assert sent.properties == {"path": "/"} and sent.event_type == "page_view"
    # The partition key is the event itself now (no session to keep together).
    assert api.producer.keys == [str(s.event_id).encode() for s in api.producer.sent]


@pytest.mark.parametrize("signal", [{}, {"sec-gpc": "0"}, {"dnt": "0"}])
def test_with_consent_or_no_signal_the_events_are_stored_as_sent(api, signal):
    r = api.client.post("/analytics", json=event(user_id="u-1"), headers={**H, **signal})
    assert r.status_code == 202
    (sent,) = api.producer.sent
    assert (sent.user_id, sent.session_id) == ("u-1", "session-123")
    assert "ip_address" in sent.metadata and "consent" not in sent.metadata


def test_the_drop_mode_stores_nothing_and_says_so(make_client):
    made = make_client(API_CONSENT_MODE="drop")
    with made.client as client:
        one = client.post("/analytics", json=event(), headers={**H, "sec-gpc": "1"})
        batch = client.post("/analytics/batch", json={"events": [event(), event()]}, headers={**H, "dnt": "1"})
        bad = client.post("/analytics", json=event(event_type="Bad Type"), headers={**H, "sec-gpc": "1"})
        kept = client.post("/analytics", json=event(), headers=H)
    assert (one.status_code, one.json()["status"]) == (202, "dropped")
    assert (batch.status_code, batch.json()["status"], batch.json()["count"]) == (202, "dropped", 2)
    assert bad.status_code == 422  # validated as any other request
    assert kept.status_code == 202
    assert [str(s.event_id) for s in made.producer.sent] == [kept.json()["event_id"]]


def test_the_ignore_mode_stores_events_as_sent(make_client):
    made = make_client(API_CONSENT_MODE="ignore")
    with made.client as client:
        assert client.post("/analytics", json=event(user_id="u"), headers={**H, "sec-gpc": "1"}).status_code == 202
    (sent,) = made.producer.sent
    assert (sent.user_id, sent.session_id) == ("u", "session-123") and "consent" not in sent.metadata
