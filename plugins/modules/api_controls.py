#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: api_controls
short_description: Probe the Analytics API's controls through the load balancer, as an outside client
description:
  - Run on a vantage host outside the platform. Returns one audit result per control, with evidence
    (C(audit) list) for C(api_auth) (a request without a key, and one with a wrong key, get 401),
    C(api_rate_limit) (a burst of requests gets 429 with Retry-After), C(cors) (a foreign Origin is not echoed, an
    allowed one is, when O(allowed_origin) is given) and C(reverse_proxy) (the API hosts' own port is not reachable
    from here).
  - Read-only (the requests carry no valid key, so no event is accepted) and safe in check mode. An unreachable load
    balancer is an C(error) result, never a pass.
version_added: 0.1.0
author: analytics.platform contributors
options:
  host:
    description: The load balancer's name (HTTPS on port 443; the certificate must carry it).
    type: str
    required: true
  ca_path:
    description: CA bundle on the vantage host.
    type: path
    required: true
  api_hosts:
    description: The API hosts' addresses, whose port O(api_port) must not answer from here.
    type: list
    elements: str
    default: []
  api_port:
    description: The API's own port.
    type: int
    default: 3001
  burst:
    description: How many requests to send at once to see 429.
    type: int
    default: 60
  foreign_origin:
    description: An Origin the platform must not allow.
    type: str
    default: https://attacker.example
  allowed_origin:
    description: An Origin the platform allows (checked to be echoed); empty skips that half.
    type: str
    default: ""
  timeout:
    description: Seconds per request.
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: Probe the API's controls from outside
  analytics.platform.api_controls:
    host: edge-a
    ca_path: /tmp/audit-ca.crt
    api_hosts: [10.0.1.13, 10.0.2.13]
"""

RETURN = r"""
audit:
  description: One result per control (control, status, reason, evidence).
  returned: always
  type: list
"""

import http.client
import json
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result

BODY = json.dumps({"event_type": "audit_probe"})


def request(p, method="POST", path="/analytics", headers=None, body=BODY):
    ctx = ssl.create_default_context(cafile=p["ca_path"])
    conn = http.client.HTTPSConnection(p["host"], 443, context=ctx, timeout=p["timeout"])
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json", **(headers or {})})
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def auth(p):
    without = request(p)[0]
    wrong = request(p, headers={"x-api-key": "audit-probe-not-a-key"})[0]
    ev = {"without_key": without, "wrong_key": wrong}
    if without == 401 and wrong == 401:
        return result("api_auth", "pass", "requests without a key or with a wrong key get 401", **ev)
    return result("api_auth", "fail", f"without a key: {without}, with a wrong key: {wrong} (expected 401)", **ev)


def rate_limit(p):
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(lambda _: request(p, headers={"x-api-key": "audit-probe-not-a-key"}), range(p["burst"]))
        )
    codes = {}
    for status, _ in answers:
        codes[status] = codes.get(status, 0) + 1
    limited = [h for s, h in answers if s == 429]
    ev = {"burst": p["burst"], "statuses": codes, "retry_after": limited[0].get("retry-after") if limited else None}
    if limited:
        return result("api_rate_limit", "pass", f"{len(limited)} of {p['burst']} burst requests got 429", **ev)
    return result("api_rate_limit", "fail", f"no 429 in a burst of {p['burst']} requests ({codes})", **ev)


def cors(p):
    def preflight(origin):
        headers = {"origin": origin, "access-control-request-method": "POST",
                   "access-control-request-headers": "content-type,x-api-key"}  # fmt: skip
        status, h = request(p, method="OPTIONS", headers=headers, body=None)
        return status, h.get("access-control-allow-origin")

    status, echoed = preflight(p["foreign_origin"])
    ev = {"foreign_origin": p["foreign_origin"], "foreign_status": status, "foreign_allow_origin": echoed}
    if echoed in (p["foreign_origin"], "*"):
        return result("cors", "fail", f"a foreign Origin is allowed (Access-Control-Allow-Origin: {echoed})", **ev)
    if p["allowed_origin"]:
        a_status, a_echoed = preflight(p["allowed_origin"])
        ev.update(allowed_origin=p["allowed_origin"], allowed_status=a_status, allowed_allow_origin=a_echoed)
        if a_echoed != p["allowed_origin"]:
            return result("cors", "fail", f"the allowed Origin {p['allowed_origin']} is not echoed ({a_echoed})", **ev)
    return result(
        "cors",
        "pass",
        "a foreign Origin is not allowed" + (", the configured one is" if p["allowed_origin"] else ""),
        **ev,
    )


def reverse_proxy(p):
    reachable = []
    for h in p["api_hosts"]:
        try:
            socket.create_connection((h, p["api_port"]), timeout=3).close()
            reachable.append(h)
        except OSError:
            pass
    ev = {"api_port": p["api_port"], "probed": p["api_hosts"], "reachable": reachable}
    if reachable:
        return result(
            "reverse_proxy", "fail", f"the API port {p['api_port']} answers from outside on {reachable}", **ev
        )
    if not p["api_hosts"]:
        return result("reverse_proxy", "error", "no API host to probe (api_hosts is empty)", **ev)
    return result(
        "reverse_proxy", "pass", f"only the load balancer answers; port {p['api_port']} is closed from here", **ev
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "required": True},
            "ca_path": {"type": "path", "required": True},
            "api_hosts": {"type": "list", "elements": "str", "default": []},
            "api_port": {"type": "int", "default": 3001},
            "burst": {"type": "int", "default": 60},
            "foreign_origin": {"type": "str", "default": "https://attacker.example"},
            "allowed_origin": {"type": "str", "default": ""},
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    out = []
    # The burst goes last: the rate limit it triggers would otherwise answer the other probes with 429.
    for probe, control in ((auth, "api_auth"), (cors, "cors"), (rate_limit, "api_rate_limit")):
        try:
            out.append(probe(p))
        except (OSError, http.client.HTTPException) as e:
            out.append(result(control, "error", f"{p['host']}:443 did not answer: {e}", endpoint=f"{p['host']}:443"))
    out.append(reverse_proxy(p))
    module.exit_json(changed=False, audit=out)


if __name__ == "__main__":
    main()
