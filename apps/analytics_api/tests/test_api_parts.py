"""The API's parts on their own, without the app around them: the body reader and JSON parser, the client address,
the guard (key, then rate limit), the error answers and the ingest's metadata."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from analytics_api.auth import ClientAddress, Guard
from analytics_api.body import parse_json, read_body
from analytics_api.ingest import Ingest
from analytics_api.keys import KeyStore, hash_key
from analytics_api.problems import HTTPProblem, unavailable, validation_problem
from analytics_api.ratelimit import RateLimiter
from analytics_common.events import (
    MAX_PROPERTIES_BYTES,
    ContractError,
    Event,
    EventRecord,
    Stamp,
    compact_json,
    json_larger_than,
    utcnow,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.requests import Request


def request(body: bytes = b"", headers: dict | None = None, peer: str = "192.0.2.7", chunks: int = 1) -> Request:
    """A Starlette request as the server hands it over, its body sent in `chunks` pieces."""
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    size = max(1, -(-len(body) // chunks))
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

    async def receive():
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/analytics", "headers": raw, "client": (peer, 40000)}
    return Request(scope, receive)


def problem(call) -> HTTPProblem:
    with pytest.raises(HTTPProblem) as e:
        asyncio.run(call) if asyncio.iscoroutine(call) else call()
    return e.value


def test_body_limit_holds_for_the_declared_length_and_for_the_stream():
    assert asyncio.run(read_body(request(b"x" * 10, {"content-length": "10"}), 10)) == b"x" * 10
    assert problem(read_body(request(b"x" * 11, {"content-length": "11"}), 10)).status == 413
    assert problem(read_body(request(b"x" * 11, chunks=3), 10)).status == 413  # no Content-Length: counted
    assert problem(read_body(request(b"{}", {"content-length": "two"}), 10)).error == "malformed Content-Length header"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"\xff", "request body is not valid UTF-8"),
        (b'{"a": NaN}', "malformed JSON: NaN is not JSON"),
        (b"[" * 100000 + b"]" * 100000, "malformed JSON: nested too deep"),
        (b'{"a": 1', "malformed JSON: Expecting ',' delimiter at line 1 column 8"),
        (
            b"1" * 5000,
            "malformed JSON: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits",
        ),
    ],
)
def test_json_parser_answers_400_naming_the_problem(raw, error):
    p = problem(lambda: parse_json(raw))
    assert p.status == 400 and p.error == error


def test_client_address_trusts_only_configured_proxies():
    address = ClientAddress(["10.0.0.0/8"])
    forwarded = {"x-forwarded-for": "198.51.100.9, 10.1.1.1"}
    assert address(request(headers=forwarded, peer="10.1.1.1")) == "198.51.100.9"
    assert address(request(headers=forwarded, peer="192.0.2.7")) == "192.0.2.7"
    assert address(request(headers={"x-real-ip": "not-an-ip"}, peer="10.1.1.1")) == "10.1.1.1"


def test_guard_checks_the_key_then_the_rate_limit():
    keys = KeyStore({"web": hash_key("k" * 32)})
    guard = Guard(keys, RateLimiter(2, 60, 2), ClientAddress([]))
    assert problem(lambda: guard(request())).status == 401
    assert problem(lambda: guard(request(headers={"x-api-key": "wrong"}))).headers == {"WWW-Authenticate": "ApiKey"}
    ok = request(headers={"x-api-key": "k" * 32})
    assert guard(ok) == "web" and guard(ok) == "web"
    limited = problem(lambda: guard(ok))
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1


def test_error_answers_name_the_field_and_the_ids_to_retry():
    with pytest.raises(ValidationError) as e:
        Event.model_validate({"event_type": "", "session_id": "s"})
    p = validation_problem(e.value, "events.3.")
    assert p.status == 422 and p.extra["field"] == "events.3.event_type" and "events.3.event_type" in p.error
    u = unavailable(event_ids=["a", "b"])
    assert u.status == 503 and u.headers == {"Retry-After": "5"} and u.extra == {"event_ids": ["a", "b"]}


def test_ingest_stamps_the_apis_own_metadata():
    ingest = Ingest(None, None, ClientAddress([]), 1024, 10)
    event = Event.model_validate({"event_type": "click", "session_id": "s", "event_id": str(uuid.uuid4())})
    ua = "Mozilla/5.0\x07 (X11)"
    out = ingest.stamp(request(headers={"user-agent": ua}), "web").record(event)
    record = EventRecord.model_validate_json(out.value)
    assert record.metadata["ip_address"] == "192.0.2.7" and record.metadata["api_key"] == "web"
    assert "\x07" not in record.metadata["user_agent"] and record.event_id == event.event_id == out.event_id
    assert out.key == b"s"


@pytest.mark.parametrize(
    "fields",
    [
        {"event_type": "click"},
        {
            "event_type": "page_view",
            "session_id": "s\u00e8",
            "user_id": "u",
            "page": "/\u2028",
            "properties": {"a": [1.5]},
        },
        {"event_type": "x", "timestamp": "2026-12-01T10:00:00+02:00", "properties": {'k"ey': {"n": None, "t": True}}},
    ],
)
def test_a_stamped_record_is_the_bytes_an_event_record_would_produce(fields):
    """The API splices its fields into the event's JSON instead of building an EventRecord per event: the bytes must
    be the same, so every consumer reads exactly what it read before."""
    event = Event.model_validate(fields)
    received, meta = utcnow(), {"ip_address": "2001:db8::1", "api_key": "web", "user_agent": "agent \u00e9"}
    out = Stamp(received, meta).record(event)
    whole = EventRecord.model_validate({**event.model_dump(), "received_at": received, "metadata": meta})
    assert out.value == whole.to_kafka()
    assert out.key == whole.key()
    assert EventRecord.model_validate_json(out.value) == whole


def test_a_stamp_checks_the_apis_own_metadata_against_the_contract():
    with pytest.raises(ContractError, match=r"metadata\.user_agent: contains a NUL"):
        Stamp(utcnow(), {"user_agent": "a\x00b"})


def test_property_keys_are_kept_as_sent_while_the_text_fields_are_trimmed():
    """The contract test's counterexample: a key with a trailing space came back without it (two keys that differ only
    in whitespace would have become one, a value lost)."""
    e = Event.model_validate_json(
        '{"event_type": "click", "user_id": " u1 ", "properties": {"è ": [], "è": 1, " k": {" inner ": " v "}}}'
    )
    assert e.user_id == "u1"
    assert e.properties == {"è ": [], "è": 1, " k": {" inner ": " v "}}


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00")),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=8), inner, max_size=8),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(st.text(max_size=8), _json_values, max_size=8), slack=st.integers(-40, 40))
def test_the_fast_size_check_decides_as_the_exact_one(value, slack):
    """Floats with exponents, escapes and non-ASCII text, limits on both sides of the exact size (and far below)."""
    exact = len(compact_json(value).encode())
    for limit in (max(exact + slack, 0), exact, exact - 1, 2 * exact):
        assert json_larger_than(value, limit) == (exact > limit), (limit, exact)


def test_properties_over_the_size_limit_are_refused_naming_the_field():
    filler = "x" * (MAX_PROPERTIES_BYTES - len(compact_json({"p": ""}).encode()))
    assert len(compact_json({"p": filler}).encode()) == MAX_PROPERTIES_BYTES
    Event.model_validate({"event_type": "t", "properties": {"p": filler}})  # exactly the limit: stored
    with pytest.raises(ValidationError) as e:
        Event.model_validate({"event_type": "t", "properties": {"p": filler + "é"}})
    assert validation_problem(e.value).extra["field"] == "properties"
    floats = {"f": [1e-7] * 3000}  # pydantic writes 1e-7, compact_json 1e-07: only the exact count refuses it
    assert len(to_json(floats)) <= MAX_PROPERTIES_BYTES < len(compact_json(floats).encode())
    with pytest.raises(ValidationError, match="larger than 16384 bytes"):
        Event.model_validate({"event_type": "t", "properties": floats})
