"""kafka_dlq_replay's filters (the replay itself runs live in the kafka scenario: test_dlq_replay_*)."""

from __future__ import annotations

import pytest
from ansible_collections.analytics.platform.plugins.modules import kafka_dlq_replay

PARAMS = {"consumers": [], "stages": [], "reason_contains": ""}
HEADERS = {"dlq-consumer": "pg-sink", "dlq-stage": "store", "dlq-reason": "PostgreSQL refused the row: 23514 check"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"consumers": ["pg-sink"]}, True),
        ({"consumers": ["delta-writer"]}, False),
        ({"stages": ["store"]}, True),
        ({"stages": ["contract"]}, False),
        ({"reason_contains": "23514"}, True),
        ({"reason_contains": "NUL"}, False),
        ({"consumers": ["pg-sink"], "stages": ["contract"]}, False),
    ],
)
def test_filters_select_by_consumer_stage_and_reason(filters, expected):
    assert kafka_dlq_replay.matches(HEADERS, {**PARAMS, **filters}) is expected


def test_records_parked_before_stages_existed_count_as_contract():
    old = {k: v for k, v in HEADERS.items() if k != "dlq-stage"}
    assert kafka_dlq_replay.matches(old, {**PARAMS, "stages": ["contract"]})


def test_headers_are_decoded_and_missing_values_are_empty():
    class Msg:
        def headers(self):
            return [("dlq-reason", b"why \xff"), ("dlq-stage", None)]

    assert kafka_dlq_replay.headers_of(Msg()) == {"dlq-reason": "why \ufffd", "dlq-stage": ""}


KEY = "an-erasure-key-of-thirty-two-chars"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"user_id": "gone", "session_id": "s"}', True),
        (b'{"user_id": "kept", "session_id": "gone-session"}', True),
        (b'{"user_id": "kept", "session_id": "s"}', False),
        (b'{"user_id": "session_id:gone-session"}', False),  # the column is part of what is hashed
        (b'{"user_id": ["gone"]}', False),
        (b'["gone"]', False),
        (b"not json \x00", False),
        (None, False),
    ],
)
def test_an_erased_subjects_record_is_recognised_by_its_hmac_only(value, expected):
    from ansible_collections.analytics.platform.plugins.module_utils.privacy import subject_digest

    erased = {subject_digest(KEY, "user_id", "gone"), subject_digest(KEY, "session_id", "gone-session")}
    assert kafka_dlq_replay.of_erased_subject(value, erased, KEY) is expected
    assert kafka_dlq_replay.of_erased_subject(value, erased, KEY + "-other") is False  # another key: other HMACs
