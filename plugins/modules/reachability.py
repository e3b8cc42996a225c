#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: reachability
short_description: Check, from a vantage host, which TCP ports of the platform answer (the firewall audit)
description:
  - Tries a TCP connection from where the task runs to every O(targets) entry and compares what answers with what
    the port matrix expects from this vantage point (C(open) or C(closed)).
  - Returns one C(firewall) audit result for the vantage host, listing every port that answers but should not, and
    every port that should answer but does not. Read-only and safe in check mode.
version_added: 0.1.0
author: analytics.platform contributors
options:
  targets:
    description: What to try, each with C(host), C(port), C(expect) (C(open) or C(closed)) and a C(service) label.
    type: list
    elements: dict
    required: true
  vantage:
    description: A label for where the probe runs (evidence only), for example C(outside) or C(zone-b).
    type: str
    default: ""
  timeout:
    description: Seconds per connection attempt (a dropped packet waits this long).
    type: float
    default: 2
"""

EXAMPLES = r"""
- name: Check the port matrix from outside
  analytics.platform.reachability:
    vantage: outside
    targets:
      - {host: 10.0.1.14, port: 443, expect: open, service: nginx}
      - {host: 10.0.1.12, port: 5432, expect: closed, service: postgresql}
"""

RETURN = r"""
audit:
  description: One firewall result (control, status, reason, evidence).
  returned: always
  type: dict
"""

import socket
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result


def answers(host: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def check(targets: list[dict], vantage: str, timeout: float) -> dict:
    with ThreadPoolExecutor(max_workers=16) as pool:
        seen = list(pool.map(lambda t: answers(t["host"], int(t["port"]), timeout), targets))
    unexpected_open, unexpected_closed = [], []
    for t, is_open in zip(targets, seen, strict=True):
        label = f"{t.get('service', '?')} {t['host']}:{t['port']}"
        if is_open and t["expect"] == "closed":
            unexpected_open.append(label)
        elif not is_open and t["expect"] == "open":
            unexpected_closed.append(label)
    ev = {
        "vantage": vantage,
        "probed": len(targets),
        "open": [f"{t['host']}:{t['port']}" for t, o in zip(targets, seen, strict=True) if o],
        "unexpected_open": unexpected_open,
        "unexpected_closed": unexpected_closed,
    }
    if unexpected_open:
        return result(
            "firewall", "fail", f"from {vantage}: reachable but should not be: {', '.join(unexpected_open)}", **ev
        )
    if unexpected_closed:
        return result(
            "firewall", "error", f"from {vantage}: expected to answer but did not: {', '.join(unexpected_closed)}", **ev
        )
    return result(
        "firewall", "pass", f"from {vantage}: {len(targets)} ports as the matrix says ({len(ev['open'])} open)", **ev
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "targets": {"type": "list", "elements": "dict", "required": True},
            "vantage": {"type": "str", "default": ""},
            "timeout": {"type": "float", "default": 2},
        },
        supports_check_mode=True,
    )
    for i, t in enumerate(module.params["targets"]):
        if not t.get("host") or not str(t.get("port", "")).isdigit() or t.get("expect") not in ("open", "closed"):
            module.fail_json(
                msg=f"reachability: targets[{i}] needs host, a numeric port and expect open or closed (got {t})"
            )
    module.exit_json(
        changed=False, audit=check(module.params["targets"], module.params["vantage"], module.params["timeout"])
    )


if __name__ == "__main__":
    main()
