#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: audit_host
short_description: Probe one platform host from the inside for the security audit (one call for all of its controls)
description:
  - Runs on a platform host and returns one audit result per (control, target) it probes there
    (C(audit) list), each with its evidence.
  - "C(tls): each of O(tls_endpoints) as a client sees it (chain against O(ca_path), the host's name, expiry, TLS 1.2
    floor, older protocols refused); an endpoint that does not answer is an C(error)."
  - "C(firewall) (target C(listening ports)): every TCP port listening on an address other than loopback must be one
    the port matrix names for this host (O(matrix_ports)); the others are named with the processes behind them."
  - "C(secrets): the values of O(secrets) in no process's arguments, no world-readable file under O(secret_paths)
    and nowhere in the systemd journal of the last O(journal_days) days. Secrets are named, never shown."
  - "C(security_updates): unattended-upgrades installed and on, and no security update pending longer than
    O(update_max_days). C(audit_logging) (target C(auditd)): the audit rules installed and auditd running (not
    applicable in a container, with the reason)."
  - "With O(postgresql): C(db_encryption) and C(audit_logging) (target C(pgaudit)) from the running server's settings
    and pg_hba (psql as the C(postgres) user over the local socket); C(db_replication): a primary has
    O(postgresql_replicas) replicas streaming (none expected is a fail: one server holds the only copy), a replica's WAL
    receiver streams; C(db_backups): pgBackRest's repository (O(backup_conf)) is off the host (or a shared mount,
    O(backup_repo_shared)), encrypted, ok, and its newest good backup younger than O(backup_max_age_hours), and a
    primary archives its WAL without failing."
  - "With O(etcd): C(etcd_security): a request without a user is refused on the client port (TLS verified), and the
    peer port refuses a client without a certificate; plain HTTP answering on either port is a fail."
  - Replaces the secret_exposure and pg_hardening modules of 0.1.0.
  - Every probe that cannot decide (a command fails, an answer is not what it should be, the probe itself crashes)
    gives an C(error) for its control and target, never a pass and never a missing entry. Read-only; safe in check
    mode.
