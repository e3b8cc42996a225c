#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: kafka_dlq_replay
short_description: Re-submit records parked in the dead-letter topic to the events topic, after a fix
description:
  - The sinks park a record in the dead-letter topic when it breaks the event contract (stage C(contract)) or when
    their store refused it as data (stage C(store)), with the reason in the C(dlq-reason) header. Once the cause is
    fixed (a constraint removed, a partition created, a consumer upgraded), this module produces the parked records
    back to O(topic), unchanged and with their original key.
  - "Idempotent twice over: the replay's progress is the offset of its own consumer group O(group), committed in the
    same Kafka transaction as the re-submitted records, so a second run re-submits nothing; and every store keeps one
    copy per event_id, so even a replay from the start (O(start=earliest)) duplicates nothing."
  - A record parked by several consumers (both sinks park a record that breaks the contract) is re-submitted once.
    A record that still breaks the contract is parked again by the sinks, with its reason.
  - "A record of an erased data subject (its C(user_id) or C(session_id) among O(erased_subjects)) is never
    re-submitted: it is counted in RV(erased) and passed over for good."
  - Check mode reads and counts what would be re-submitted; it produces and commits nothing.
version_added: 0.2.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - analytics.platform.kafka
  - ansible.builtin.action_common_attributes
options:
  dlq_topic:
    description: The dead-letter topic.
    type: str
    default: analytics-events-dlq
  topic:
    description: The topic the records are re-submitted to.
    type: str
    default: analytics-events
  group:
    description: The consumer group that records how far the replay has read the dead-letter topic.
    type: str
    default: dlq-replay
  start:
    description:
      - C(committed) continues after the last replay (from the beginning the first time); C(earliest) reads the
        whole dead-letter topic again (the stores deduplicate by event_id).
    type: str
    choices: [committed, earliest]
    default: committed
  consumers:
    description: Only records parked by these consumer groups (C(dlq-consumer) header); empty for any.
    type: list
    elements: str
    default: []
  stages:
    description: Only records parked at these stages (C(dlq-stage) header); empty for any.
    type: list
    elements: str
    choices: [contract, store]
    default: []
  reason_contains:
    description: Only records whose C(dlq-reason) contains this text; empty for any.
    type: str
    default: ""
  max_records:
    description: Read at most this many records of the dead-letter topic in one run (the rest waits for the next).
    type: int
    default: 100000
  erased_subjects:
    description:
      - The erased data subjects, as the HMACs C(analytics_erasures) holds (playbooks/privacy_erase.yml records them;
        playbooks/dlq_replay.yml reads them from the PostgreSQL leader).
    type: list
    elements: str
    default: []
  erasure_key:
    description: The key of those HMACs (C(privacy_erasure_key)); required with O(erased_subjects).
    type: str
  transactional_id:
    description: Transactional id of the replay's producer (the login user needs WRITE on it).
    type: str
    default: dlq-replay
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Re-submit what PostgreSQL refused, now that the constraint is fixed
  analytics.platform.kafka_dlq_replay:
    bootstrap_servers: [kafka-a:9092]
    login_user: admin
    login_password: "{{ vault_kafka_admin_password }}"
    ca_path: /etc/analytics-platform/pki/ca.crt
    consumers: [pg-sink]
    stages: [store]
  delegate_to: localhost
"""

RETURN = r"""
read:
  description: Records read from the dead-letter topic in this run.
  returned: always
  type: int
replayed:
  description: Records re-submitted to O(topic) (in check mode, that would be).
  returned: always
  type: int
duplicates:
  description: Parked copies of a record already re-submitted in this run (parked by several consumers).
  returned: always
  type: int
passed_over:
  description: Records that did not match the filters (not re-submitted; a later run starts after them).
  returned: always
  type: int
erased:
  description: Matching records of erased data subjects (never re-submitted).
  returned: always
  type: int
reasons:
  description: Reason -> count of the matching records.
  returned: always
  type: dict
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.kafka import (
    HAS_CONFLUENT,
    admin_client,
    client_config,
    kafka_common_argument_spec,
    reported_errors,
)
from ansible_collections.analytics.platform.plugins.module_utils.privacy import subject_digest

if HAS_CONFLUENT:
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


def headers_of(msg) -> dict:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (msg.headers() or [])}


def matches(h: dict, p: dict) -> bool:
    if p["consumers"] and h.get("dlq-consumer") not in p["consumers"]:
        return False
    if p["stages"] and h.get("dlq-stage", "contract") not in p["stages"]:
        return False
    return p["reason_contains"] in h.get("dlq-reason", "")


def of_erased_subject(value, erased: set, key: str) -> bool:
    """The record is an event whose user_id or session_id is an erased subject's."""
    if not erased or not value:
        return False
    try:
        event = json.loads(value)
    except ValueError:  # not JSON: no subject can be named in it
        return False
    if not isinstance(event, dict):
        return False
    return any(
        isinstance(event.get(by), str) and subject_digest(key, by, event[by]) in erased
        for by in ("user_id", "session_id")
    )


