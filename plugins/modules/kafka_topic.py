#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: kafka_topic
short_description: Create, grow, configure or delete a Kafka topic
description:
  - Creates a topic with a partition count, replication factor and topic configuration.
  - On an existing topic, raises the partition count and sets the configuration keys given (others are left alone).
  - Refuses to decrease the partition count or to change the replication factor, with an error naming the topic;
    nothing is changed then.
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - analytics.platform.kafka
  - ansible.builtin.action_common_attributes
options:
  name:
    description: Topic name.
    type: str
    required: true
  state:
    description: Whether the topic should exist.
    type: str
    choices: [present, absent]
    default: present
  partitions:
    description: Partition count. Required to create a topic; may only grow.
    type: int
  replication_factor:
    description: Replication factor at creation. Cannot be changed on an existing topic by this module.
    type: int
  config:
    description: Topic configuration keys and values (for example C(retention.ms)). Values are compared as strings.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: The events topic, as the production guide sizes it
  analytics.platform.kafka_topic:
    name: analytics-events
    partitions: 10
    replication_factor: 3
    config:
      retention.ms: "604800000"
      segment.bytes: "1073741824"
      compression.type: zstd
      min.insync.replicas: "2"
    bootstrap_servers: [kafka-a:9092]
    login_user: admin
    login_password: "{{ vault_kafka_admin_password }}"
    ca_path: /etc/analytics-platform/pki/ca.crt
  delegate_to: localhost
"""

RETURN = r"""
topic:
  description: The topic after the change (in check mode, as it would be).
  returned: when state is present
  type: dict
  sample:
    name: analytics-events
    partitions: 10
    replication_factor: 3
    config: {"retention.ms": "604800000"}
diff:
  description: Partitions and configuration before and after.
  returned: when changed
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.kafka import (
    admin_client,
    kafka_common_argument_spec,
    reported_errors,
    wait,
)

try:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourceType,
    )
except ImportError:  # reported by admin_client()
    pass


def describe(admin, name, timeout):
    md = admin.list_topics(topic=name, timeout=timeout)
    t = md.topics.get(name)
    if t is None or (t.error is not None and t.error.code() == 3):  # UNKNOWN_TOPIC_OR_PART
        return None
    if t.error is not None:
        raise KafkaException(t.error)
    rfs = {len(p.replicas) for p in t.partitions.values()}
    res = ConfigResource(ResourceType.TOPIC, name)
    entries = wait(admin.describe_configs([res]), timeout)[res]
    config = {k: v.value for k, v in entries.items()}
    rf = max(rfs) if rfs else 0
    return {"name": name, "partitions": len(t.partitions), "replication_factor": rf, "config": config}


def main():
    spec = kafka_common_argument_spec()
    spec.update(
        name={"type": "str", "required": True},
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
        partitions={"type": "int"},
        replication_factor={"type": "int"},
        config={"type": "dict", "default": {}},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    name, timeout = p["name"], p["request_timeout"]
    wanted_config = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in p["config"].items()}
    admin = admin_client(module)
    with reported_errors(module, f"topic '{name}'"):
        current = describe(admin, name, timeout)
        if p["state"] == "absent":
            if current is None:
                module.exit_json(changed=False)
            if not module.check_mode:
                wait(admin.delete_topics([name], operation_timeout=timeout), timeout)
            module.exit_json(changed=True, diff={"before": {"name": name}, "after": {}})

        if current is None:
            if not p["partitions"] or not p["replication_factor"]:
                module.fail_json(msg=f"topic '{name}' does not exist: partitions and replication_factor are required")
            topic = {
                "name": name,
                "partitions": p["partitions"],
                "replication_factor": p["replication_factor"],
                "config": wanted_config,
            }
            if not module.check_mode:
                new = NewTopic(name, p["partitions"], p["replication_factor"], config=wanted_config)
                wait(admin.create_topics([new], operation_timeout=timeout), timeout)
            module.exit_json(changed=True, topic=topic, diff={"before": {}, "after": topic})

        # Validate everything before changing anything.
        if p["partitions"] is not None and p["partitions"] < current["partitions"]:
            module.fail_json(
                msg=f"refusing to decrease the partitions of topic '{name}' from {current['partitions']} to "
                f"{p['partitions']}: Kafka cannot remove partitions (create a new topic instead)"
            )
        if p["replication_factor"] is not None and p["replication_factor"] != current["replication_factor"]:
            module.fail_json(
                msg=f"topic '{name}' has replication factor {current['replication_factor']}, not "
                f"{p['replication_factor']}: changing it needs a partition reassignment, which this module does not do"
            )
        grow = p["partitions"] is not None and p["partitions"] > current["partitions"]
        unknown = sorted(k for k in wanted_config if k not in current["config"])
        if unknown:
            module.fail_json(msg=f"topic '{name}': unknown configuration key(s) {', '.join(unknown)}")
        alter = {k: v for k, v in wanted_config.items() if current["config"].get(k) != v}
        after = dict(current, config=dict(current["config"], **alter))
        if grow:
            after["partitions"] = p["partitions"]
        changed = bool(grow or alter)
        if changed and not module.check_mode:
            if alter:
                res = ConfigResource(
                    ResourceType.TOPIC,
                    name,
                    incremental_configs=[
                        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in alter.items()
                    ],
                )
                wait(admin.incremental_alter_configs([res]), timeout)
            if grow:
                grown = NewPartitions(name, p["partitions"])
                wait(admin.create_partitions([grown], operation_timeout=timeout), timeout)
        keys = set(alter)
        diff = {
            "before": {"partitions": current["partitions"], "config": {k: current["config"].get(k) for k in keys}},
            "after": {"partitions": after["partitions"], "config": {k: after["config"][k] for k in keys}},
        }
        module.exit_json(changed=changed, topic=after, diff=diff if changed else {})


if __name__ == "__main__":
    main()
