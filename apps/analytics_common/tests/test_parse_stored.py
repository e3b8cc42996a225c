"""The consumers' fast path (parse_stored) against the model (parse_record): the same records accepted, the same
values stored, and the API's own records all on the fast path."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from analytics_common.events import (
    MAX_PROPERTIES_BYTES,
    Event,
    PoisonRecord,
    Stamp,
    _parse_fast,
    compact_json,
    parse_record,
    parse_stored,
    stored_json,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**18, 10**19])
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=25,
)
_NOW = datetime.now(UTC)
_times = st.sampled_from(
    [
        _NOW.isoformat().replace("+00:00", "Z"),
        _NOW.isoformat(),
        _NOW.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        _NOW.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
        (_NOW + timedelta(hours=5, minutes=30)).replace(tzinfo=None).isoformat() + "+05:30",
        _NOW.replace(tzinfo=None).isoformat(),  # no offset: the model takes UTC
        _NOW.strftime("%Y-%m-%d %H:%M:%SZ"),  # a space instead of the T
        _NOW.strftime("%Y-%m-%dT%H:%M:%S.%f1Z"),  # seven fraction digits
        "2026-02-30T10:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-12-04T24:00:00Z",
        "2026-12-04T10:00:60Z",
        "2026-12-04T10:00:00+24:00",
        "1733300000",
        "",
    ]
)
_VALID_TIMES = [
    _NOW.isoformat().replace("+00:00", "Z"),
    _NOW.replace(microsecond=0).isoformat(),
    "2026-12-04T10:00:00.5-05:00",
]
_ids = st.sampled_from(
    [
        str(uuid.UUID(int=7)),
        "69ae2c41-c97d-444e-a1cc-ff6e2348e5aa",
        "69AE2C41-C97D-444E-A1CC-FF6E2348E5AA",
        "69ae2c41c97d444ea1ccff6e2348e5aa",
        "{69ae2c41-c97d-444e-a1cc-ff6e2348e5aa}",
        "69ae2c41-c97d-444e-a1cc-ff6e2348e5a",
        "not-a-uuid",
    ]
)
_short = st.one_of(st.none(), _text, st.sampled_from(["", " s", "s ", "s\n", "x" * 128, "x" * 129, "s\x00", "é"]))
_types = st.one_of(
    st.sampled_from(["click", "page_view", "a.b:c-d_e", " click", "click\n", "Click", "", "x" * 64, "x" * 65, "1a"]),
    _text,
)
_metadata = st.one_of(
    st.dictionaries(st.sampled_from(["ip_address", "user_agent", " padded ", "k"]), _json_values, max_size=3),
    _json_values,
)


_EDGES = {
    "event_id": _ids,
    "event_type": _types,
    "session_id": _short,
    "user_id": _short,
    "timestamp": _times,
    "page": st.one_of(_short, st.just("/" + "p" * 2047), st.just("/" + "p" * 2048)),
    "properties": st.one_of(_json_values, st.just({"deep": [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]})),
    "received_at": _times,
    "metadata": _metadata,
}


@st.composite
def records(draw) -> bytes:
    """A record's JSON: a valid one (as the API writes it) with up to three of its fields moved to the contract's
    edges or beyond, left out, or of another type, and sometimes a field added; written compact or not, with or
    without \\u escapes."""
    safe = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12)
    plain = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=8)
    values = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain, inner, max_size=3),
        max_leaves=10,
    )
    fields = {
        "event_id": str(draw(st.uuids())),
        "event_type": draw(st.sampled_from(["click", "page_view", "a.b:c-d_e"])),
        "session_id": draw(st.one_of(st.none(), safe)),
        "user_id": draw(st.one_of(st.none(), safe)),
        "timestamp": draw(st.sampled_from(_VALID_TIMES)),
        "page": draw(st.one_of(st.none(), safe)),
        "properties": draw(st.dictionaries(plain, values | plain, max_size=5)),
        "received_at": _NOW.isoformat().replace("+00:00", "Z"),
        "metadata": {"ip_address": "192.0.2.1", "user_agent": draw(safe)},
    }
    for name in draw(st.lists(st.sampled_from(sorted(_EDGES)), max_size=3)):
        if draw(st.integers(0, 5)) == 0:
            fields.pop(name, None)
        else:
            fields[name] = draw(_EDGES[name])
    if draw(st.integers(0, 5)) == 0:
        fields[draw(st.sampled_from(["extra", "event_type", "session_id"]))] = draw(_json_values)
    text = json.dumps(
        fields, ensure_ascii=draw(st.integers(0, 3)) == 0, separators=draw(st.sampled_from([(",", ":"), None]))
    )
    return text.encode("utf-8", "surrogatepass")


def _outcome(parse, value):
    try:
        return parse(value)
    except PoisonRecord as e:
        return ("poison", e.reason)


def _same(a, b) -> bool:
    """Equal, timestamps with the same UTC offset too (the Delta partition is the event's own date)."""
    if a != b:
        return False
    if a[0] == "poison":
        return True
    return all(x.utcoffset() == y.utcoffset() for x, y in ((a.timestamp, b.timestamp), (a.received_at, b.received_at)))


@settings(max_examples=1500, deadline=None)
@given(value=records())
def test_the_fast_path_accepts_only_what_the_model_does_and_stores_the_same(value):
    fast = _parse_fast(value)
    model = _outcome(lambda v: parse_record(v).stored(), value)
    both = _outcome(parse_stored, value)
    if model[0] != "poison":  # without an event_id or a timestamp, the model gives each parse a new one (defaults)
        for name, blank in (("event_id", ""), ("timestamp", _NOW)):
            if f'"{name}"'.encode() not in value:
                model, both = model._replace(**{name: blank}), both._replace(**{name: blank})
    if fast is not None:
        assert model[0] != "poison", (value, model)
        assert _same(fast, model), (value, fast, model)
    assert _same(both, model)


@settings(max_examples=300, deadline=None)
@given(
    properties=st.dictionaries(_text, _json_values, max_size=6),
    session=st.one_of(
        st.none(), st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=20)
    ),
)
def test_the_apis_records_take_the_fast_path(properties, session):
    """Every record the API writes whose values need no second look (no escape, no integer past 64 bits) is parsed
    without the model: the fast path is the hot path, not a detour."""
    try:
        event = Event(event_type="page_view", session_id=session, page="/p", properties=properties)
    except ValidationError:  # outside the contract (an integer past 64 bits): the API refuses it
        assume(False)
    value = Stamp(datetime.now(UTC), {"ip_address": "192.0.2.1", "user_agent": "bench/1.0"}).record(event).value
    fast = _parse_fast(value)
    assume(b"\\u" not in value and not re.search(rb"[0-9]{19}", value))  # an escape, a number of 19 digits or more
    assert fast is not None, value
    assert _same(fast, parse_record(value).stored())


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(_text, _json_values, max_size=8))
def test_stored_json_is_never_less_than_half_the_contracts_size(value):
    """The fast path's size check: a record passes it when twice its stored_json fits the limit, which must mean that
    compact_json (the contract's measure) fits too."""
    try:
        compact = compact_json(value)
    except ValueError:
        return
    assert len(compact.encode()) <= 2 * len(stored_json(value).encode())


def test_a_record_near_the_size_limit_is_decided_by_the_model():
    filler = "x" * (MAX_PROPERTIES_BYTES - len(compact_json({"p": ""}).encode()))
    event = Event(event_type="t", properties={"p": filler})
    value = Stamp(datetime.now(UTC), {}).record(event).value
    assert _parse_fast(value) is None
    assert parse_stored(value) == parse_record(value).stored()
    with pytest.raises(PoisonRecord, match="larger than 16384 bytes"):
        parse_stored(value.replace(b'"p":"', b'"p":"xx'))