def read_parked(consumer, p: dict, timeout: float) -> tuple[list, dict, dict]:
    """The dead-letter records from the start position to the end of each partition (read committed): the records,
    the offset this run started at and the next offset after what it read, per partition."""
    meta = consumer.list_topics(p["dlq_topic"], timeout=timeout).topics[p["dlq_topic"]]
    if meta.error is not None:
        raise RuntimeError(f"topic {p['dlq_topic']}: {meta.error.str()}")
    parts = [TopicPartition(p["dlq_topic"], n) for n in sorted(meta.partitions)]
    committed = {}
    if p["start"] == "committed":
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=timeout)}
    start, end = {}, {}
    for tp in parts:
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        end[tp.partition] = high
        start[tp.partition] = max(committed.get(tp.partition, -1), low)
    position = dict(start)
    todo = {n for n in end if start[n] < end[n]}
    consumer.assign([TopicPartition(p["dlq_topic"], n, start[n]) for n in todo])
    records = []
    idle_since = time.monotonic()
    while todo and len(records) < p["max_records"] and time.monotonic() - idle_since < 5:
        for msg in consumer.consume(num_messages=500, timeout=1):
            n = msg.partition()
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:  # the end (for read committed: the stable end)
                    todo.discard(n)
                continue
            idle_since = time.monotonic()
            if n not in todo or len(records) >= p["max_records"]:
                continue
            records.append(msg)
            position[n] = msg.offset() + 1
    return records, start, position


def main():
    spec = kafka_common_argument_spec()
    spec.update(
        dlq_topic={"type": "str", "default": "analytics-events-dlq"},
        topic={"type": "str", "default": "analytics-events"},
        group={"type": "str", "default": "dlq-replay"},
        start={"type": "str", "choices": ["committed", "earliest"], "default": "committed"},
        consumers={"type": "list", "elements": "str", "default": []},
        stages={"type": "list", "elements": "str", "choices": ["contract", "store"], "default": []},
        reason_contains={"type": "str", "default": ""},
        max_records={"type": "int", "default": 100000},
        transactional_id={"type": "str", "default": "dlq-replay"},
        erased_subjects={"type": "list", "elements": "str", "default": [], "no_log": False},
        erasure_key={"type": "str", "no_log": True},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    if p["max_records"] < 1:
        module.fail_json(msg=f"max_records must be at least 1 (got {p['max_records']})")
    if p["erased_subjects"] and not p["erasure_key"]:
        module.fail_json(msg="erasure_key is required with erased_subjects (the key of their HMACs)")
    erased_subjects = set(p["erased_subjects"])
    admin_client(module)  # fails with one line when the library or the login is missing
    timeout = p["request_timeout"]
    base = client_config(p)
    base.pop("socket.timeout.ms", None)
    with reported_errors(module, f"replay of {p['dlq_topic']}"):
        consumer = Consumer(
            {
                **base,
                "group.id": p["group"],
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        try:
            records, start, position = read_parked(consumer, p, timeout)
            chosen, seen, reasons = [], set(), {}
            duplicates = passed_over = erased = 0
            for msg in records:
                h = headers_of(msg)
                if not matches(h, p):
                    passed_over += 1
                    continue
                if of_erased_subject(msg.value(), erased_subjects, p["erasure_key"]):
                    erased += 1
                    continue
                source = h.get("dlq-source") or f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
                if source in seen:
                    duplicates += 1
                    continue
                seen.add(source)
                reasons[h.get("dlq-reason", "")] = reasons.get(h.get("dlq-reason", ""), 0) + 1
                chosen.append(msg)
            moved = position != start
            if not module.check_mode and (chosen or moved):
                producer = Producer({**base, "transactional.id": p["transactional_id"], "acks": "all"})
                producer.init_transactions(timeout)
                producer.begin_transaction()
                for msg in chosen:
                    replay_headers = [(k, v) for k, v in (msg.headers() or []) if not k.startswith("dlq-replayed")]
                    replay_headers.append(
                        ("dlq-replayed-from", f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode())
                    )
                    producer.produce(p["topic"], msg.value(), key=msg.key(), headers=replay_headers)
                offsets = [TopicPartition(p["dlq_topic"], n, o) for n, o in sorted(position.items()) if o > 0]
                producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), timeout)
                producer.commit_transaction(timeout)
        finally:
            consumer.close()
    module.exit_json(
        changed=bool(chosen) or moved,
        read=len(records),
        replayed=len(chosen),
        duplicates=duplicates,
        passed_over=passed_over,
        erased=erased,
        reasons=reasons,
        msg=f"{'would re-submit' if module.check_mode else 're-submitted'} {len(chosen)} of {len(records)} parked "
        f"records to {p['topic']}",
    )


if __name__ == "__main__":
    main()
