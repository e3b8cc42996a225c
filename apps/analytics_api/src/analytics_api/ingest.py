"""The ingest endpoints' logic: one event, or a batch that is accepted whole or not at all. Each event is checked
against the contract (analytics_common.events), stamped with the API's own metadata, and acknowledged by Kafka
before the client hears 202.

Consent: a request that says its user does not consent (`Sec-GPC: 1`, Global Privacy Control, or `DNT: 1`) is
validated as any other; then, per API_CONSENT_MODE, its events are stored without identifiers (no user_id, no
session_id, no client address, no user agent; `metadata.consent` is "withheld"), or not stored at all (answered 202
with status "dropped"), or stored as sent."""

from __future__ import annotations

import logging

from analytics_common.events import Event, Stamp, clean_header, utcnow
from pydantic import ValidationError
from starlette.requests import Request

from analytics_api.auth import ClientAddress, Guard
from analytics_api.body import parse_json, read_body
from analytics_api.metrics import EVENTS, WITHOUT_CONSENT
from analytics_api.problems import HTTPProblem, unavailable, validation_problem
from analytics_api.producer import KafkaUnavailable

log = logging.getLogger("analytics-api")


def consent_withheld(request: Request) -> bool:
    """Whether the request says its user does not consent to tracking: Global Privacy Control or Do Not Track."""
    headers = request.headers
    return headers.get("sec-gpc", "").strip() == "1" or headers.get("dnt", "").strip() == "1"


def anonymized(event: Event) -> Event:
    """The event without the identifiers of its user (the API's own metadata leaves them out too)."""
    return event.model_copy(update={"user_id": None, "session_id": None})


class Ingest:
    def __init__(
        self,
        producer,
        guard: Guard,
        address: ClientAddress,
        max_body_bytes: int,
        max_batch: int,
        consent_mode: str = "anonymize",
    ):
        self.producer, self.guard, self.address = producer, guard, address
        self.max_body_bytes, self.max_batch = max_body_bytes, max_batch
        self.consent_mode = consent_mode
        for action in ("anonymized", "dropped"):
            WITHOUT_CONSENT.labels(action)

    def consent(self, request: Request, events: list[Event]) -> tuple[str | None, list[Event]]:
        """What this request's consent makes of its events: (None, as sent), ("anonymize", without identifiers) or
        ("drop", not to be stored), counted."""
        if self.consent_mode == "ignore" or not consent_withheld(request):
            return None, events
        if self.consent_mode == "drop":
            WITHOUT_CONSENT.labels("dropped").inc(len(events))
            return "drop", events
        WITHOUT_CONSENT.labels("anonymized").inc(len(events))
        return "anonymize", [anonymized(e) for e in events]

    def stamp(self, request: Request, key_name: str, anonymous: bool = False) -> Stamp:
        """The API's metadata of this request's events, made once per request (a batch shares it)."""
        if anonymous:
            return Stamp(utcnow(), {"api_key": key_name, "consent": "withheld"})
        meta = {"ip_address": self.address(request), "api_key": key_name}
        ua = clean_header(request.headers.get("user-agent"))
        if ua:
            meta["user_agent"] = ua
        return Stamp(utcnow(), meta)

    async def _read(self, request: Request):
        key_name = self.guard(request)
        return key_name, parse_json(await read_body(request, self.max_body_bytes))

    async def one(self, request: Request) -> dict:
        key_name, data = await self._read(request)
        if not isinstance(data, dict):
            raise HTTPProblem(422, "invalid field 'body': expected a JSON object (one event)", field="body")
        try:
            event = Event.model_validate(data)
        except ValidationError as e:
            raise validation_problem(e) from None
        action, (event,) = self.consent(request, [event])
        if action == "drop":
            return {"status": "dropped", "reason": "no consent", "event_id": str(event.event_id)}
        try:
            await self.producer.send_one(self.stamp(request, key_name, action == "anonymize").record(event))
        except KafkaUnavailable:
            raise unavailable(event_id=str(event.event_id)) from None
        EVENTS.inc()
        log.info("event received", extra={"session_id": event.session_id, "event_type": event.event_type})
        return {"status": "accepted", "event_id": str(event.event_id)}

    async def batch(self, request: Request) -> dict:
        key_name, data = await self._read(request)
        items = data.get("events") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise HTTPProblem(422, "invalid field 'events': expected a non-empty list", field="events")
        if len(items) > self.max_batch:
            raise HTTPProblem(413, f"batch of {len(items)} events exceeds the limit of {self.max_batch}")
        events = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise HTTPProblem(422, f"invalid field 'events.{i}': expected a JSON object", field=f"events.{i}")
            try:
                event = Event.model_validate(item)
            except ValidationError as e:
                raise validation_problem(e, f"events.{i}.") from None
            events.append(event)
        ids = [str(e.event_id) for e in events]
        if len(set(ids)) != len(ids):
            raise HTTPProblem(422, "invalid field 'events': duplicate event_id in the batch", field="events")
        action, events = self.consent(request, events)
        if action == "drop":
            return {"status": "dropped", "reason": "no consent", "count": len(events), "event_ids": ids}
        stamp = self.stamp(request, key_name, action == "anonymize")
        try:
            await self.producer.send_batch([stamp.record(e) for e in events])
        except KafkaUnavailable:
            raise unavailable(event_ids=ids) from None
        EVENTS.inc(len(events))
        log.info("batch received", extra={"batch_size": len(events)})
        return {"status": "accepted", "count": len(events), "event_ids": ids}
