"""kafka_info against a real broker (SASL_SSL): where a topic ends and how far each consumer group still is from
offsets given, the check playbooks/privacy_erase.yml waits on before it erases anything."""

from __future__ import annotations

import time
import uuid

from ansible_collections.analytics.platform.plugins.modules import kafka_info
from confluent_kafka import Consumer, Producer, TopicPartition

TOPIC = "analytics-events"


def connection(kafka) -> dict:
    """kafka_info's options for the test broker's admin, on the events topic."""
    return {
        "bootstrap_servers": [kafka.bootstrap],
        "login_user": "admin",
        "login_password": kafka.passwords["admin"],
        "ca_path": str(kafka.pki["ca"]),
        "topics": [TOPIC],
    }


def test_behind_counts_what_each_group_has_yet_to_commit_up_to_the_offsets_given(run_module, kafka):
    args = connection(kafka)
    caught_up, lagging = f"sink-{uuid.uuid4().hex[:8]}", f"slow-{uuid.uuid4().hex[:8]}"
    producer = Producer(kafka.conf("admin", acks="all"))
    for n in range(9):
        producer.produce(TOPIC, b"{}", partition=n % 3)
    assert producer.flush(30) == 0

    start = run_module(kafka_info, {**args, "groups": [caught_up, lagging]})
    assert not start.failed, start.result["msg"]
    ends = start.result["end_offsets"][TOPIC]
    assert sorted(ends) == ["0", "1", "2"] and all(v >= 3 for v in ends.values())

    def commit(group: str, minus: int) -> None:
        c = Consumer(kafka.conf("admin", **{"group.id": group, "enable.auto.commit": False}))
        try:
            offsets = [TopicPartition(TOPIC, int(p), end - minus) for p, end in ends.items()]
            c.commit(offsets=offsets, asynchronous=False)
        finally:
            c.close()

    commit(caught_up, 0)
    commit(lagging, 1)  # one record short on each of the three partitions
    for n in range(3):  # more events after the erasure began: not waited for
        producer.produce(TOPIC, b"{}", partition=n)
    assert producer.flush(30) == 0
    now = run_module(kafka_info, {**args, "groups": [caught_up, lagging], "reached": start.result["end_offsets"]})
    assert not now.failed, now.result["msg"]
    assert now.result["behind"] == {caught_up: 0, lagging: 3}
    assert now.result["lag"] == {caught_up: 3, lagging: 6}
    never = f"new-{uuid.uuid4().hex[:8]}"  # a group that committed nothing yet is behind by everything
    fresh = run_module(kafka_info, {**args, "groups": [never], "reached": start.result["end_offsets"]})
    assert fresh.result["behind"] == {never: sum(ends.values())}


def test_record_ends_leave_out_the_transaction_markers_a_consumer_never_receives(run_module, kafka):
    """The finding of the lab's erasure drill: the API's batches are Kafka transactions, whose commit markers take an
    offset; a sink that stored every event commits one short of the high watermark, and the erasure waited for ever."""
    args = connection(kafka)
    producer = Producer(kafka.conf("admin", **{"transactional.id": f"tx-{uuid.uuid4().hex[:8]}", "acks": "all"}))
    producer.init_transactions(30)
    producer.begin_transaction()
    for n in range(6):
        producer.produce(TOPIC, b"{}", partition=n % 3)
    producer.commit_transaction(30)
    deadline = time.time() + 30
    while True:  # the coordinator writes the markers just after the commit returns
        high = run_module(kafka_info, {**args, "groups": ["nobody"]}).result["end_offsets"][TOPIC]
        data = run_module(kafka_info, {**args, "groups": ["nobody"], "record_ends": True}).result["end_offsets"][TOPIC]
        if {p: high[p] - data[p] for p in high} == {"0": 1, "1": 1, "2": 1} or time.time() > deadline:
            break
        time.sleep(0.5)
    assert {p: high[p] - data[p] for p in high} == {"0": 1, "1": 1, "2": 1}  # one commit marker after each

    sink = f"sink-{uuid.uuid4().hex[:8]}"  # has stored every event: committed after the last record it received
    c = Consumer(kafka.conf("admin", **{"group.id": sink, "enable.auto.commit": False}))
    try:
        c.commit(offsets=[TopicPartition(TOPIC, int(p), end) for p, end in data.items()], asynchronous=False)
    finally:
        c.close()
    by_marks = run_module(kafka_info, {**args, "groups": [sink], "reached": {TOPIC: high}})
    assert by_marks.result["behind"] == {sink: 3}  # the high watermarks are out of its reach
    by_records = run_module(kafka_info, {**args, "groups": [sink], "reached": {TOPIC: data}})
    assert by_records.result["behind"] == {sink: 0}