version_added: 0.2.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - analytics.platform.probe
options:
  server_name:
    description: The host's name as its certificates carry it (its inventory name).
    type: str
    required: true
  address:
    description: Where the host's own services are reached from here. Defaults to O(server_name).
    type: str
  tls_endpoints:
    description: The TLS endpoints this host serves, each with C(port), C(service) and C(protocol) (C(tls), or
      C(postgres) for PostgreSQL's in-protocol TLS).
    type: list
    elements: dict
    default: []
  ca_path:
    description: The platform CA on this host.
    type: path
    required: true
  matrix_ports:
    description: The TCP ports the port matrix names for this host (the firewall role's matrix, by group).
    type: list
    elements: int
    required: true
  secrets:
    description: Named secret values (name -> value) of this host's services.
    type: dict
    default: {}
  secret_paths:
    description: Folders whose world-readable files must not hold a secret.
    type: list
    elements: path
    default: [/etc/analytics-platform, /etc/kafka, /etc/seaweedfs, /etc/minio, /etc/postgresql, /opt/analytics-platform]
  journal_days:
    description: How many days of the journal to search for the secrets (0 skips the journal).
    type: int
    default: 30
  update_max_days:
    description: Pending security updates are a finding when unattended-upgrades has not run for this many days.
    type: int
    default: 2
  audit_rules_file:
    description: The audit rules the base role installs.
    type: path
    default: /etc/audit/rules.d/50-analytics-platform.rules
  postgresql:
    description: This host runs PostgreSQL (probe its settings).
    type: bool
    default: false
  postgresql_database:
    description: Database psql connects to for the settings.
    type: str
    default: postgres
  postgresql_replicas:
    description: How many replicas stream from the primary (the other PostgreSQL hosts of the inventory).
    type: int
    default: 0
  backup_stanza:
    description: pgBackRest's stanza of this server.
    type: str
    default: analytics
  backup_conf:
    description: pgBackRest's configuration file.
    type: path
    default: /etc/pgbackrest.conf
  backup_max_age_hours:
    description: The newest backup must be younger than this.
    type: float
    default: 3
  backup_repo_shared:
    description: A posix repository is a mount every member shares (not the host's own disk).
    type: bool
    default: false
  analytics_api:
    description: This host runs the ingest API (report the consent mode its running process uses).
    type: bool
    default: false
  etcd:
    description: This host runs an etcd member (probe its client and peer ports).
    type: bool
    default: false
  etcd_client_port:
    description: etcd's client port.
    type: int
    default: 2379
  etcd_peer_port:
    description: etcd's peer port.
    type: int
    default: 2380
  timeout:
    description: Seconds per network connection.
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: Probe this host
  analytics.platform.audit_host:
    server_name: "{{ inventory_hostname }}"
    address: "{{ ansible_host }}"
    ca_path: /etc/analytics-platform/pki/ca.crt
    tls_endpoints: [{port: 9100, service: node_exporter, protocol: tls}]
    matrix_ports: [22, 9100]
    secrets: {kafka_admin_password: "{{ kafka_admin_password }}"}
  no_log: true
"""

RETURN = r"""
audit:
  description: One result per (control, target) probed here, each with control, target, status, reason and evidence.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils import audit_host as probes
from ansible_collections.analytics.platform.plugins.module_utils.audit import guarded, result
from ansible_collections.analytics.platform.plugins.module_utils.audit_tls import probe as tls_probe


def main():
    module = AnsibleModule(
        argument_spec={
            "server_name": {"type": "str", "required": True},
            "address": {"type": "str"},
            "tls_endpoints": {"type": "list", "elements": "dict", "default": []},
            "ca_path": {"type": "path", "required": True},
            "matrix_ports": {"type": "list", "elements": "int", "required": True},
            "secrets": {"type": "dict", "default": {}, "no_log": True},
            "secret_paths": {"type": "list", "elements": "path", "default": probes.SECRET_PATHS, "no_log": False},
            "journal_days": {"type": "int", "default": 30},
            "update_max_days": {"type": "int", "default": 2},
            "audit_rules_file": {"type": "path", "default": "/etc/audit/rules.d/50-analytics-platform.rules"},
            "postgresql": {"type": "bool", "default": False},
            "postgresql_database": {"type": "str", "default": "postgres"},
            "postgresql_replicas": {"type": "int", "default": 0},
            "backup_stanza": {"type": "str", "default": "analytics"},
            "backup_conf": {"type": "path", "default": "/etc/pgbackrest.conf"},
            "backup_max_age_hours": {"type": "float", "default": 3},
            "backup_repo_shared": {"type": "bool", "default": False},
            "analytics_api": {"type": "bool", "default": False},
            "etcd": {"type": "bool", "default": False},
            "etcd_client_port": {"type": "int", "default": 2379},
            "etcd_peer_port": {"type": "int", "default": 2380},
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params

    def run(argv):
        """(rc, stdout, stderr); a command that is not installed is rc 127, as a shell says (the probes decide)."""
        try:
            return module.run_command(argv, cwd="/", handle_exceptions=False)  # runuser keeps the cwd: any user's
        except OSError as e:
            return 127, "", f"{argv[0]}: {e.strerror}"

    out = []
    if not p["tls_endpoints"]:
        reason = "this host serves none of the audited TLS endpoints (audit_tls_endpoints, by group)"
        out.append(result("tls", "not_applicable", reason, "endpoints", groups_checked=True))
    for ep in p["tls_endpoints"]:
        target = f"{ep.get('service', 'port')}:{ep['port']}"
        params = {
            "host": p["address"] or p["server_name"],
            "port": int(ep["port"]),
            "server_name": p["server_name"],
            "ca_path": p["ca_path"],
            "protocol": ep.get("protocol", "tls"),
            "min_protocol": "TLSv1.2",
            "min_days": 14,
            "timeout": p["timeout"],
            "control": "tls",
            "target": target,
        }
        out += guarded("tls", target, tls_probe, params)
    out += guarded("firewall", "listening ports", probes.listening_ports, p["matrix_ports"])
    out += guarded("secrets", "process arguments", probes.secrets_in_processes, p["secrets"])
    out += guarded("secrets", "readable files", probes.secrets_in_files, p["secrets"], p["secret_paths"])
    if p["journal_days"] > 0:
        out += guarded("secrets", "journal", probes.secrets_in_journal, p["secrets"], p["journal_days"])
    out += guarded("security_updates", "unattended-upgrades", probes.security_updates, run, p["update_max_days"])
    out += guarded("audit_logging", "auditd", probes.auditd, run, p["audit_rules_file"])
    if p["postgresql"]:
        try:
            settings = probes.pg_settings(run, p["postgresql_database"])
        except Exception as e:  # the server did not answer or answered nonsense: both controls are undecided
            reason = f"the probe failed: {type(e).__name__}: {e}"[:400]
            out += [
                result("db_encryption", "error", reason, "postgresql settings and pg_hba"),
                result("audit_logging", "error", reason, "pgaudit"),
            ]
        else:
            out += probes.pg_evaluate(settings)
        try:
            state = probes.pg_ha_state(run, p["postgresql_database"])
        except Exception as e:
            reason = f"the probe failed: {type(e).__name__}: {e}"[:400]
            out += [
                result("db_replication", "error", reason, "replication"),
                result("db_backups", "error", reason, "backups"),
            ]
        else:
            out += guarded("db_replication", "replication", probes.pg_replication, state, p["postgresql_replicas"])
            out += guarded(
                "db_backups",
                "backups",
                probes.pg_backups,
                run,
                state,
                p["backup_stanza"],
                p["backup_max_age_hours"],
                p["backup_repo_shared"],
                p["backup_conf"],
            )
    if p["analytics_api"]:
        out += guarded("consent", "analytics-api", probes.api_consent, run)
    if p["etcd"]:
        address = p["address"] or p["server_name"]
        out += guarded(
            "etcd_security",
            "client authentication",
            probes.etcd_security,
            address,
            p["etcd_client_port"],
            p["etcd_peer_port"],
            p["ca_path"],
            p["timeout"],
        )
    module.exit_json(changed=False, audit=out)


if __name__ == "__main__":
    main()
