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
    C(api_rate_limit) (a burst of requests gets 429 with Retry-After), C(cors) (a foreign Origin is not echoed, the
    allowed one is) and C(reverse_proxy) (the API hosts' own port is not reachable from here; one result on each API
    host).
  - CORS that is not configured (no O(allowed_origin)) is a C(fail), since the checklist asks for CORS configured.
  - A port that cannot be probed (the name does not resolve, no route) is an C(error), never counted as closed.
  - Read-only (the requests carry no valid key, so no event is accepted) and safe in check mode. An unreachable load
    balancer is an C(error) result, never a pass.
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - analytics.platform.probe
options:
  host:
    description: The load balancer's name (the certificate must carry it); the results are reported on it.
    type: str
    required: true
  port:
    description: The load balancer's HTTPS port.
    type: int
    default: 443
  ca_path:
    description: CA bundle on the vantage host.
    type: path
    required: true
  api_hosts:
    description:
      - The API hosts, whose own port must not answer from here, each with C(host) (its inventory name, where
        the result is reported), C(address) (how it is reached; defaults to C(host)) and C(port) (defaults to
        O(api_port)).
    type: list
    elements: dict
    default: []
  api_port:
    description: The API's own port, for the entries of O(api_hosts) without one.
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
    description: An Origin the platform allows (checked to be echoed); empty means CORS is not configured (a fail).
    type: str
    default: ""
  timeout:
    description: Seconds per request.
    type: float
    default: 5
  vantage:
    description: A label for where the probe runs (in the C(reverse_proxy) target).
    type: str
    default: outside
"""

EXAMPLES = r"""
- name: Probe the API's controls from outside
  analytics.platform.api_controls:
    host: edge-a
    ca_path: /tmp/audit-ca.crt
    api_hosts: [{host: app-a, address: 10.0.1.13}, {host: app-b, address: 10.0.2.13}]
    allowed_origin: https://app.example.com
"""

RETURN = r"""
audit:
  description: One result per control (host, control, target, status, reason, evidence).
  returned: always
  type: list
"""

import http.client
import json
import ssl
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result, tcp_state

BODY = json.dumps({"event_type": "audit_probe"})


def request(p, method="POST", path="/analytics", headers=None, body=BODY):
    ctx = ssl.create_default_context(cafile=p["ca_path"])
    conn = http.client.HTTPSConnection(p["host"], p["port"], context=ctx, timeout=p["timeout"])
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json", **(headers or {})})
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def auth(p, target):
    without = request(p)[0]
    wrong = request(p, headers={"x-api-key": "audit-probe-not-a-key"})[0]
    ev = {"without_key": without, "wrong_key": wrong}
    if without == 401 and wrong == 401:
        return result("api_auth", "pass", "requests without a key or with a wrong key get 401", target, **ev)
    if without in (401, 403, 202, 200, 201, 204) and wrong in (401, 403, 202, 200, 201, 204):
        reason = f"without a key: {without}, with a wrong key: {wrong} (expected 401)"
        return result("api_auth", "fail", reason, target, **ev)
    return result(
        "api_auth", "error", f"unexpected answers: {without} without a key, {wrong} with a wrong one", target, **ev
    )


def rate_limit(p, target):
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(lambda _: request(p, headers={"x-api-key": "audit-probe-not-a-key"}), range(p["burst"]))
        )
    codes = {}
    for status, _unused in answers:
        codes[status] = codes.get(status, 0) + 1
    limited = [h for s, h in answers if s == 429]
    ev = {"burst": p["burst"], "statuses": codes, "retry_after": limited[0].get("retry-after") if limited else None}
    if limited:
        return result("api_rate_limit", "pass", f"{len(limited)} of {p['burst']} burst requests got 429", target, **ev)
    return result("api_rate_limit", "fail", f"no 429 in a burst of {p['burst']} requests ({codes})", target, **ev)


def cors(p, target):
    def preflight(origin):
        headers = {
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-api-key",
        }
        status, h = request(p, method="OPTIONS", headers=headers, body=None)
        return status, h.get("access-control-allow-origin")

    status, echoed = preflight(p["foreign_origin"])
    ev = {"foreign_origin": p["foreign_origin"], "foreign_status": status, "foreign_allow_origin": echoed}
    if echoed in (p["foreign_origin"], "*"):
        reason = f"a foreign Origin is allowed (Access-Control-Allow-Origin: {echoed})"
        return result("cors", "fail", reason, target, **ev)
    if not p["allowed_origin"]:
        reason = "CORS is not configured: no allowed origin is set (analytics_api_cors_origins)"
        return result("cors", "fail", reason, target, **ev)
    a_status, a_echoed = preflight(p["allowed_origin"])
    ev.update(allowed_origin=p["allowed_origin"], allowed_status=a_status, allowed_allow_origin=a_echoed)
    if a_echoed != p["allowed_origin"]:
        reason = f"the allowed Origin {p['allowed_origin']} is not echoed ({a_echoed})"
        return result("cors", "fail", reason, target, **ev)
    return result("cors", "pass", "a foreign Origin is not allowed, the configured one is", target, **ev)


def reverse_proxy(p, vantage):
    hosts = [(h, h.get("address") or h["host"], int(h.get("port") or p["api_port"])) for h in p["api_hosts"]]
    with ThreadPoolExecutor(max_workers=16) as pool:
        states = list(pool.map(lambda h: tcp_state(h[1], h[2], 3), hosts))
    out = []
    for (h, address, port), (state, why) in zip(hosts, states, strict=True):
        ev = {"api_port": port, "address": address, "state": state, "detail": why}
        target = f"port {port} from {vantage}"
        if state == "open":
            r = result("reverse_proxy", "fail", f"the API port {port} answers from {vantage}", target, **ev)
        elif state == "closed":
            reason = f"only the load balancer answers; port {port} is closed from {vantage} ({why})"
            r = result("reverse_proxy", "pass", reason, target, **ev)
        else:
            r = result("reverse_proxy", "error", f"port {port} could not be probed: {why}", target, **ev)
        out.append(dict(r, host=h["host"]))
    return out


def main():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "required": True},
            "port": {"type": "int", "default": 443},
            "ca_path": {"type": "path", "required": True},
            "api_hosts": {"type": "list", "elements": "dict", "default": []},
            "api_port": {"type": "int", "default": 3001},
            "burst": {"type": "int", "default": 60},
            "foreign_origin": {"type": "str", "default": "https://attacker.example"},
            "allowed_origin": {"type": "str", "default": ""},
            "timeout": {"type": "float", "default": 5},
            "vantage": {"type": "str", "default": "outside"},
        },
        supports_check_mode=True,
    )
    p = module.params
    target = f"https://{p['host']}:{p['port']}"
    out = []
    # The burst goes last: the rate limit it triggers would otherwise answer the other probes with 429.
    for probe, control in ((auth, "api_auth"), (cors, "cors"), (rate_limit, "api_rate_limit")):
        try:
            r = probe(p, target)
        except (OSError, http.client.HTTPException) as e:
            r = result(control, "error", f"{target} did not answer: {e}", target, endpoint=target)
        out.append(dict(r, host=p["host"]))
    out += reverse_proxy(p, p["vantage"])
    module.exit_json(changed=False, audit=out)


if __name__ == "__main__":
    main()
