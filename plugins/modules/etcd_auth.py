#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: etcd_auth
short_description: Turn on etcd's authentication and keep its users to a list, each confined to one key prefix
description:
  - Talks to one etcd v3 member over its JSON gateway (HTTPS, the member's certificate verified).
  - No client certificate is sent by default. With authentication on, etcd's gateway refuses any request whose client
    certificate has a common name (CVE-2018-16886; etcd pull request 10366), so password users and client
    certificates cannot be combined on the JSON API that this module and Patroni use.
  - Makes sure the C(root) user exists with O(root_password), that every user in O(users) exists with its password and
    a role of the same name that may read and write only the keys under its O(users[].prefix), that no other user
    exists (with O(exclusive)), and that authentication is enabled. Authentication is enabled last, so a run that
    fails half-way leaves the cluster as open as before, never locked.
  - A password is checked by authenticating with it (nothing is read back). An unchanged password changes nothing, a
    changed one is set (rotation).
  - Passwords travel in the request bodies over TLS, never in process arguments.
version_added: 0.2.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  endpoint:
    description: Client URL of a member, for example V(https://10.230.1.12:2379).
    type: str
    required: true
  ca_path:
    description: CA that signed the members' certificates.
    type: path
    required: true
  cert_path:
    description: Client certificate to present (only for members that require one and have authentication off).
    type: path
  key_path:
    description: Key of O(cert_path).
    type: path
  root_password:
    description: Password of the C(root) user. Once authentication is on, a wrong one fails the module.
    type: str
    required: true
  users:
    description: The client users.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name (also the name of its role). V(root) is reserved.
        type: str
        required: true
      password:
        description: The user's password.
        type: str
        required: true
      prefix:
        description: Key prefix the user may read and write (nothing else), for example V(/analytics-platform/).
        type: str
        required: true
  exclusive:
    description: Delete users (and their roles of the same name) that are neither V(root) nor in O(users).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each request.
    type: int
    default: 15
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Authentication on, Patroni confined to its namespace
  analytics.platform.etcd_auth:
    endpoint: https://10.230.1.12:2379
    ca_path: /etc/analytics-platform/pki/ca.crt
    root_password: "{{ etcd_root_password }}"
    users:
      - {name: patroni, password: "{{ vault_etcd_patroni_password }}", prefix: /analytics-platform/}
  no_log: true
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, would be done), one line each.
  returned: always
  type: list
  elements: str
  sample: ["created user patroni", "granted patroni readwrite on /analytics-platform/", "enabled authentication"]
auth_enabled:
  description: Whether authentication was already on when the module started.
  returned: always
  type: bool
"""

import base64
import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

READWRITE = "READWRITE"


class EtcdError(Exception):
    def __init__(self, path, status, message):
        super().__init__(f"{path}: {status} {message}")
        self.status = status
        self.message = message


def b64(data) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text or "").decode(errors="replace")


def range_end(prefix: str) -> bytes:
    """The end of the key range that holds exactly the keys starting with prefix (its last byte plus one)."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\0"
    raw[-1] += 1
    return bytes(raw)


class Etcd:
    def __init__(self, module):
        self.module = module
        p = module.params
        self.base = p["endpoint"].rstrip("/") + "/v3"
        self.token = None

    def call(self, path, body):
        p = self.module.params
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = self.token
        try:
            resp = open_url(
                self.base + path,
                data=json.dumps(body),
                method="POST",
                headers=headers,
                ca_path=p["ca_path"],
                client_cert=p["cert_path"],
                client_key=p["key_path"],
                timeout=p["timeout"],
                validate_certs=True,
            )
            return json.loads(resp.read() or b"{}")
        except HTTPError as e:
            try:
                detail = json.loads(e.read() or b"{}")
            except ValueError:
                detail = {}
            raise EtcdError(path, e.code, detail.get("message") or detail.get("error") or str(e)) from None
        except (URLError, OSError) as e:
            self.module.fail_json(msg=f"etcd at {p['endpoint']} did not answer {path}: {e}")

    def authenticate(self, name, password):
        """A token, None when authentication is off; EtcdError when the name or password is wrong."""
        try:
            return self.call("/auth/authenticate", {"name": name, "password": password}).get("token")
        except EtcdError as e:
            if "authentication is not enabled" in e.message:
                return None
            raise

    def user(self, name):
        try:
            return self.call("/auth/user/get", {"name": name})
        except EtcdError as e:
            if "user name not found" in e.message:
                return None
            raise

    def role(self, name):
        try:
            return self.call("/auth/role/get", {"role": name})
        except EtcdError as e:
            if "role name not found" in e.message:
                return None
            raise

    def users(self):
        return self.call("/auth/user/list", {}).get("users") or []


def password_works(etcd, name, password, auth_on):
    if not auth_on:
        return False  # cannot tell before authentication is on: set it
    try:
        etcd.authenticate(name, password)
        return True
    except EtcdError as e:
        if "authentication failed" in e.message:
            return False
        raise


def ensure(module):
    p = module.params
    etcd = Etcd(module)
    check = module.check_mode
    actions = []

    def do(action, path, body):
        actions.append(action)
        if not check:
            etcd.call(path, body)

    for u in p["users"]:
        if u["name"] == "root":
            module.fail_json(msg="users: 'root' is reserved for root_password")
        if not u["prefix"]:
            module.fail_json(msg=f"users: {u['name']} needs a non-empty prefix (an empty one would be every key)")
    try:
        etcd.token = etcd.authenticate("root", p["root_password"])
    except EtcdError as e:
        module.fail_json(
            msg="etcd refused root_password: authentication is on and the cluster's root user has another password "
            f"(change it with 'etcdctl user passwd root' first, then set the new one here): {e.message}"
        )
    auth_on = etcd.token is not None

    if not auth_on:
        if etcd.user("root") is None:
            do("created user root", "/auth/user/add", {"name": "root", "password": p["root_password"]})
            do("granted root the root role", "/auth/user/grant", {"user": "root", "role": "root"})
        else:
            do("set the password of root", "/auth/user/changepw", {"name": "root", "password": p["root_password"]})
            if "root" not in (etcd.user("root") or {}).get("roles", []):
                do("granted root the root role", "/auth/user/grant", {"user": "root", "role": "root"})

    for u in p["users"]:
        name, key, end = u["name"], b64(u["prefix"]), b64(range_end(u["prefix"]))
        role = etcd.role(name)
        if role is None:
            do(f"created role {name}", "/auth/role/add", {"name": name})
            perms = []
        else:
            perms = role.get("perm") or []
        wanted = {"permType": READWRITE, "key": key, "range_end": end}
        for perm in perms:
            same = (perm.get("permType", "READ"), perm.get("key"), perm.get("range_end")) == (READWRITE, key, end)
            if not same:
                what = unb64(perm.get("key") or "")
                do(
                    f"revoked {name}'s permission on {what}",
                    "/auth/role/revoke",
                    {"role": name, "key": perm.get("key"), "range_end": perm.get("range_end")},
                )
        if not any(
            (perm.get("permType", "READ"), perm.get("key"), perm.get("range_end")) == (READWRITE, key, end)
            for perm in perms
        ):
            do(f"granted {name} readwrite on {u['prefix']}", "/auth/role/grant", {"name": name, "perm": wanted})
        existing = etcd.user(name)
        if existing is None:
            do(f"created user {name}", "/auth/user/add", {"name": name, "password": u["password"]})
            roles = []
        else:
            roles = existing.get("roles") or []
            if not password_works(etcd, name, u["password"], auth_on):
                do(f"set the password of {name}", "/auth/user/changepw", {"name": name, "password": u["password"]})
        for other in roles:
            if other != name:
                do(f"revoked role {other} from {name}", "/auth/user/revoke", {"name": name, "role": other})
        if name not in roles:
            do(f"granted role {name} to {name}", "/auth/user/grant", {"user": name, "role": name})

    if p["exclusive"]:
        listed = {u["name"] for u in p["users"]} | {"root"}
        for name in sorted(set(etcd.users()) - listed):
            do(f"deleted user {name}", "/auth/user/delete", {"name": name})
            if etcd.role(name) is not None:
                do(f"deleted role {name}", "/auth/role/delete", {"role": name})

    if not auth_on:
        do("enabled authentication", "/auth/enable", {})
        if not check:
            # Proves the result: root's password now opens the cluster.
            etcd.token = None
            try:
                if etcd.authenticate("root", p["root_password"]) is None:
                    module.fail_json(msg="etcd still reports authentication off after enabling it", actions=actions)
            except EtcdError as e:
                module.fail_json(msg=f"root cannot authenticate after enabling authentication: {e.message}")
    return actions, auth_on


def main():
    module = AnsibleModule(
        argument_spec={
            "endpoint": {"type": "str", "required": True},
            "ca_path": {"type": "path", "required": True},
            "cert_path": {"type": "path"},
            "key_path": {"type": "path", "no_log": False},
            "root_password": {"type": "str", "required": True, "no_log": True},
            "users": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "password": {"type": "str", "required": True, "no_log": True},
                    "prefix": {"type": "str", "required": True},
                },
            },
            "exclusive": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 15},
        },
        supports_check_mode=True,
        required_together=[("cert_path", "key_path")],
    )
    try:
        actions, auth_on = ensure(module)
    except EtcdError as e:
        module.fail_json(msg=f"etcd at {module.params['endpoint']} refused {e}")
    module.exit_json(changed=bool(actions), actions=actions, auth_enabled=auth_on)


if __name__ == "__main__":
    main()
