#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: grafana_probe
short_description: Audit probe - Grafana refuses its default admin login and offers OAuth sign-in
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
description:
  - Read-only probe for C(playbooks/audit.yml), run where Grafana's HTTP port is reachable (usually the controller).
  - "Admin password: posts each of O(default_logins) to Grafana's C(/login) API (the form the sign-in page uses).
    Grafana answers 200 to a login it accepts and 401 otherwise; an accepted login is a finding for the controls
    C(default_passwords) and C(grafana). A failed login creates no session."
  - "OAuth: requests C(/login/<provider>) for each of O(oauth_providers) without following the redirect. An enabled
    provider redirects to its identity provider (another origin); a disabled one redirects back to C(/login). At least
    one enabled provider passes the OAuth half of the control C(grafana)."
  - Grafana is AGPL-licensed and never runs on this project's machines; the module's tests use a stand-in HTTP server
    that answers these two endpoints as Grafana documents them.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - analytics.platform.probe
options:
  url:
    description: Grafana's base URL, for example C(https://grafana-a:3000).
    type: str
    required: true
  ca_path:
    description: CA bundle that verifies Grafana's certificate (for https URLs).
    type: path
  default_logins:
    description: Logins that must be refused.
    type: list
    elements: dict
    default: [{user: admin, password: admin}]
  oauth_providers:
    description: Grafana's OAuth sign-in routes to try.
    type: list
    elements: str
    default: [generic_oauth, github, google, okta, azuread, gitlab]
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 5
  host:
    description: Inventory name of the Grafana host, put into each result (the report lists results by host).
    type: str
"""

EXAMPLES = r"""
- name: Probe Grafana's admin login and OAuth
  analytics.platform.grafana_probe:
    url: https://grafana-a:3000
    ca_path: /home/ops/.analytics-platform/pki/ca.crt
  delegate_to: localhost
  register: grafana
"""

RETURN = r"""
audit:
  description: Results for default_passwords (the admin login), grafana (admin login) and grafana (OAuth).
  returned: always
  type: list
  elements: dict
"""

import http.client
import json
import ssl
from urllib.parse import urlparse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result


def connection(p):
    u = urlparse(p["url"])
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=p["ca_path"]) if p["ca_path"] else ssl.create_default_context()
        return http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=p["timeout"])
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=p["timeout"])


def ask(p, method, path, body=None):
    """(status, Location header) of one request; redirects are not followed."""
    conn = connection(p)
    try:
        headers = {"content-type": "application/json", "accept": "application/json"} if body is not None else {}
        conn.request(method, urlparse(p["url"]).path.rstrip("/") + path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("location") or ""
    finally:
        conn.close()


def admin_login(p):
    accepted, answers = [], {}
    for d in p["default_logins"]:
        status, _unused = ask(p, "POST", "/login", json.dumps({"user": d["user"], "password": d["password"]}))
        answers[d["user"]] = status
        if status == 200:
            accepted.append(f"{d['user']}/{d['password']}")
    ev = {"component": "grafana", "check": "admin_password", "url": p["url"], "answers": answers}
    if accepted:
        reason = f"{p['url']} accepts the default login {', '.join(accepted)}"
        return [
            result("default_passwords", "fail", reason, "grafana admin login", **ev),
            result("grafana", "fail", reason, "admin login", **ev),
        ]
    if all(s in (400, 401) for s in answers.values()):
        reason = f"{p['url']} refuses the default login(s) ({', '.join(answers)})"
        return [
            result("default_passwords", "pass", reason, "grafana admin login", **ev),
            result("grafana", "pass", reason, "admin login", **ev),
        ]
    reason = f"{p['url']} answered the login with {answers} (expected 401)"
    return [
        result("default_passwords", "error", reason, "grafana admin login", **ev),
        result("grafana", "error", reason, "admin login", **ev),
    ]


def oauth(p):
    own = urlparse(p["url"]).netloc
    redirects = {}
    for name in p["oauth_providers"]:
        status, location = ask(p, "GET", f"/login/{name}")
        redirects[name] = {"status": status, "location": location.split("?")[0]}
    enabled = sorted(
        n
        for n, r in redirects.items()
        if r["status"] in (301, 302, 303, 307) and urlparse(r["location"]).netloc not in ("", own)
    )
    ev = {"check": "oauth", "url": p["url"], "providers": redirects}
    if enabled:
        return result("grafana", "pass", f"{p['url']} signs in through OAuth ({', '.join(enabled)})", "oauth", **ev)
    return result(
        "grafana", "fail", f"{p['url']} offers no OAuth sign-in (tried {', '.join(redirects)})", "oauth", **ev
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "ca_path": {"type": "path"},
            # Well-known public values; the evidence names them on purpose.
            "default_logins": {
                "type": "list",
                "elements": "dict",
                "no_log": False,
                "default": [{"user": "admin", "password": "admin"}],
            },
            "oauth_providers": {
                "type": "list",
                "elements": "str",
                "default": ["generic_oauth", "github", "google", "okta", "azuread", "gitlab"],
            },
            "timeout": {"type": "float", "default": 5},
            "host": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        out = [*admin_login(p), oauth(p)]
    except (OSError, http.client.HTTPException) as e:  # TLS, refused, timeout: an error, never a pass
        reason = f"{p['url']} did not answer: {e}"
        out = [
            result("default_passwords", "error", reason, "grafana admin login", url=p["url"]),
            result("grafana", "error", reason, "admin login", url=p["url"]),
            result("grafana", "error", reason, "oauth", url=p["url"]),
        ]
    if p["host"]:
        out = [dict(r, host=p["host"]) for r in out]
    module.exit_json(changed=False, audit=out)


if __name__ == "__main__":
    main()
