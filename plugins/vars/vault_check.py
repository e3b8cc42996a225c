# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Name the vault-encrypted inventory file that does not decrypt, before anything else happens."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: vault_check
short_description: Fail with the file's name when a vault-encrypted group_vars or host_vars file does not decrypt
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
description:
  - Ansible's own message for a vault that does not decrypt does not say which file it was. This plugin tries every
    vault-encrypted file under the inventory's (and the playbook's) C(group_vars/) and C(host_vars/) once, when the
    inventory loads, and stops the run with one line naming the file and how a vault password is given.
  - It contributes no variables. Enable it before C(host_group_vars), as this collection's C(ansible.cfg) does -
    C(vars_plugins_enabled = analytics.platform.vault_check, host_group_vars).
  - Files with a few C(!vault) values inside are left to Ansible (their variable is named when it is used).
options:
  stage:
    ini:
      - key: stage
        section: vars_analytics_platform_vault_check
    env:
      - name: ANSIBLE_VARS_PLUGIN_STAGE
extends_documentation_fragment:
  - ansible.builtin.vars_plugin_staging
"""

import os

from ansible.errors import AnsibleError
from ansible.parsing.vault import is_encrypted_file
from ansible.plugins.vars import BaseVarsPlugin

CHECKED: set[str] = set()
# How a vault password is given to ansible-playbook.
WAYS_TO_GIVE_IT = "--vault-password-file, --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE"


def encrypted_files(base: str):
    """Vault-encrypted files below base/group_vars and base/host_vars, hidden and backup files skipped."""
    for sub in ("group_vars", "host_vars"):
        for dirpath, dirnames, files in os.walk(os.path.join(base, sub)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or name.endswith("~"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    if is_encrypted_file(f):
                        yield path


class VarsModule(BaseVarsPlugin):
    is_stateless = True

    def get_vars(self, loader, path, entities, cache=True):
        base = os.path.realpath(path if os.path.isdir(path) else os.path.dirname(path))
        if base in CHECKED:
            return {}
        CHECKED.add(base)
        for vault_file in encrypted_files(base):
            try:
                real = loader.get_real_file(vault_file, decrypt=True)
            except AnsibleError as e:
                reason = str(e.message if hasattr(e, "message") else e).split("\n", maxsplit=1)[0]
                given = f"with the vault password given ({WAYS_TO_GIVE_IT})"
                raise AnsibleError(f"vault file {vault_file} does not decrypt {given}: {reason}") from None
            loader.cleanup_tmp_file(real)
        return {}
