#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: pg_hardening
short_description: Probe a PostgreSQL server's encryption, authentication and audit settings for the security audit
description:
  - Runs on the database host and asks the running server (psql as the C(postgres) OS user, over the local socket).
  - "C(db_encryption): ssl on with a TLS 1.2+ floor, password_encryption scram-sha-256, every pg_hba rule
    C(hostssl) with scram-sha-256 (or C(local) with peer), no C(trust), C(md5) or C(password) rule, no role
    whose stored password is an MD5 hash."
  - "C(audit_logging): pgaudit loaded with a log class set, and log_connections on."
  - Read-only and safe in check mode; a server that does not answer gives C(error) results.
version_added: 0.1.0
author: analytics.platform contributors
options:
  database:
    description: Database to connect to.
    type: str
    default: postgres
  psql:
    description: The psql command.
    type: str
    default: psql
"""

EXAMPLES = r"""
- name: Probe PostgreSQL
  analytics.platform.pg_hardening:
  register: pg
"""

RETURN = r"""
audit:
  description: Results for db_encryption and audit_logging (control, status, reason, evidence).
  returned: always
  type: list
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.audit import result

QUERY = r"""
SELECT json_build_object(
  'settings', (SELECT json_object_agg(name, setting) FROM pg_settings WHERE name IN
               ('ssl', 'ssl_min_protocol_version', 'password_encryption', 'shared_preload_libraries',
                'log_connections', 'pgaudit.log')),
  'hba', (SELECT json_agg(json_build_object('line', line_number, 'type', type, 'database', database,
                                            'user', user_name, 'address', address, 'method', auth_method,
                                            'error', error)) FROM pg_hba_file_rules),
  'md5_roles', (SELECT coalesce(json_agg(rolname), '[]') FROM pg_authid WHERE rolpassword LIKE 'md5%')
)
"""


def evaluate(data: dict) -> list[dict]:
    s = data.get("settings") or {}
    hba = data.get("hba") or []
    problems = []
    if s.get("ssl") != "on":
        problems.append(f"ssl is {s.get('ssl')}")
    if s.get("ssl_min_protocol_version") not in ("TLSv1.2", "TLSv1.3"):
        problems.append(f"ssl_min_protocol_version is {s.get('ssl_min_protocol_version')}")
    if s.get("password_encryption") != "scram-sha-256":
        problems.append(f"password_encryption is {s.get('password_encryption')}")
    for rule in hba:
        ok = (rule["type"] == "hostssl" and rule["method"] == "scram-sha-256") or (
            rule["type"] == "local" and rule["method"] in ("peer", "scram-sha-256")
        )
        if not ok or rule.get("error"):
            problems.append(
                f"pg_hba line {rule['line']}: {rule['type']} {rule['method']} {rule.get('error') or ''}".strip()
            )
    if data.get("md5_roles"):
        problems.append(f"roles with MD5 password hashes: {', '.join(data['md5_roles'])}")
    ev = {"settings": s, "hba": hba, "md5_roles": data.get("md5_roles")}
    out = [
        result("db_encryption", "fail", "; ".join(problems), **ev)
        if problems
        else result(
            "db_encryption",
            "pass",
            f"ssl on ({s['ssl_min_protocol_version']}+), only hostssl scram-sha-256 rules",
            **ev,
        )
    ]
    audit_problems = []
    if "pgaudit" not in (s.get("shared_preload_libraries") or ""):
        audit_problems.append("pgaudit is not loaded")
    elif s.get("pgaudit.log") in (None, "", "none"):
        audit_problems.append("pgaudit.log is none")
    if s.get("log_connections") != "on":
        audit_problems.append("log_connections is off")
    aev = {k: s.get(k) for k in ("shared_preload_libraries", "pgaudit.log", "log_connections")}
    out.append(
        result("audit_logging", "fail", "; ".join(audit_problems), component="postgresql", **aev)
        if audit_problems
        else result(
            "audit_logging",
            "pass",
            f"pgaudit logs {s.get('pgaudit.log')}, connections logged",
            component="postgresql",
            **aev,
        )
    )
    return out


def main():
    module = AnsibleModule(
        argument_spec={"database": {"type": "str", "default": "postgres"}, "psql": {"type": "str", "default": "psql"}},
        supports_check_mode=True,
    )
    p = module.params
    rc, out, err = module.run_command(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            p["psql"],
            "-XAtq",
            "-d",
            p["database"],
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            QUERY,
        ],
        cwd="/",  # runuser keeps the cwd: one the postgres user can enter
    )
    if rc != 0:
        reason = f"PostgreSQL did not answer: {(err or out).strip().splitlines()[-1:] or rc}"
        module.exit_json(changed=False, audit=[result(c, "error", reason) for c in ("db_encryption", "audit_logging")])
    module.exit_json(changed=False, audit=evaluate(json.loads(out)))


if __name__ == "__main__":
    main()
