"""The event contract, defined once: what an event may contain, so that everything the API accepts every store can
hold (PostgreSQL text and jsonb, the Delta table's Arrow strings), and what the consumers check again on every Kafka
record before they write it.

A client sends an `Event`; the API adds server-side fields and produces an `EventRecord` (JSON, UTF-8) keyed by
session_id (or event_id when there is none, so that a retried event always lands in the same partition). A consumer
that cannot parse a record as an `EventRecord` parks it in the dead-letter topic.

The contract (the API's README has it as a table):
- every string, in every field and every key or value of `properties`: no NUL character and no unpaired UTF-16
  surrogate (PostgreSQL text cannot hold NUL; neither UTF-8 nor Arrow can hold a lone surrogate);
- `properties`: a JSON object nested at most MAX_DEPTH levels, integers within 64 bits, finite numbers only, at most
  MAX_PROPERTIES_BYTES as compact UTF-8 JSON;
- `timestamp`: within MAX_AGE before and MAX_FUTURE after the time the API receives it.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple
from uuid import UUID, uuid4

import msgspec
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, field_validator
from pydantic_core import to_json

MAX_PROPERTIES_BYTES = 16 * 1024
MAX_DEPTH = 16  # properties itself is level 1: {"a": {"b": 1}} is nested 2 deep
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
MAX_FUTURE = timedelta(hours=24)
MAX_AGE = timedelta(days=90)  # the PostgreSQL retention: older events would be dropped on arrival
MAX_USER_AGENT = 512
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


class ContractError(ValueError):
    """A value outside the event contract; `field` is the dotted path of the offending value."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def utcnow() -> datetime:
    return datetime.now(UTC)


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    m = _BAD_CHARACTER.search(value)
    if m is None:
        return None
    return "contains a NUL character" if m.group() == "\x00" else "contains an unpaired surrogate (not valid Unicode)"


def check_text(field: str, value: str | None) -> str | None:
    if value is not None:
        problem = text_problem(value)
        if problem:
            raise ContractError(field, problem)
    return value


