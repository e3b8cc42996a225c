"""The API's error answers: one JSON object {"error": ..., **details} with its status and headers."""

from __future__ import annotations

from analytics_common.events import problem_of
from pydantic import ValidationError


class HTTPProblem(Exception):
    def __init__(self, status: int, error: str, headers: dict | None = None, **extra):
        super().__init__(error)
        self.status, self.error, self.headers, self.extra = status, error, headers or {}, extra


def validation_problem(e: ValidationError, prefix: str = "") -> HTTPProblem:
    """422 naming the first invalid field (with `prefix`, such as "events.3.", for a batch)."""
    field, msg = problem_of(e, prefix)
    return HTTPProblem(422, f"invalid field '{field or 'body'}': {msg}", field=field or "body")


def unavailable(**ids) -> HTTPProblem:
    """Kafka did not acknowledge in time. The answer names the event ids: a client that retries with the same ids is
    deduplicated by every store, even if the first attempt arrives after all."""
    return HTTPProblem(503, "event store unavailable, retry later with the same event_id", {"Retry-After": "5"}, **ids)
