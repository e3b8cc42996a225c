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
