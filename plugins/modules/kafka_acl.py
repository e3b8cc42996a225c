#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: kafka_acl
short_description: Manage Kafka ACL bindings
description:
  - Ensures that each ACL binding in O(acls) is present or absent. Bindings not listed are left alone.
  - The platform's brokers run the StandardAuthorizer with C(allow.everyone.if.no.acl.found=false), so a principal can
    do exactly what its bindings allow.
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - analytics.platform.kafka
  - ansible.builtin.action_common_attributes
options:
  acls:
    description: ACL bindings.
    type: list
    elements: dict
    required: true
    suboptions:
      principal:
        description: Principal, for example C(User:analytics-api).
        type: str
        required: true
      resource_type:
        description: Kind of resource.
        type: str
        required: true
        choices: [topic, group, cluster, transactional_id]
      resource_name:
        description: Resource name (C(kafka-cluster) for the cluster).
        type: str
        required: true
      pattern_type:
        description: Whether O(acls[].resource_name) is a literal name or a prefix.
        type: str
        choices: [literal, prefixed]
        default: literal
      operation:
        description: Operation.
        type: str
        required: true
        choices: [all, read, write, create, delete, alter, describe, cluster_action, describe_configs,
                  alter_configs, idempotent_write]
      permission:
        description: Allow or deny.
        type: str
        choices: [allow, deny]
        default: allow
      host:
        description: Client host the binding applies to.
        type: str
        default: "*"
  state:
    description: Whether the bindings should exist.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: The ingest API may write the events topic and nothing else
  analytics.platform.kafka_acl:
    acls:
      - {principal: "User:analytics-api", resource_type: topic, resource_name: analytics-events, operation: write}
      - {principal: "User:analytics-api", resource_type: topic, resource_name: analytics-events, operation: describe}
    bootstrap_servers: [kafka-a:9092]
    login_user: admin
    login_password: "{{ vault_kafka_admin_password }}"
    ca_path: /etc/analytics-platform/pki/ca.crt
  delegate_to: localhost
"""

RETURN = r"""
added:
  description: Bindings created (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
removed:
  description: Bindings deleted (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
"""

import contextlib

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.kafka import (
    admin_client,
    kafka_common_argument_spec,
    reported_errors,
    wait,
)

with contextlib.suppress(ImportError):  # a missing library is reported by admin_client()
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

ACL_SPEC = {
    "principal": {"type": "str", "required": True},
    "resource_type": {"type": "str", "required": True, "choices": ["topic", "group", "cluster", "transactional_id"]},
    "resource_name": {"type": "str", "required": True},
    "pattern_type": {"type": "str", "default": "literal", "choices": ["literal", "prefixed"]},
    "operation": {
        "type": "str",
        "required": True,
        "choices": [
            "all",
            "read",
            "write",
            "create",
            "delete",
            "alter",
            "describe",
            "cluster_action",
            "describe_configs",
            "alter_configs",
            "idempotent_write",
        ],
    },
    "permission": {"type": "str", "default": "allow", "choices": ["allow", "deny"]},
    "host": {"type": "str", "default": "*"},
}


def key(acl):
    return (
        acl["principal"],
        acl["resource_type"],
        acl["resource_name"],
        acl["pattern_type"],
        acl["operation"],
        acl["permission"],
        acl["host"],
    )


def to_binding(acl):
    return AclBinding(
        ResourceType[acl["resource_type"].upper()],
        acl["resource_name"],
        ResourcePatternType[acl["pattern_type"].upper()],
        acl["principal"],
        acl["host"],
        AclOperation[acl["operation"].upper()],
        AclPermissionType[acl["permission"].upper()],
    )


def to_filter(acl):
    b = to_binding(acl)
    return AclBindingFilter(
        b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
    )


def from_binding(b):
    return {
        "principal": b.principal,
        "resource_type": b.restype.name.lower(),
        "resource_name": b.name,
        "pattern_type": b.resource_pattern_type.name.lower(),
        "operation": b.operation.name.lower(),
        "permission": b.permission_type.name.lower(),
        "host": b.host,
    }


def main():
    spec = kafka_common_argument_spec()
    spec.update(
        acls={"type": "list", "elements": "dict", "required": True, "options": ACL_SPEC},
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    timeout = p["request_timeout"]
    for a in p["acls"]:
        if a["resource_type"] == "cluster" and a["resource_name"] != "kafka-cluster":
            module.fail_json(msg=f"ACL for {a['principal']}: the cluster resource is named 'kafka-cluster'")
        if not a["principal"].startswith("User:"):
            module.fail_json(msg=f"ACL principal '{a['principal']}' must look like User:<name>")
    admin = admin_client(module)
    with reported_errors(module, "ACLs"):
        match_all = AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
        )
        existing = {key(from_binding(b)): b for b in wait(admin.describe_acls(match_all), timeout)}
        wanted = {key(a): a for a in p["acls"]}
        if p["state"] == "present":
            add = [a for k, a in wanted.items() if k not in existing]
            remove = []
        else:
            add = []
            remove = [a for k, a in wanted.items() if k in existing]
        if not module.check_mode:
            if add:
                wait(admin.create_acls([to_binding(a) for a in add]), timeout)
            if remove:
                wait(admin.delete_acls([to_filter(a) for a in remove]), timeout)
        changed = bool(add or remove)
        diff = {
            "before": sorted(" ".join(k) for k in existing if k in wanted),
            "after": sorted(" ".join(k) for k in wanted if p["state"] == "present"),
        }
        module.exit_json(changed=changed, added=add, removed=remove, diff=diff if changed else {})


if __name__ == "__main__":
    main()
