"""kafka_info against a real broker (SASL_SSL): where a topic ends and how far each consumer group still is from
offsets given, the check playbooks/privacy_erase.yml waits on before it erases anything."""

from __future__ import annotations

import uuid

from ansible_collections.analytics.platform.plugins.modules import kafka_info
from confluent_kafka import Consumer, Producer, TopicPartition

TOPIC = "analytics-events"


def test_behind_counts_what_each_group_has_yet_to_commit_up_to_the_offsets_given(run_module, kafka):
    args = {
        "bootstrap_servers": [kafka.bootstrap],
        "login_user": "admin",
        "login_password": kafka.passwords["admin"],
        "ca_path": str(kafka.pki["ca"]),
        "topics": [TOPIC],
    }
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
