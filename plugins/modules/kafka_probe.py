#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: kafka_probe
short_description: Probe Kafka listeners for the security audit (no PLAINTEXT, TLS, the SASL mechanisms offered)
description:
  - Speaks Kafka's wire protocol from where the task runs, without credentials. For each O(brokers) entry and each
    port in O(ports), an ApiVersions request in plain text must get no answer (no PLAINTEXT listener); on
    O(sasl_port), the TLS handshake must verify against O(ca_path) and a SaslHandshake must offer only
    O(allowed_mechanisms).
  - Returns one C(kafka_sasl_ssl) audit result per broker (target C(listeners), reported on the broker), with
    evidence. Read-only and safe in check mode; a broker
    that does not answer on O(sasl_port) is an C(error).
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - analytics.platform.probe
options:
  brokers:
    description: Broker addresses (names or IPs; the certificate must carry the name used).
    type: list
    elements: str
    required: true
  sasl_port:
    description: The SASL_SSL client port.
    type: int
    default: 9092
  ports:
    description: Ports that must not answer Kafka in plain text (client, controller and any others).
    type: list
    elements: int
    default: [9092, 9093]
  ca_path:
    description: CA bundle.
    type: path
    required: true
  allowed_mechanisms:
    description: The SASL mechanisms the brokers may offer.
    type: list
    elements: str
    default: [SCRAM-SHA-512]
  timeout:
    description: Seconds per connection.
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: Probe the brokers
  analytics.platform.kafka_probe:
    brokers: [kafka-a, kafka-b, kafka-c]
    ca_path: /etc/analytics-platform/pki/ca.crt
"""

RETURN = r"""
audit:
  description: One kafka_sasl_ssl result per broker (control, status, reason, evidence).
  returned: always
  type: list
"""

import socket
import ssl
import struct
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result as _result
from ansible_collections.analytics.platform.plugins.module_utils.audit_wire import kafka_frame as frame
from ansible_collections.analytics.platform.plugins.module_utils.audit_wire import kafka_read as read_response

TARGET = "listeners"


def result(control, status, reason, **evidence):
    return dict(_result(control, status, reason, TARGET, **evidence), host=evidence["broker"])


def plaintext_answers(host: str, port: int, timeout: float) -> str:
    """'answers', 'silent' (connection open but no Kafka answer) or 'closed' (nothing listening)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return "closed"
    try:
        sock.sendall(frame(18, 0, 7))
        data = read_response(sock)
        return "answers" if struct.unpack("!i", data[:4])[0] == 7 else "silent"
    except (OSError, ConnectionError):
        return "silent"
    finally:
        sock.close()


def sasl_mechanisms(host: str, port: int, ca_path: str, timeout: float) -> tuple[str, list[str]]:
    ctx = ssl.create_default_context(cafile=ca_path)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as s,
    ):
        mechanism = b"AUDIT-PROBE"
        s.sendall(frame(17, 1, 9, struct.pack("!h", len(mechanism)) + mechanism))
        data = read_response(s)
        _corr, _err, count = struct.unpack("!ihi", data[:10])
        offset, names = 10, []
        for _n in range(max(count, 0)):
            (n,) = struct.unpack("!h", data[offset : offset + 2])
            names.append(data[offset + 2 : offset + 2 + n].decode())
            offset += 2 + n
        return s.version(), names


def probe_broker(p: dict, host: str) -> dict:
    ports = p["ports"]
    with ThreadPoolExecutor(max_workers=max(len(ports), 1)) as pool:
        states = pool.map(lambda port: plaintext_answers(host, port, p["timeout"]), ports)
        plain = dict(zip(ports, states, strict=True))
    ev = {"broker": host, "plaintext": {str(k): v for k, v in plain.items()}}
    answering = [port for port, state in plain.items() if state == "answers"]
    try:
        protocol, mechanisms = sasl_mechanisms(host, p["sasl_port"], p["ca_path"], p["timeout"])
    except ssl.SSLError as e:
        ev["tls_error"] = str(e)
        return result(
            "kafka_sasl_ssl",
            "fail",
            f"{host}:{p['sasl_port']}: no verified TLS ({e.reason or e})"
            + (f"; PLAINTEXT answers on {answering}" if answering else ""),
            **ev,
        )
    except (OSError, ConnectionError, struct.error) as e:
        ev["error"] = str(e)
        if answering:
            return result("kafka_sasl_ssl", "fail", f"{host}: PLAINTEXT answers on {answering}", **ev)
        return result("kafka_sasl_ssl", "error", f"{host}:{p['sasl_port']} did not answer: {e}", **ev)
    ev.update(tls_protocol=protocol, mechanisms=mechanisms)
    problems = []
    if answering:
        problems.append(f"PLAINTEXT answers on {answering}")
    extra = sorted(set(mechanisms) - set(p["allowed_mechanisms"]))
    if extra or not mechanisms:
        problems.append(f"SASL offers {mechanisms} (allowed: {p['allowed_mechanisms']})")
    if problems:
        return result("kafka_sasl_ssl", "fail", f"{host}: " + "; ".join(problems), **ev)
    reason = f"{host}: SASL_SSL ({protocol}) offering {', '.join(mechanisms)}; no PLAINTEXT answer"
    return result("kafka_sasl_ssl", "pass", reason, **ev)


def main():
    module = AnsibleModule(
        argument_spec={
            "brokers": {"type": "list", "elements": "str", "required": True},
            "sasl_port": {"type": "int", "default": 9092},
            "ports": {"type": "list", "elements": "int", "default": [9092, 9093]},
            "ca_path": {"type": "path", "required": True},
            "allowed_mechanisms": {"type": "list", "elements": "str", "default": ["SCRAM-SHA-512"]},
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    # The brokers concurrently: a TLS listener given a plain-text frame may stay silent for the whole timeout.
    brokers = module.params["brokers"]
    with ThreadPoolExecutor(max_workers=max(len(brokers), 1)) as pool:
        audit = list(pool.map(lambda b: probe_broker(module.params, b), brokers))
    module.exit_json(changed=False, audit=audit)


if __name__ == "__main__":
    main()
