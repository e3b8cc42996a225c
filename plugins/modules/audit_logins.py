#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: audit_logins
short_description: Try the known default, weak and retired logins on PostgreSQL, Kafka and S3 from where the task runs
description:
  - The C(default_passwords) probe as an attacker runs it. Run it on the outside (vantage) host and on an application
    host, because a default password that pg_hba refuses from the database host itself may well work from the
    application subnet. Needs nothing but Python on the host (the wire protocols are spoken by module_utils/audit_wire).
  - Returns one result per probed platform host and component (target C(<component> logins from <vantage>)), on that
    host. C(fail) when any login is accepted (or Kafka answers in PLAINTEXT without any login); C(pass) when every
    login was refused (or pg_hba refuses the user from here before any password), or when the port is closed from
    here (refused or dropped, so no login is possible); C(error) when a login could not be tried (the name does not
    resolve, no route, an unexpected answer), never a pass.
  - Read-only (a successful login is closed at once) and safe in check mode.
version_added: 0.2.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - analytics.platform.probe
options:
  vantage:
    description: A label for where the probe runs, for example C(client-x (outside)).
    type: str
    required: true
  postgresql:
    description: PostgreSQL servers, each with C(host) (inventory name), C(address) and C(port) (5432).
    type: list
    elements: dict
    default: []
  postgresql_logins:
    description: Logins to try on each PostgreSQL server, each with C(user), C(password) and C(db).
    type: list
    elements: dict
    default: []
  kafka:
    description: Kafka brokers, each with C(host) (inventory name), C(address) and C(port) (the SASL_SSL listener).
    type: list
    elements: dict
    default: []
  kafka_logins:
    description: Logins to try on each broker (SCRAM-SHA-512), each with C(user) and C(password).
    type: list
    elements: dict
    default: []
  s3:
    description: S3 endpoints, each with C(host) (inventory name) and C(endpoint) (an https URL).
    type: list
    elements: dict
    default: []
  s3_credentials:
    description: Credentials to try on each S3 endpoint, each with C(access_key) and C(secret_key).
    type: list
    elements: dict
    default: []
  retired_postgresql_logins:
    description:
      - Credentials that were rotated out (C(audit_retired_credentials)), tried like the default ones, each with
        C(user), C(password) and C(db). Accepted, they fail the control like a default password; the evidence names
        the user with C(retired), never the secret.
    type: list
    elements: dict
    default: []
    suboptions:
      user:
        description: The login role.
        type: str
        required: true
      password:
        description: Its retired password.
        type: str
        required: true
      db:
        description: The database to log in to.
        type: str
        default: postgres
  retired_kafka_logins:
    description: Retired Kafka logins (SCRAM-SHA-512).
    type: list
    elements: dict
    default: []
    suboptions:
      user:
        description: The SCRAM user.
        type: str
        required: true
      password:
        description: Its retired password.
        type: str
        required: true
  retired_s3_credentials:
    description: Retired S3 key pairs.
    type: list
    elements: dict
    default: []
    suboptions:
      access_key:
        description: The retired access key.
        type: str
        required: true
      secret_key:
        description: Its secret key.
        type: str
        required: true
  timeout:
    description: Seconds per connection.
    type: float
    default: 5
notes:
  - The login lists are well-known public values; the evidence names them on purpose.
"""

EXAMPLES = r"""
- name: Try the default logins from outside
  analytics.platform.audit_logins:
    vantage: client-x (outside)
    postgresql: [{host: store-a, address: 10.0.1.12, port: 5432}]
    postgresql_logins: [{user: postgres, password: postgres, db: postgres}]
    kafka: [{host: kafka-a, address: 10.0.1.11, port: 9092}]
    kafka_logins: [{user: admin, password: admin}]
    s3: [{host: store-a, endpoint: "https://10.0.1.12:8333"}]
    s3_credentials: [{access_key: minioadmin, secret_key: minioadmin}]
"""

RETURN = r"""
audit:
  description: One default_passwords result per probed host and component (host, control, target, status, reason,
    evidence).
  returned: always
  type: list
  elements: dict
