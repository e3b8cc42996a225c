#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: inventory_secrets
short_description: Audit probe - no secret is written in plain text in the inventory
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
description:
  - Read-only probe for C(playbooks/audit.yml), run on the controller against the inventory sources of the run.
  - Reads every variables file of each inventory (the host files, C(group_vars/) and C(host_vars/)); files that are
    vault-encrypted as a whole are skipped, C(!vault) values count as encrypted.
  - A variable whose name says it holds a secret (password, passphrase, secret, token, a key) must be vault-encrypted,
    or a template that takes it from elsewhere (C({{ vault_x }}), an environment lookup, another variable that is
    checked where it is defined). A plain value is a finding for the control C(secrets); the evidence names the file
    and the variable, never the value.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - analytics.platform.probe
options:
  paths:
    description: Inventory sources (directories or files), usually the magic variable C(ansible_inventory_sources).
    type: list
    elements: path
    required: true
  secret_pattern:
    description: Regular expression for the names of variables that hold secrets.
    type: str
    default: (password|passphrase|secret|token|_key$|_keys$)
  not_secret_pattern:
    description: Regular expression for names that match O(secret_pattern) but hold no secret.
    type: str
    default: (access_key|_key_url|_key_checksum|_key_group|_file|_path|_dir)$
"""

EXAMPLES = r"""
- name: Look for plain-text secrets in the inventory
  analytics.platform.inventory_secrets:
    paths: "{{ ansible_inventory_sources }}"
  delegate_to: localhost
"""

RETURN = r"""
audit:
  description: One result for the control C(secrets), reported on the host C(inventory).
  returned: always
  type: list
  elements: dict
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result

try:
    import yaml

    class _Loader(yaml.SafeLoader):
        """SafeLoader that reads `!vault` values as encrypted markers."""

    _Loader.add_constructor("!vault", lambda loader, node: ENCRYPTED)
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with Ansible
    HAS_YAML = False

ENCRYPTED = object()
VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")


def vars_files(source: str):
    """The files Ansible reads variables from for one inventory source."""
    if os.path.isfile(source):
        yield source
        return
    for dirpath, dirnames, files in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        in_vars_dir = os.path.relpath(dirpath, source).split(os.sep)[0] in ("group_vars", "host_vars")
        for name in sorted(files):
            if name.startswith(".") or name.endswith("~"):
                continue
            ext = os.path.splitext(name)[1]
            if (in_vars_dir and ext in VARS_EXTENSIONS) or (dirpath == source and ext in (".yml", ".yaml", ".json")):
                yield os.path.join(dirpath, name)


def leaves(data, path=""):
    """(dotted name, value) for every string leaf, at any depth (list items keep their parent's name)."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(data, list):
        for v in data:
            yield from leaves(v, path)
    else:
        yield path, data


def plain_text_secrets(paths, secret_pattern, not_secret_pattern):
    """([{file, variable}], files read)."""
    secret, not_secret = re.compile(secret_pattern), re.compile(not_secret_pattern)
    found, read = [], 0
    for source in paths:
        for path in vars_files(source):
            with open(path, "rb") as f:
                raw = f.read()
            if raw.startswith(b"$ANSIBLE_VAULT"):
                continue
            try:
                data = yaml.load(raw, Loader=_Loader)  # noqa: S506 - a SafeLoader with one extra tag
            except yaml.YAMLError:
                continue  # not a variables file (an ini inventory, a script): nothing to judge here
            read += 1
            for name, value in leaves(data):
                # A secret's name may be any part of the path: kafka_client_passwords.pg-sink holds one.
                parts = name.split(".")
                if not any(secret.search(n) and not not_secret.search(n) for n in parts):
                    continue
                if isinstance(value, str) and value and "{{" not in value:
                    found.append({"file": path, "variable": name})
    return found, read


def main():
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "path", "required": True},
            "secret_pattern": {
                "type": "str",
                "default": r"(password|passphrase|secret|token|_key$|_keys$)",
                "no_log": False,
            },
            "not_secret_pattern": {
                "type": "str",
                "default": r"(access_key|_key_url|_key_checksum|_key_group|_file|_path|_dir)$",
                "no_log": False,
            },
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:  # pragma: no cover
        module.fail_json(msg="inventory_secrets needs PyYAML on the controller")
    p = module.params
    found, read = plain_text_secrets(p["paths"], p["secret_pattern"], p["not_secret_pattern"])
    ev = {"component": "inventory", "sources": p["paths"], "files_read": read, "plain_text": found}
    if found:
        names = ", ".join(f"{os.path.basename(f['file'])}: {f['variable']}" for f in found[:5])
        reason = f"{len(found)} secret(s) in plain text in the inventory ({names}{', ...' if len(found) > 5 else ''})"
        out = result("secrets", "fail", reason, "inventory variables", **ev)
    elif not read:
        out = result("secrets", "error", "no inventory variables file could be read", "inventory variables", **ev)
    else:
        out = result(
            "secrets",
            "pass",
            f"no plain-text secret in {read} inventory files (vault or lookups only)",
            "inventory variables",
            **ev,
        )
    module.exit_json(changed=False, audit=[dict(out, host="inventory")])


if __name__ == "__main__":
    main()
