#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: tls_probe
short_description: Probe a TLS endpoint for the security audit
description:
  - Connects to O(host):O(port) from where the task runs and reports, as evidence, the negotiated protocol and cipher,
    whether the chain verifies against O(ca_path) and the name matches O(server_name), the days until the certificate
    expires, and whether protocols below O(min_protocol) are refused.
  - Read-only and safe in check mode. Never fails the task for what it finds; the result's C(status) says
    C(pass), C(fail) or C(error) (the endpoint did not answer).
  - PostgreSQL negotiates TLS inside its own protocol; set O(protocol=postgres) for it.
version_added: 0.1.0
author: analytics.platform contributors
options:
  host:
    description: Address or name to connect to.
    type: str
    required: true
  port:
    description: TCP port.
    type: int
    required: true
  server_name:
    description: The name the certificate must carry (SNI and hostname check). Defaults to O(host).
    type: str
  ca_path:
    description: CA bundle the chain must verify against (on the host the task runs on).
    type: path
    required: true
  protocol:
    description: C(tls) for TLS from the first byte, C(postgres) for PostgreSQL's SSLRequest.
    type: str
    choices: [tls, postgres]
    default: tls
  min_protocol:
    description: The protocol floor; older protocols must be refused.
    type: str
    choices: [TLSv1.2, TLSv1.3]
    default: TLSv1.2
  min_days:
    description: The certificate must stay valid at least this many days.
    type: int
    default: 14
  timeout:
    description: Seconds to wait for the connection and the handshake.
    type: float
    default: 5
  control:
    description: The control name reported with the result.
    type: str
    default: tls
"""

EXAMPLES = r"""
- name: Probe the API's TLS from the load balancer
  analytics.platform.tls_probe:
    host: app-a
    port: 3001
    ca_path: /etc/analytics-platform/pki/ca.crt
  register: api_tls
"""

RETURN = r"""
audit:
  description: The audit result (control, status, reason, evidence).
  returned: always
  type: dict
  sample:
    control: tls
    status: pass
    reason: TLSv1.3 with a chain that verifies, 364 days left, TLSv1.1 refused
    evidence:
      endpoint: "app-a:3001"
      protocol: TLSv1.3
      verified: true
      days_left: 364
      refused_below_floor: [TLSv1, TLSv1.1]
"""

import socket
import ssl
import struct
import time
import warnings

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
ORDER = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
SSL_REQUEST = struct.pack("!II", 8, 80877103)


def _connect(p, ctx, server_name):
    sock = socket.create_connection((p["host"], p["port"]), timeout=p["timeout"])
    try:
        if p["protocol"] == "postgres":
            sock.sendall(SSL_REQUEST)
            answer = sock.recv(1)
            if answer != b"S":
                raise ConnectionError(f"the server refused TLS (answered {answer!r} to SSLRequest)")
        return ctx.wrap_socket(sock, server_hostname=server_name)
    except BaseException:
        sock.close()
        raise


def probe(p: dict) -> dict:
    server_name = p["server_name"] or p["host"]
    endpoint = f"{p['host']}:{p['port']}"
    evidence = {"endpoint": endpoint, "server_name": server_name, "ca_path": p["ca_path"]}
    ctx = ssl.create_default_context(cafile=p["ca_path"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        with _connect(p, ctx, server_name) as tls:
            evidence.update(protocol=tls.version(), cipher=tls.cipher()[0], verified=True)
            cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as e:
        evidence.update(verified=False, verify_error=e.verify_message or str(e))
        return result(p["control"], "fail", f"{endpoint}: the certificate does not verify ({e.verify_message})",
                      **evidence)  # fmt: skip
    except ssl.SSLError as e:
        evidence.update(error=str(e))
        return result(p["control"], "fail", f"{endpoint}: no TLS 1.2+ handshake ({e.reason or e})", **evidence)
    except (OSError, ConnectionError) as e:
        evidence.update(error=str(e))
        if isinstance(e, ConnectionError) and "refused TLS" in str(e):
            return result(p["control"], "fail", f"{endpoint}: {e}", **evidence)
        return result(p["control"], "error", f"{endpoint} did not answer: {e}", **evidence)

    days_left = int((ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) // 86400)
    evidence["days_left"] = days_left
    evidence["not_after"] = cert["notAfter"]

    # Protocols below the floor must be refused. The probe offers them on purpose (security level 0).
    floor = ORDER.index(p["min_protocol"])
    accepted, refused = [], []
    for name in ORDER[:floor]:
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            with warnings.catch_warnings():  # offering deprecated protocols is the point here
                warnings.simplefilter("ignore", DeprecationWarning)
                old.set_ciphers("DEFAULT:@SECLEVEL=0")
                old.minimum_version = VERSIONS[name]
                old.maximum_version = VERSIONS[name]
        except (ValueError, ssl.SSLError):
            continue
        try:
            with _connect(p, old, server_name) as tls:
                accepted.append(tls.version())
        except (ssl.SSLError, OSError, ConnectionError):
            refused.append(name)
    evidence.update(refused_below_floor=refused, accepted_below_floor=accepted)

    if accepted:
        return result(p["control"], "fail", f"{endpoint} accepts {', '.join(accepted)} (floor {p['min_protocol']})",
                      **evidence)  # fmt: skip
    if days_left < p["min_days"]:
        return result(p["control"], "fail", f"{endpoint}: the certificate expires in {days_left} days", **evidence)
    return result(
        p["control"], "pass",
        f"{endpoint}: {evidence['protocol']}, chain verifies for {server_name}, {days_left} days left, "
        f"{', '.join(refused) or 'nothing'} below the floor refused",
        **evidence,
    )  # fmt: skip


def main():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "required": True},
            "port": {"type": "int", "required": True},
            "server_name": {"type": "str"},
            "ca_path": {"type": "path", "required": True},
            "protocol": {"type": "str", "choices": ["tls", "postgres"], "default": "tls"},
            "min_protocol": {"type": "str", "choices": ["TLSv1.2", "TLSv1.3"], "default": "TLSv1.2"},
            "min_days": {"type": "int", "default": 14},
            "timeout": {"type": "float", "default": 5},
            "control": {"type": "str", "default": "tls"},
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, audit=probe(module.params))


if __name__ == "__main__":
    main()
