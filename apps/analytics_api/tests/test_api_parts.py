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
from analytics_common.events import Event, utcnow
from pydantic import ValidationError
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
    record = ingest.record(event, request(headers={"user-agent": ua}), "web", utcnow())
    assert record.metadata["ip_address"] == "192.0.2.7" and record.metadata["api_key"] == "web"
    assert "\x07" not in record.metadata["user_agent"] and record.event_id == event.event_id


def test_property_keys_are_kept_as_sent_while_the_text_fields_are_trimmed():
    """The contract test's counterexample: a key with a trailing space came back without it (two keys that differ only
    in whitespace would have become one, a value lost)."""
    e = Event.model_validate_json(
        '{"event_type": "click", "user_id": " u1 ", "properties": {"è ": [], "è": 1, " k": {" inner ": " v "}}}'
    )
    assert e.user_id == "u1"
    assert e.properties == {"è ": [], "è": 1, " k": {" inner ": " v "}}
