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
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - analytics.platform.probe
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
  target:
    description:
      - What the result names as probed (the report keeps one entry per host, control and target).
      - Defaults to O(host):O(port).
    type: str
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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit_tls import probe


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
            "target": {"type": "str"},
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, audit=probe(module.params))


if __name__ == "__main__":
    main()
