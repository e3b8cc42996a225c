#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: kafka_access
short_description: Audit probe - Kafka refuses its well-known default logins and denies what no ACL allows
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
description:
  - Read-only probe for C(playbooks/audit.yml), run where the Kafka client library is (usually the controller).
  - "Default logins: tries each of O(default_logins) over SASL; every one must be refused (control
    C(default_passwords)). A cluster that answers unauthenticated PLAINTEXT clients fails this too: it needs no login."
  - "ACL default deny: as O(login_user), a service user that is not a super user, asks for the metadata of a topic
    nobody has an ACL for (a fresh random name that does not exist). With C(allow.everyone.if.no.acl.found=false) the
    broker answers TOPIC_AUTHORIZATION_FAILED; UNKNOWN_TOPIC_OR_PART means anything without an ACL is open to everyone
    (control C(kafka_sasl_ssl)). Nothing is created: the admin client never asks for automatic topic creation."
  - When a SASL_SSL connection is impossible, the probe tries PLAINTEXT once, so an insecure cluster is reported as a
    failure with evidence rather than as unreachable.
  - Each result has C(control), C(status) (pass, fail or error), C(reason) and C(evidence).
extends_documentation_fragment:
  - analytics.platform.kafka
  - ansible.builtin.action_common_attributes
  - analytics.platform.probe
options:
  default_logins:
    description:
      - Logins that must not work (user and password pairs from documentation and images), tried from where the
        module runs. Empty skips them (the audit tries them with audit_logins from outside and from an application
        host).
    type: list
    elements: dict
    default:
      - {user: admin, password: admin}
      - {user: admin, password: admin-secret}
      - {user: admin, password: password}
      - {user: kafka, password: kafka}
      - {user: kafka, password: kafka-secret}
      - {user: alice, password: alice-secret}
      - {user: client, password: client-secret}
  cluster:
    description: Name of the cluster in the results' reasons.
    type: str
    required: true
  host:
    description: The inventory host the results are reported on (each result gets C(host)); none when empty.
    type: str
"""

EXAMPLES = r"""
- name: Probe default logins and the ACL default
  analytics.platform.kafka_access:
    cluster: kafka-a
    bootstrap_servers: [kafka-a:9092]
    login_user: analytics-api
    login_password: "{{ analytics_api_kafka_password }}"
    ca_path: /home/ops/.analytics-platform/pki/ca.crt
  delegate_to: localhost
  register: kafka_access
"""

RETURN = r"""
audit:
  description: One result for default logins (default_passwords) and one for the ACL default (kafka_sasl_ssl).
  returned: always
  type: list
  elements: dict