"""

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils import audit_wire as wire
from ansible_collections.analytics.platform.plugins.module_utils.audit import result, tcp_state


def attempt(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # no connection or an unexpected answer: this login could not be tried
        return "error", f"{type(e).__name__}: {e}"[:200]


def judge(host: str, component: str, vantage: str, tried: list[tuple[str, tuple[str, str]]], extra=None) -> dict:
    accepted = [f"{who} ({detail})" for who, (verdict, detail) in tried if verdict == "accepted"]
    errors = [f"{who}: {detail}" for who, (verdict, detail) in tried if verdict == "error"]
    ev = {
        "component": component,
        "vantage": vantage,
        "answers": {who: f"{verdict}: {detail}" for who, (verdict, detail) in tried},
        **(extra or {}),
    }
    target = f"{component} logins from {vantage}"
    if accepted:
        r = result(
            "default_passwords", "fail", f"{component} accepts from {vantage}: {', '.join(accepted)}", target, **ev
        )
    elif errors:
        r = result(
            "default_passwords",
            "error",
            f"{component}: could not try every login from {vantage}: {errors[0]}",
            target,
            **ev,
        )
    elif not tried:
        r = result("default_passwords", "error", f"{component}: no login to try", target, **ev)
    else:
        no_entry = sum(verdict == "no_entry" for _unused, (verdict, _unused2) in tried)
        retired = sum(who.startswith("retired ") for who, _unused in tried)
        kinds = f"{len(tried) - retired} default and weak logins" + (f" and {retired} retired ones" if retired else "")
        reason = f"{component} refuses the {kinds} tried from {vantage}"
        reason += f" ({no_entry} not allowed from here at all)" if no_entry else ""
        r = result("default_passwords", "pass", reason, target, **ev)
    return dict(r, host=host)


def retired(fields: dict[str, bool]) -> dict:
    """The argument spec of a list of retired logins: {field: secret?}; only the secret fields are no_log."""
    options = {f: {"type": "str", "required": f != "db", "no_log": secret} for f, secret in fields.items()}
    if "db" in options:
        options["db"]["default"] = "postgres"
    return {"type": "list", "elements": "dict", "default": [], "options": options}


def main():
    module = AnsibleModule(
        argument_spec={
            "vantage": {"type": "str", "required": True},
            "postgresql": {"type": "list", "elements": "dict", "default": []},
            "postgresql_logins": {"type": "list", "elements": "dict", "default": [], "no_log": False},
            "kafka": {"type": "list", "elements": "dict", "default": []},
            "kafka_logins": {"type": "list", "elements": "dict", "default": [], "no_log": False},
            "s3": {"type": "list", "elements": "dict", "default": []},
            "s3_credentials": {"type": "list", "elements": "dict", "default": [], "no_log": False},
            # Secrets, unlike the public defaults above: the passwords are masked in logs and never in the evidence
            # (only they: masking the whole entries would mask every mention of the user names in the results too).
            "retired_postgresql_logins": retired({"user": False, "password": True, "db": False}),
            "retired_kafka_logins": retired({"user": False, "password": True}),
            "retired_s3_credentials": retired({"access_key": False, "secret_key": True}),
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    t = p["timeout"]
    # (label, login): the public defaults under their own names, the retired ones as "retired <name>".
    pg_logins = [(lg["user"], lg) for lg in p["postgresql_logins"]]
    pg_logins += [(f"retired {lg['user']}", lg) for lg in p["retired_postgresql_logins"]]
    kafka_logins = [(lg["user"], lg) for lg in p["kafka_logins"]]
    kafka_logins += [(f"retired {lg['user']}", lg) for lg in p["retired_kafka_logins"]]
    s3_logins = [(c["access_key"], c) for c in p["s3_credentials"]]
    s3_logins += [(f"retired {c['access_key']}", c) for c in p["retired_s3_credentials"]]
    services = [("postgresql", s.get("address") or s["host"], int(s.get("port", 5432)), s) for s in p["postgresql"]]
    services += [("kafka", b.get("address") or b["host"], int(b.get("port", 9092)), b) for b in p["kafka"]]
    for s in p["s3"]:
        u = urlparse(s["endpoint"])
        services.append(("s3", u.hostname, u.port or (443 if u.scheme == "https" else 80), s))
    with ThreadPoolExecutor(max_workers=16) as pool:
        states = list(pool.map(lambda svc: tcp_state(svc[1], svc[2], t), services))
    out, jobs = [], []  # jobs: (host, component, who, callable, args)
    for (component, address, port, s), (state, why) in zip(services, states, strict=True):
        target = f"{component} logins from {p['vantage']}"
        ev = {"component": component, "vantage": p["vantage"], "address": f"{address}:{port}", "state": state}
        if state == "closed":
            reason = f"{component} is not reachable from {p['vantage']} ({why}): no login is possible from here"
            out.append(dict(result("default_passwords", "pass", reason, target, **ev), host=s["host"]))
            continue
        if state == "error":
            reason = f"{component} at {address}:{port} could not be probed from {p['vantage']}: {why}"
            out.append(dict(result("default_passwords", "error", reason, target, **ev), host=s["host"]))
            continue
        if component == "kafka" and wire.kafka_plaintext(address, port, t):
            reason = f"Kafka accepts PLAINTEXT clients without any login (from {p['vantage']})"
            out.append(dict(result("default_passwords", "fail", reason, target, plaintext=True, **ev), host=s["host"]))
            continue
        if component == "postgresql":
            jobs += [
                (
                    s["host"],
                    component,
                    who,
                    wire.pg_login,
                    (address, port, lg["user"], lg["password"], lg.get("db", "postgres"), None, t),
                )
                for who, lg in pg_logins
            ]
        elif component == "kafka":
            jobs += [
                (
                    s["host"],
                    component,
                    who,
                    wire.kafka_login,
                    (address, port, lg["user"], lg["password"], None, "SCRAM-SHA-512", t),
                )
                for who, lg in kafka_logins
            ]
        else:
            jobs += [
                (
                    s["host"],
                    component,
                    who,
                    wire.s3_login,
                    (s["endpoint"], c["access_key"], c["secret_key"], None, "us-east-1", t),
                )
                for who, c in s3_logins
            ]
        if not any(j[0] == s["host"] and j[1] == component for j in jobs):
            out.append(judge(s["host"], component, p["vantage"], []))
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda j: attempt(j[3], *j[4]), jobs))
    grouped: dict[tuple[str, str], list] = {}
    for (host, component, who, _fn, _args), answer in zip(jobs, answers, strict=True):
        grouped.setdefault((host, component), []).append((who, answer))
    for (host, component), tried in grouped.items():
        out.append(judge(host, component, p["vantage"], tried))
    module.exit_json(changed=False, audit=out)


if __name__ == "__main__":
    main()