def check_json(field: str, value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise ContractError naming the first value under `field` that the stores cannot hold exactly."""
    stack = [(field, value, 1)]
    while stack:
        path, v, depth = stack.pop()
        if isinstance(v, str):
            check_text(path, v)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int):
            if not MIN_INT <= v <= MAX_INT:
                raise ContractError(path, "integer outside the 64-bit range")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ContractError(path, "number is not finite")
        elif isinstance(v, dict | list):
            if depth > max_depth:
                raise ContractError(path, f"nested deeper than {max_depth} levels")
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, item in items:
                if isinstance(k, str):
                    problem = text_problem(k)
                    if problem:
                        raise ContractError(path, f"a key {problem}")
                elif not isinstance(k, int):
                    raise ContractError(path, f"a key of type {type(k).__name__}")
                stack.append((f"{path}.{k}", item, depth + 1))
        else:
            raise ContractError(path, f"value of type {type(v).__name__} is not JSON")


def compact_json(value: Any) -> str:
    """The serialisation the records and the Delta table use (compact, UTF-8, no NaN)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_larger_than(value: Any, limit: int) -> bool:
    """Whether compact_json(value) is longer than `limit` UTF-8 bytes, for a value check_json accepted.

    pydantic's serialiser (Rust) gives a close length several times faster than json.dumps: the two differ only in how
    some floats are written (json.dumps "1e-07" against "1e-7", "1e-05" against "0.00001"), json.dumps at most one
    byte longer for a number pydantic writes in at least four. So compact_json is never longer than twice pydantic's:
    a value of at most half the limit by pydantic's count is within it; only larger ones are measured exactly."""
    if 2 * len(to_json(value)) <= limit:
        return False
    return len(compact_json(value).encode()) > limit


PropertyKey = Annotated[str, StringConstraints(strip_whitespace=False)]


class Event(BaseModel):
    """One analytics event as a client sends it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: UUID = Field(default_factory=uuid4, description="Assigned by the API when absent")
    event_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.:-]*$")
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    timestamp: datetime = Field(default_factory=utcnow)
    page: str | None = Field(default=None, max_length=2048)
    # Keys exactly as sent: the model strips the whitespace around its own text fields, and would otherwise strip the
    # keys of properties too ("a " and "a" would become one key, one of the values lost).
    properties: dict[PropertyKey, Any] = Field(default_factory=dict)

    @field_validator("session_id", "user_id", "page")
    @classmethod
    def _storable_text(cls, v: str | None, info) -> str | None:
        return check_text(info.field_name, v)

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_window(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        now = utcnow()
        if v > now + MAX_FUTURE:
            raise ValueError("is more than 24 hours in the future")
        if v < now - MAX_AGE:
            raise ValueError("is older than the 90-day retention")
        return v.astimezone(UTC)

    @field_validator("properties")
    @classmethod
    def _properties_storable(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_json("properties", v)
        if json_larger_than(v, MAX_PROPERTIES_BYTES):
            raise ContractError("properties", f"is larger than {MAX_PROPERTIES_BYTES} bytes")
        return v


class EventRecord(Event):
    """An event as it travels through Kafka: the client's fields plus what the API adds."""

    received_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_window(cls, v: datetime) -> datetime:  # records are checked by the API already
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    @field_validator("metadata")
    @classmethod
    def _metadata_storable(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_json("metadata", v)
        return v

    def to_kafka(self) -> bytes:
        return self.model_dump_json().encode()

    def key(self) -> bytes:
        return partition_key(self.session_id, self.event_id)

    def stored(self) -> StoredEvent:
        return StoredEvent(
            str(self.event_id),
            self.event_type,
            self.session_id,
            self.user_id,
            self.timestamp,
            self.received_at,
            self.page,
            stored_json(self.properties),
            stored_json(self.metadata),
        )


def partition_key(session_id: str | None, event_id: UUID) -> bytes:
    """The partition key: the session (events of a session stay in order), else the event itself."""
    return (session_id or str(event_id)).encode()


class KafkaRecord(NamedTuple):
    """One event as the API produces it: the partition key and the record's JSON (an EventRecord), made once."""

    event_id: UUID
    key: bytes
    value: bytes


_DATETIME_JSON = TypeAdapter(datetime)


class Stamp:
    """What the API adds to every event of one request (received_at and metadata), serialised once for the request.

    A record is the event's own JSON (pydantic's serialisation of the validated Event) with these two fields spliced
    in before its closing brace: the same bytes as EventRecord(...).to_kafka() without building an EventRecord per
    event (that was a third of the batch path's CPU)."""

    def __init__(self, received_at: datetime, metadata: dict[str, Any]):
        check_json("metadata", metadata)
        self._tail = b"".join(
            (
                b',"received_at":',
                _DATETIME_JSON.dump_json(received_at),
                b',"metadata":',
                compact_json(metadata).encode(),
                b"}",
            )
        )

    def record(self, event: Event) -> KafkaRecord:
        value = Event.__pydantic_serializer__.to_json(event)
        return KafkaRecord(event.event_id, partition_key(event.session_id, event.event_id), value[:-1] + self._tail)


def clean_header(value: str | None, limit: int = MAX_USER_AGENT) -> str | None:
    """A request header as metadata: cut to `limit` characters, without control characters."""
    if not value:
        return None
    cleaned = "".join(c for c in value[:limit] if c >= " " and c != "\x7f")
    return cleaned or None


class PoisonRecord(ValueError):
    """A Kafka record that is not a valid EventRecord; `reason` says why in one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def problem_of(e: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(field, message) of the first error of a ValidationError; contract errors name the value's own path."""
    first = e.errors()[0]
    field = prefix + ".".join(str(x) for x in first.get("loc", ()))
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ContractError):
        return prefix + cause.field, cause.problem
    msg = first.get("msg", "invalid")
    return field, msg


def parse_record(value: bytes | None) -> EventRecord:
    if value is None:
        raise PoisonRecord("empty record")
    try:
        return EventRecord.model_validate_json(value)
    except ValidationError as e:
        field, msg = problem_of(e)
        raise PoisonRecord(f"{field or 'record'}: {msg}") from None
    except UnicodeDecodeError:
        raise PoisonRecord("record is not UTF-8") from None


class StoredEvent(NamedTuple):
    """An event as the consumers store it: one row, in the order of the PostgreSQL table's columns, with properties
    and metadata as JSON text (stored_json). What parse_stored makes of a Kafka record."""

    event_id: str
    event_type: str
    session_id: str | None
    user_id: str | None
    timestamp: datetime
    received_at: datetime
    page: str | None
    properties: str
    metadata: str


_encode_json = msgspec.json.Encoder().encode


def stored_json(value: Any) -> str:
    """The JSON text the stores hold for properties and metadata: compact UTF-8, floats in their shortest form."""
    return _encode_json(value).decode()


class _RecordFields(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A record's fields as msgspec decodes them (the fast path of parse_stored; the contract is checked there)."""

    event_id: str
    event_type: str
    timestamp: str
    received_at: str
    session_id: str | None = None
    user_id: str | None = None
    page: str | None = None
    properties: dict = msgspec.field(default_factory=dict)
    metadata: dict = msgspec.field(default_factory=dict)


_decode_fields = msgspec.json.Decoder(_RecordFields).decode
# What the fast path leaves to the model, wherever it appears in a record: any \\u escape (a NUL or a surrogate may
# hide behind one) and a run of 19 digits (an integer past 64 bits). A float out of range fails msgspec's decoding.
_DIGITS_AS_ONES = bytes.maketrans(b"0123456789", b"\x01" * 10)
_NINETEEN_DIGITS = b"\x01" * 19
_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
# event_id (canonical form), event_type, timestamp and received_at, joined by newlines (which none may contain).
_HEAD = re.compile(
    rf"[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}\n[a-z][a-z0-9_.:-]{{0,63}}\n{_TIME}\n{_TIME}"
).fullmatch
_from_iso = datetime.fromisoformat


def _trimmed(value: str | None, low: int, high: int) -> bool:
    return value is None or (low <= len(value) <= high and value.strip() == value)


def _parse_fast(value: bytes) -> StoredEvent | None:
    """The record as parse_record(value).stored() would make it, for the records whose every value is plainly within
    the contract (all the API writes but the rare exception); None for any other, which the model then decides."""
    if (
        b"\\u" in value
        or _NINETEEN_DIGITS in value.translate(_DIGITS_AS_ONES)
        or value.count(b"{") + value.count(b"[") > MAX_DEPTH + 1  # deeper than the contract allows, or unsure
    ):
        return None
    try:
        f = _decode_fields(value)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not (
        _HEAD(f"{f.event_id}\n{f.event_type}\n{f.timestamp}\n{f.received_at}")
        and _trimmed(f.session_id, 1, 128)
        and _trimmed(f.user_id, 1, 128)
        and _trimmed(f.page, 0, 2048)
    ):
        return None
    for key in f.metadata:
        if key.strip() != key:  # the model strips metadata's keys
            return None
    properties = stored_json(f.properties)
    # stored_json is at most compact_json's length, and compact_json at most twice it (see json_larger_than).
    if 2 * len(properties.encode()) > MAX_PROPERTIES_BYTES:
        return None
    try:
        timestamp, received_at = _from_iso(f.timestamp), _from_iso(f.received_at)
    except ValueError:  # the shape is right, the calendar is not (February 30th)
        return None
    return StoredEvent(
        f.event_id,
        f.event_type,
        f.session_id,
        f.user_id,
        timestamp,
        received_at,
        f.page,
        properties,
        stored_json(f.metadata),
    )


def parse_stored(value: bytes | None) -> StoredEvent:
    """A Kafka record as the stores hold it, the contract checked; raises PoisonRecord like parse_record.

    Most records take a fast path (msgspec, ~5x cheaper than the model: the consumers' hot path); any record it is not
    sure of goes through the model, so both accept exactly the same records with the same values (a property test
    compares them)."""
    if value is not None:
        fast = _parse_fast(value)
        if fast is not None:
            return fast
    return parse_record(value).stored()


def first_per_event(records: list[StoredEvent]) -> list[int]:
    """Indexes of the first record of each event_id, in order: a batch stores the first copy of a retried event,
    as a later batch would (the stores keep what they have)."""
    seen: set[str] = set()
    out = []
    for i, r in enumerate(records):
        if r.event_id not in seen:
            seen.add(r.event_id)
            out.append(i)
    return out
