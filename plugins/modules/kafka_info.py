#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: kafka_info
short_description: Read the state of a Kafka cluster (brokers, racks, replication health, consumer lag)
description:
  - Read-only. Returns the cluster id, the active controller, the brokers with their racks, per-topic partition and
    replication health (under-replicated and offline partitions), and optionally the lag of consumer groups.
  - Used by the rolling restart (wait until nothing is under-replicated) and by the audit.
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - analytics.platform.kafka
  - ansible.builtin.action_common_attributes
options:
  topics:
    description: Topics to report on; empty reports every topic.
    type: list
    elements: str
    default: []
  groups:
    description: Consumer groups whose lag to report (summed over the partitions of O(topics)).
    type: list
    elements: str
    default: []
  record_ends:
    description:
      - With O(groups), RV(end_offsets) are the offsets after each partition's last record a consumer receives
        (read_committed), instead of the high watermarks. A transactional producer ends each transaction with a
        commit marker that takes an offset but is never delivered, so a consumer that processed everything may commit
        one short of the high watermark; this is where it must have committed.
    type: bool
    default: false
  reached:
    description:
      - Offsets each of O(groups) must have committed, as RV(end_offsets) returns them (topic, then partition, then
        offset); RV(behind) says how many records each group still has to commit to get there. Used by
        playbooks/privacy_erase.yml to wait until the sinks hold every event Kafka received before the erasure.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Wait until no partition is under-replicated
  analytics.platform.kafka_info:
    bootstrap_servers: [kafka-a:9092]
    login_user: admin
    login_password: "{{ vault_kafka_admin_password }}"
    ca_path: /etc/analytics-platform/pki/ca.crt
  register: cluster
  until: cluster.under_replicated_partitions == 0
  retries: 60
  delay: 5
  delegate_to: localhost
"""

RETURN = r"""
cluster_id:
  description: The cluster id.
  returned: always
  type: str
controller:
  description: Node id of the active controller.
  returned: always
  type: int
brokers:
  description: Brokers with id, host, port and rack.
  returned: always
  type: list
  elements: dict
topics:
  description: Per topic, partitions, replication factor, under-replicated and offline partition counts.
  returned: always
  type: dict
under_replicated_partitions:
  description: Partitions whose in-sync replicas are fewer than their replicas, over the reported topics.
  returned: always
  type: int
offline_partitions:
  description: Partitions without a leader, over the reported topics.
  returned: always
  type: int
end_offsets:
  description: With O(groups), topic -> partition -> the offset the next record will get.
  returned: when groups are given
  type: dict
behind:
  description: With O(reached), consumer group -> records it still has to commit to reach those offsets.
  returned: when reached is given
  type: dict
lag:
  description: Consumer group -> total lag (end offset minus committed offset) over the reported topics.
  returned: when groups are given
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.kafka import (
    admin_client,
    client_config,
    kafka_common_argument_spec,
    reported_errors,
    wait,
)

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
    from confluent_kafka.admin import OffsetSpec
except ImportError:  # reported by admin_client()
    pass

# A group's coordinator moves (a broker restarting, the offsets topic being created or loaded): asked again.
MOVING_COORDINATOR = ("NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE")


