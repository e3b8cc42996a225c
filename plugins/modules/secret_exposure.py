#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: secret_exposure
short_description: Look for the platform's secret values where they must not be on a host (the secrets audit)
description:
  - Searches every process's command line and every file under O(paths) that other users can read for the given
    secret values. A secret found there is a C(fail) naming the secret's B(name) and where it was seen, never its
    value.
  - Read-only and safe in check mode. Values shorter than 8 characters are ignored (they would match by chance).
version_added: 0.1.0
author: analytics.platform contributors
options:
  secrets:
    description: Named secret values (name -> value) this host's services use.
    type: dict
    required: true
  paths:
    description: Folders whose world-readable files must not hold a secret.
    type: list
    elements: path
    default: [/etc/analytics-platform, /etc/kafka, /etc/seaweedfs, /etc/minio, /etc/postgresql, /opt/analytics-platform]
"""

EXAMPLES = r"""
- name: Look for secrets in process arguments and readable files
  analytics.platform.secret_exposure:
    secrets:
      kafka_admin_password: "{{ kafka_admin_password }}"
  no_log: true
"""

RETURN = r"""
audit:
  description: One secrets result (control, status, reason, evidence naming secrets and places, never values).
  returned: always
  type: dict
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result

MAX_FILE = 1 << 20
PATHS = [
    "/etc/analytics-platform",
    "/etc/kafka",
    "/etc/seaweedfs",
    "/etc/minio",
    "/etc/postgresql",
    "/opt/analytics-platform",
]


def scan(secrets: dict, paths: list[str]) -> dict:
    wanted = {n: v.encode() for n, v in secrets.items() if isinstance(v, str) and len(v) >= 8}
    found = []
    processes = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            processes += 1
        except OSError:
            continue
        for name, value in wanted.items():
            if value in cmdline:
                exe = cmdline.split(b"\0", 1)[0].decode(errors="replace")
                found.append(f"{name} in the arguments of process {pid} ({exe})")
    files = 0
    for top in paths:
        for root, _dirs, names in os.walk(top):
            for fn in names:
                path = os.path.join(root, fn)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IROTH or st.st_size > MAX_FILE:
                    continue
                files += 1
                try:
                    with open(path, "rb") as f:
                        content = f.read()
                except OSError:
                    continue
                found += [f"{name} in world-readable {path}" for name, value in wanted.items() if value in content]
    ev = {"secrets_checked": sorted(wanted), "processes": processes, "world_readable_files": files, "found": found}
    if not wanted:
        return result("secrets", "not_applicable", "no secret of this host's services is known to the audit", **ev)
    if found:
        return result("secrets", "fail", "; ".join(found[:5]), **ev)
    reason = f"{len(wanted)} secrets in none of {processes} command lines or {files} world-readable files"
    return result("secrets", "pass", reason, **ev)


def main():
    module = AnsibleModule(
        argument_spec={
            "secrets": {"type": "dict", "required": True, "no_log": True},
            "paths": {"type": "list", "elements": "path", "default": PATHS},
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, audit=scan(module.params["secrets"], module.params["paths"]))


if __name__ == "__main__":
    main()
