#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: kafka_user
short_description: Manage a Kafka SCRAM user (create, rotate the password, remove)
description:
  - Creates or removes the SCRAM credential of a user in a KRaft cluster.
  - With O(update_password=always) (the default) the module first tries to authenticate as the user with O(password);
    only when that fails is the credential rotated, so a run with an unchanged password changes nothing.
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - analytics.platform.kafka
  - ansible.builtin.action_common_attributes
options:
  name:
    description: User name.
    type: str
    required: true
  password:
    description: The user's password. Required with O(state=present).
    type: str
  state:
    description: Whether the credential should exist.
    type: str
    choices: [present, absent]
    default: present
  mechanism:
    description: SCRAM mechanism of the credential.
    type: str
    choices: [SCRAM-SHA-512, SCRAM-SHA-256]
    default: SCRAM-SHA-512
  iterations:
    description: SCRAM iterations (4096 or more).
    type: int
    default: 8192
  update_password:
    description:
      - C(always) sets the password when the user cannot authenticate with it (rotation).
      - C(on_create) sets it only when the credential does not exist.
    type: str
    choices: [always, on_create]
    default: always
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: The ingest API's user
  analytics.platform.kafka_user:
    name: analytics-api
    password: "{{ vault_kafka_analytics_api_password }}"
    bootstrap_servers: [kafka-a:9092]
    login_user: admin
    login_password: "{{ vault_kafka_admin_password }}"
    ca_path: /etc/analytics-platform/pki/ca.crt
  delegate_to: localhost
  no_log: true
"""

RETURN = r"""
user:
  description: The user name and what happened to its credential.
  returned: always
  type: dict
  sample: {"name": "analytics-api", "mechanism": "SCRAM-SHA-512", "action": "created"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.kafka import (
    admin_client,
    can_authenticate,
    error_text,
    kafka_common_argument_spec,
    reported_errors,
    wait,
)

try:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )
except ImportError:  # reported by admin_client()
    pass


# update_password values under which a password the user cannot log in with is rotated.
ROTATE_MODES = frozenset({"always"})


def has_credential(admin, name, mechanism, timeout):
    try:
        result = wait(admin.describe_user_scram_credentials([name]), timeout)
    except KafkaException as e:
        if "RESOURCE_NOT_FOUND" in error_text(e):
            return False
        raise
    desc = result[name] if isinstance(result, dict) else result
    infos = getattr(desc, "scram_credential_infos", []) or []
    return any(i.mechanism == mechanism for i in infos)


def main():
    spec = kafka_common_argument_spec()
    spec.update(
        name={"type": "str", "required": True},
        password={"type": "str", "no_log": True},
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
        mechanism={"type": "str", "default": "SCRAM-SHA-512", "choices": ["SCRAM-SHA-512", "SCRAM-SHA-256"]},
        iterations={"type": "int", "default": 8192},
        update_password={"type": "str", "default": "always", "choices": ["always", "on_create"], "no_log": False},
    )
    module = AnsibleModule(
        argument_spec=spec, supports_check_mode=True, required_if=[("state", "present", ("password",))]
    )
    p = module.params
    name, timeout = p["name"], p["request_timeout"]
    if p["iterations"] < 4096:
        module.fail_json(msg=f"user '{name}': iterations must be 4096 or more")
    mechanism = ScramMechanism.SCRAM_SHA_512 if p["mechanism"] == "SCRAM-SHA-512" else ScramMechanism.SCRAM_SHA_256
    admin = admin_client(module)
    with reported_errors(module, f"user '{name}'"):
        exists = has_credential(admin, name, mechanism, timeout)
        action = None
        if p["state"] == "absent":
            if exists:
                action = "removed"
                if not module.check_mode:
                    wait(admin.alter_user_scram_credentials([UserScramCredentialDeletion(name, mechanism)]), timeout)
        else:
            if not exists:
                action = "created"
            elif p["update_password"] in ROTATE_MODES and not can_authenticate(p, name, p["password"]):
                action = "rotated"
            if action and not module.check_mode:
                info = ScramCredentialInfo(mechanism, p["iterations"])
                upsert = UserScramCredentialUpsertion(name, info, p["password"].encode())
                wait(admin.alter_user_scram_credentials([upsert]), timeout)
        module.exit_json(
            changed=action is not None, user={"name": name, "mechanism": p["mechanism"], "action": action or "none"}
        )


if __name__ == "__main__":
    main()
