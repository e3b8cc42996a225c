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
  - Returns one C(firewall) result per probed platform host (target C(from <vantage>)), on that host. A port that
    answers but should not is a C(fail). A port that should answer but is refused or silent is an C(error) (a service
    down is not a firewall finding, but nothing was shown). A name that does not resolve, no route to the host or any
    other failure to try is an C(error), never counted as closed.
  - Read-only and safe in check mode.
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - analytics.platform.probe
options:
  targets:
    description:
      - What to try, each with C(host) (the platform host's inventory name, where the result is reported),
        C(address) (how it is reached from here; defaults to C(host)), C(port), C(expect) (C(open) or C(closed)) and a
        C(service) label.
    type: list
    elements: dict
    required: true
  vantage:
    description: A label for where the probe runs, for example C(client-x (outside)).
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
      - {host: edge-a, address: 10.0.1.14, port: 443, expect: open, service: nginx}
      - {host: store-a, address: 10.0.1.12, port: 5432, expect: closed, service: postgresql}
"""

RETURN = r"""
audit:
  description: One firewall result per probed host (host, control, target, status, reason, evidence).
  returned: always
  type: list
  elements: dict
"""

from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result, tcp_state


def label(t: dict) -> str:
    return f"{t.get('service', '?')} {t['port']}"


def check(targets: list[dict], vantage: str, timeout: float) -> list[dict]:
    # One thread per target (up to 256): a dropped port costs the whole timeout, and they all wait at once.
    with ThreadPoolExecutor(max_workers=min(max(len(targets), 1), 256)) as pool:
        seen = list(pool.map(lambda t: tcp_state(t.get("address") or t["host"], int(t["port"]), timeout), targets))
    by_host: dict[str, list] = {}
    for t, (state, why) in zip(targets, seen, strict=True):
        by_host.setdefault(t["host"], []).append((t, state, why))
    out = []
    for host, rows in by_host.items():
        wrong_open = [label(t) for t, state, _unused in rows if state == "open" and t["expect"] == "closed"]
        not_answering = [f"{label(t)} ({why})" for t, state, why in rows if state == "closed" and t["expect"] == "open"]
        undecided = [f"{label(t)}: {why}" for t, state, why in rows if state == "error"]
        ev = {
            "vantage": vantage,
            "probed": [
                f"{label(t)} expect {t['expect']}: {state}{' (' + why + ')' if why else ''}" for t, state, why in rows
            ],
            "unexpected_open": wrong_open,
            "unexpected_closed": not_answering,
            "undecided": undecided,
        }
        target = f"from {vantage}"
        if wrong_open:
            reason = f"reachable from {vantage} but should not be: {', '.join(wrong_open)}"
            out.append(result("firewall", "fail", reason, target, **ev))
        elif undecided:
            out.append(
                result("firewall", "error", f"could not probe from {vantage}: {'; '.join(undecided)}", target, **ev)
            )
        elif not_answering:
            reason = f"expected to answer from {vantage} but did not: {', '.join(not_answering)}"
            out.append(result("firewall", "error", reason, target, **ev))
        else:
            opened = sum(state == "open" for _unused, state, _unused2 in rows)
            reason = f"from {vantage}: {len(rows)} ports as the port matrix says ({opened} open)"
            out.append(result("firewall", "pass", reason, target, **ev))
        out[-1]["host"] = host
    return out


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