"""

import contextlib
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils import audit_wire as wire
from ansible_collections.analytics.platform.plugins.module_utils.audit import result
from ansible_collections.analytics.platform.plugins.module_utils.kafka import (
    admin_client,
    can_authenticate,
    error_text,
    kafka_common_argument_spec,
)

with contextlib.suppress(ImportError):  # a missing library is reported by admin_client()
    from confluent_kafka import KafkaException

TARGET = "ACL default deny"
DEFAULT_LOGINS = [
    {"user": "admin", "password": "admin"},
    {"user": "admin", "password": "admin-secret"},
    {"user": "admin", "password": "password"},
    {"user": "kafka", "password": "kafka"},
    {"user": "kafka", "password": "kafka-secret"},
    {"user": "alice", "password": "alice-secret"},
    {"user": "client", "password": "client-secret"},
]


def accepts_login(p: dict, user: str, password: str) -> bool:
    """Whether a login works. SCRAM over SASL_SSL is spoken directly (module_utils/audit_wire: one round trip, where a
    refused login through librdkafka waits out its timeout); anything else goes through librdkafka."""
    if p["security_protocol"] == "SASL_SSL" and p["sasl_mechanism"].startswith("SCRAM"):
        host, _unused, port = p["bootstrap_servers"][0].rpartition(":")
        verdict, _detail = wire.kafka_login(
            host, int(port), user, password, p.get("ca_path"), p["sasl_mechanism"], min(p["request_timeout"], 15)
        )
        return verdict == "accepted"
    return can_authenticate(p, user, password)


def default_logins(p: dict, plaintext_open: bool) -> dict:
    name, tried = p["cluster"], [d["user"] for d in p["default_logins"]]
    if plaintext_open:
        reason = f"{name}: Kafka accepts PLAINTEXT clients without any login"
        return result(
            "default_passwords",
            "fail",
            reason,
            "kafka logins from the controller",
            component="kafka",
            tried=tried,
            plaintext=True,
        )
    accepted, errors = [], []
    for d in p["default_logins"]:
        try:
            if accepts_login(p, d["user"], d["password"]):
                accepted.append(f"{d['user']}/{d['password']}")
        except Exception as e:  # the cluster did not answer this attempt
            errors.append(f"{d['user']}: {error_text(e)}")
    ev = {"component": "kafka", "tried": tried, "accepted": accepted, "errors": errors}
    target = "kafka logins from the controller"
    if accepted:
        reason = f"{name}: Kafka accepts default logins: {', '.join(accepted)}"
        return result("default_passwords", "fail", reason, target, **ev)
    if errors:
        reason = f"{name}: could not try every default login: {errors[0]}"
        return result("default_passwords", "error", reason, target, **ev)
    reason = f"{name}: Kafka refuses the {len(tried)} default logins tried"
    return result("default_passwords", "pass", reason, target, **ev)


def acl_default(module, p: dict, user: "str | None") -> dict:
    """Metadata for a topic that does not exist and that nobody has an ACL for: a broker that denies by default answers
    TOPIC_AUTHORIZATION_FAILED; one that lets everyone at what no ACL covers answers UNKNOWN_TOPIC_OR_PART. Nothing is
    created (the admin client never asks for automatic topic creation)."""
    name, topic = p["cluster"], f"audit-probe-{uuid.uuid4().hex[:12]}"
    ev = {"check": "acl_default_deny", "as": user or "ANONYMOUS (PLAINTEXT)", "topic": topic}
    admin = admin_client(module)
    try:
        meta = admin.list_topics(topic=topic, timeout=p["request_timeout"])
    except KafkaException as e:
        ev["answer"] = text = error_text(e)
        return result("kafka_sasl_ssl", "error", f"{name}: the ACL probe got no metadata: {text}", TARGET, **ev)
    err = meta.topics[topic].error if topic in meta.topics else None
    ev["answer"] = text = err.name() if err is not None else "described"
    if text == "TOPIC_AUTHORIZATION_FAILED":
        reason = f"{name}: a topic without ACLs is denied to {ev['as']} (TOPIC_AUTHORIZATION_FAILED)"
        return result("kafka_sasl_ssl", "pass", reason, TARGET, **ev)
    if text in ("UNKNOWN_TOPIC_OR_PART", "described"):
        reason = (
            f"{name}: {ev['as']} may describe topic {topic}, which has no ACL ({text}): "
            "allow.everyone.if.no.acl.found is on or no authorizer is configured"
        )
        return result("kafka_sasl_ssl", "fail", reason, TARGET, **ev)
    return result("kafka_sasl_ssl", "error", f"{name}: the ACL probe got an unexpected answer: {text}", TARGET, **ev)


def main():
    spec = kafka_common_argument_spec()
    spec.update(
        # Well-known public values; the evidence names them on purpose.
        default_logins={"type": "list", "elements": "dict", "no_log": False, "default": DEFAULT_LOGINS},
        cluster={"type": "str", "required": True},
        host={"type": "str"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        login_works = can_authenticate(p, p["login_user"] or "", p["login_password"] or "")
        secure = True
    except Exception as e:  # not even a SASL_SSL handshake: is the cluster open over PLAINTEXT?
        login_works, secure = False, False
        first_error = f"{p['security_protocol']} to {', '.join(p['bootstrap_servers'])}: {error_text(e)}"
        p.update(security_protocol="PLAINTEXT", login_user=None, login_password=None)
        try:
            admin_client(module).list_topics(timeout=min(p["request_timeout"], 10))
        except Exception as e2:
            reason = f"{p['cluster']}: the cluster did not answer ({first_error}; PLAINTEXT: {error_text(e2)})"
            errors = [result("kafka_sasl_ssl", "error", reason, TARGET, check="acl_default_deny")]
            if p["default_logins"]:
                errors.append(
                    result("default_passwords", "error", reason, "kafka logins from the controller", component="kafka")
                )
            module.exit_json(changed=False, audit=labelled(errors, p))
    if secure and not login_works:
        reason = f"{p['cluster']}: the probe's own login ({p['login_user']}) was refused"
        acl = result("kafka_sasl_ssl", "error", reason, TARGET, check="acl_default_deny", user=p["login_user"])
    else:
        acl = acl_default(module, p, p["login_user"] if secure else None)
    out = [acl] + ([default_logins(p, not secure)] if p["default_logins"] else [])
    module.exit_json(changed=False, audit=labelled(out, p))


def labelled(results: list[dict], p: dict) -> list[dict]:
    """The results on O(host) when it is given."""
    return [dict(r, host=p["host"]) for r in results] if p["host"] else results


if __name__ == "__main__":
    main()
