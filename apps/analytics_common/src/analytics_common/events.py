"""The event schema shared by the API (validation of requests) and the consumers (validation of Kafka records).

A client sends an `Event`; the API adds server-side fields and produces an `EventRecord` (JSON, UTF-8) keyed by
session_id. A consumer that cannot parse a record as an `EventRecord` parks it in the dead-letter topic.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_PROPERTIES_BYTES = 16 * 1024
MAX_FUTURE = timedelta(hours=24)
MAX_AGE = timedelta(days=90)  # the PostgreSQL retention: older events would be dropped on arrival


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """One analytics event as a client sends it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: UUID = Field(default_factory=uuid4, description="Assigned by the API when absent")
    event_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.:-]*$")
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    timestamp: datetime = Field(default_factory=utcnow)
    page: str | None = Field(default=None, max_length=2048)
    properties: dict[str, Any] = Field(default_factory=dict)

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
    def _properties_small(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(v, default=str).encode()) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"is larger than {MAX_PROPERTIES_BYTES} bytes")
        return v


class EventRecord(Event):
    """An event as it travels through Kafka: the client's fields plus what the API adds."""

    received_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_window(cls, v: datetime) -> datetime:  # records are checked by the API already
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    def to_kafka(self) -> bytes:
        return self.model_dump_json().encode()

    def key(self) -> bytes | None:
        return self.session_id.encode() if self.session_id else None


class PoisonRecord(ValueError):
    """A Kafka record that is not a valid EventRecord; `reason` says why in one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_record(value: bytes | None) -> EventRecord:
    if value is None:
        raise PoisonRecord("empty record")
    try:
        return EventRecord.model_validate_json(value)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(x) for x in first.get("loc", ())) or "record"
        raise PoisonRecord(f"{field}: {first.get('msg', 'invalid')}") from None
    except UnicodeDecodeError:
        raise PoisonRecord("record is not UTF-8") from None