def committed_offsets(reader, tps, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return reader.committed(tps, timeout=timeout)
        except KafkaException as e:
            if e.args[0].name() not in MOVING_COORDINATOR or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def record_ends(conf: dict, high: dict, timeout: float) -> dict:
    """(topic, partition) -> the offset after the last record below `high` that a read_committed consumer receives
    (transaction markers and aborted records are never delivered), read backwards in growing windows."""
    reader = Consumer(
        {
            **conf,
            "group.id": "analytics-platform-kafka-info",  # assigned partitions only: the group is never joined
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    out = {}
    try:
        for (topic, part), end in high.items():
            low, _high = reader.get_watermark_offsets(TopicPartition(topic, part), timeout=timeout)
            found, start, window = None, end, 16
            while found is None and start > low:
                start = max(low, start - window)
                window *= 4
                found = last_below(reader, TopicPartition(topic, part, start), end, timeout)
            out[(topic, part)] = found + 1 if found is not None else low
    finally:
        reader.close()
    return out


def last_below(reader, tp, end: int, timeout: float):
    """The offset of the last record from tp's offset up to (not including) `end` the reader receives, or None."""
    reader.assign([tp])
    last, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = reader.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                return last
            raise KafkaException(m.error())
        if m.offset() >= end:
            return last
        last = m.offset()
    raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"reading {tp.topic}[{tp.partition}] took over {timeout} s"))


def main():
    spec = kafka_common_argument_spec()
    spec.update(
        topics={"type": "list", "elements": "str", "default": []},
        groups={"type": "list", "elements": "str", "default": []},
        reached={"type": "dict", "default": {}},
        record_ends={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    timeout = p["request_timeout"]
    admin = admin_client(module)
    with reported_errors(module, "kafka_info"):
        cluster = wait(admin.describe_cluster(), timeout)
        brokers = sorted(
            ({"id": n.id, "host": n.host, "port": n.port, "rack": n.rack} for n in cluster.nodes), key=lambda b: b["id"]
        )
        names = p["topics"] or sorted(t for t in admin.list_topics(timeout=timeout).topics if not t.startswith("__"))
        described = wait(admin.describe_topics(TopicCollection(names)), timeout) if names else {}
        topics, urp, offline, partitions_of = {}, 0, 0, {}
        for name, d in described.items():
            t_urp = sum(1 for part in d.partitions if len(part.isr) < len(part.replicas))
            t_off = sum(1 for part in d.partitions if part.leader is None or part.leader.id < 0)
            racks = sorted({r.rack for part in d.partitions for r in part.replicas if r.rack})
            topics[name] = {
                "partitions": len(d.partitions),
                "replication_factor": max((len(part.replicas) for part in d.partitions), default=0),
                "under_replicated": t_urp,
                "offline": t_off,
                "racks": racks,
            }
            partitions_of[name] = [part.id for part in d.partitions]
            urp += t_urp
            offline += t_off
        result = {
            "changed": False,
            "cluster_id": cluster.cluster_id,
            "controller": cluster.controller.id if cluster.controller else -1,
            "brokers": brokers,
            "topics": topics,
            "under_replicated_partitions": urp,
            "offline_partitions": offline,
        }
        if p["groups"]:
            tps = [TopicPartition(t, i) for t, ids in partitions_of.items() for i in ids]
            ends = wait(admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}), timeout) if tps else {}
            end_of = {(tp.topic, tp.partition): r.offset for tp, r in ends.items()}
            if p["record_ends"]:
                end_of = record_ends(client_config(p), end_of, timeout)
            lag, behind = {}, {}
            for g in p["groups"]:
                # A consumer that never joins the group only reads its committed offsets (OffsetFetch). The admin
                # client's list_consumer_group_offsets crashes the process with confluent-kafka 2.16 (segfault).
                reader = Consumer({**client_config(p), "group.id": g, "enable.auto.commit": False})
                try:
                    committed = committed_offsets(reader, tps, timeout) if tps else []
                finally:
                    reader.close()
                total = 0
                at = {}
                for tp in committed:
                    end = end_of.get((tp.topic, tp.partition), 0)
                    total += end - tp.offset if tp.offset >= 0 else end
                    at[(tp.topic, tp.partition)] = max(tp.offset, 0)
                lag[g] = total
                behind[g] = sum(
                    max(0, int(offset) - at.get((topic, int(part)), 0))
                    for topic, parts in p["reached"].items()
                    for part, offset in (parts or {}).items()
                )
            result["lag"] = lag
            result["end_offsets"] = {}
            for (topic, part), end in sorted(end_of.items()):
                result["end_offsets"].setdefault(topic, {})[str(part)] = end
            if p["reached"]:
                result["behind"] = behind
        module.exit_json(**result)


if __name__ == "__main__":
    main()
