# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The audit's one catalogue of controls, and what every probe returns.

CATALOGUE: each control of the production guide's security checklist, with its checklist item, severity, the
inventory groups whose hosts it is probed on (`all` for every platform host), and the remediation. The probes name
controls from it, the role uses it to know what must be reported for each host (an unreachable host gets an `error`
for each), and the report takes titles, severities and remediations from it (JSON, JUnit, SARIF, HTML).

A result is a dict: control, target (what exactly was probed on the host: a port, a login, a check), status (pass,
fail, error or not_applicable), reason (one line) and evidence (what was probed and seen). The report keeps one entry
per (host, control, target). Probes never raise for what they find; a probe that cannot decide returns `error`, never
a pass (`guarded` turns an exception into one).
"""

from __future__ import annotations

import socket
import traceback

STATUSES = ("pass", "fail", "error", "not_applicable")
SCHEMA_VERSION = 2

CATALOGUE = {
    "default_passwords": {
        "title": "Change all default passwords",
        "severity": "critical",
        "groups": ["postgresql", "kafka", "seaweedfs", "minio", "grafana"],
        "remediation": "Set every credential from vault or the environment (the roles refuse known defaults in "
        "preflight), then rotate the credential that was accepted; the audit tries the known default and weak logins, "
        "and the retired credentials of past rotations (audit_retired_credentials), from outside and from an "
        "application host.",
    },
    "tls": {
        "title": "TLS for all services",
        "severity": "high",
        "groups": ["all"],
        "remediation": "Serve the endpoint with the platform CA's host certificate (pki role) and a TLS 1.2 floor, "
        "renew certificates before they expire, and close plain-text ports.",
    },
    "api_auth": {
        "title": "Authentication on the Analytics API",
        "severity": "critical",
        "groups": ["nginx"],
        "remediation": "Configure analytics_api_keys (hashed API keys) and keep the API behind nginx; every "
        "request without a valid x-api-key must get 401.",
    },
    "api_rate_limit": {
        "title": "Rate limiting on API endpoints",
        "severity": "medium",
        "groups": ["nginx"],
        "remediation": "Keep nginx_rate_limit and analytics_api_rate_limit set; a burst beyond them must get 429.",
    },
    "secrets": {
        "title": "Secrets from environment or vault (none in process arguments, readable files, logs or the inventory)",
        "severity": "high",
        "groups": ["all"],
        "remediation": "Move the secret into vault (ansible-vault encrypt_string) or an environment lookup, pass it "
        "to services through root-only EnvironmentFiles, mark tasks no_log, and rotate the exposed secret.",
    },
    "kafka_sasl_ssl": {
        "title": "Kafka SASL/SSL",
        "severity": "critical",
        "groups": ["kafka"],
        "remediation": "Listen on SASL_SSL only with SCRAM-SHA-512, close PLAINTEXT listeners, and keep the "
        "StandardAuthorizer with allow.everyone.if.no.acl.found=false (the kafka role's settings).",
    },
    "firewall": {
        "title": "Network access restricted by firewall",
        "severity": "high",
        "groups": ["all"],
        "remediation": "Apply the firewall role: only the port matrix's public entries answer from outside, and a "
        "host listens only on the ports the matrix names for it (stop or bind to loopback what it does not name).",
    },
    "cors": {
        "title": "CORS configured",
        "severity": "medium",
        "groups": ["nginx"],
        "remediation": "Set analytics_api_cors_origins to the browser origins that may call the API; a foreign "
        "origin must never be echoed.",
    },
    "reverse_proxy": {
        "title": "Reverse proxy for external access",
        "severity": "high",
        "groups": ["analytics_api"],
        "remediation": "Reach the API only through nginx: the firewall opens the API port to the load balancers only.",
    },
    "db_encryption": {
        "title": "Database connections encrypted",
        "severity": "high",
        "groups": ["postgresql"],
        "remediation": "ssl on with a TLS 1.2 floor, scram-sha-256 password hashes, and only hostssl scram-sha-256 "
        "rules in pg_hba (the postgresql role's settings); reset any MD5 password hash.",
    },
    "db_replication": {
        "title": "Database replicated across zones (replicas streaming)",
        "severity": "high",
        "groups": ["postgresql"],
        "remediation": "Run PostgreSQL on hosts in two or more zones (groups postgresql_primary and "
        "postgresql_replica; Patroni fails over between them); a replica that does not stream: check its log, "
        "rebuild it with patronictl reinit.",
    },
    "db_backups": {
        "title": "Database backups fresh, encrypted and off the host, WAL archived",
        "severity": "high",
        "groups": ["postgresql"],
        "remediation": "Point pgBackRest at the object store (postgresql_backup_s3_endpoint) with "
        "postgresql_backup_cipher_pass set, keep the backup timers running (systemctl list-timers 'pgbackrest-*'), "
        "and fix what stops WAL archiving (the pgBackRest log).",
    },
    "etcd_security": {
        "title": "etcd: TLS, authentication on, peers by certificate",
        "severity": "high",
        "groups": ["etcd"],
        "remediation": "Deploy etcd with the etcd role: TLS on the client and peer ports, peers must present a "
        "certificate of the platform CA, and authentication on with a user per client (etcd_clients).",
    },
    "consent": {
        "title": "Consent signals honoured by the ingest API (compliance: consent tracking)",
        "severity": "medium",
        "groups": ["analytics_api"],
        "remediation": "Set analytics_api_consent_mode to anonymize (the default) or drop, so that a request with "
        "Sec-GPC: 1 or DNT: 1 has its events stored without identifiers or not at all; where consent is handled "
        "before the API, waive this control with the reason (audit_waivers).",
    },
    "security_updates": {
        "title": "Regular security updates",
        "severity": "high",
        "groups": ["all"],
        "remediation": "Enable unattended-upgrades (base role) and apply the pending security updates.",
    },
    "audit_logging": {
        "title": "Audit logging",
        "severity": "medium",
        "groups": ["all"],
        "remediation": "Install the base role's audit rules and run auditd (on VMs); load pgaudit and log "
        "connections on PostgreSQL.",
    },
    "object_store": {
        "title": "Object store: no anonymous access, restricted bucket access, versioning",
        "severity": "critical",
        "groups": ["seaweedfs", "minio"],
        "remediation": "Give every client its own identity limited to its bucket, allow no anonymous access and no "
        "public bucket policy, and enable versioning on the data bucket (seaweedfs/minio roles).",
    },
    "grafana": {
        "title": "Grafana: strong admin password, OAuth",
        "severity": "high",
        "groups": ["grafana"],
        "remediation": "Set grafana_admin_password from vault and sign users in through an OAuth provider.",
    },
}

SEVERITY_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


def result(control: str, status: str, reason: str, target: str = "", **evidence) -> dict:
    if status not in STATUSES:
        raise ValueError(f"unknown audit status {status!r}")
    if control not in CATALOGUE:
        raise ValueError(f"unknown audit control {control!r}")
    return {"control": control, "target": target, "status": status, "reason": reason, "evidence": evidence}


def guarded(control: str, target: str, probe, *args, **kwargs) -> list[dict]:
    """Run a probe; whatever it raises becomes an `error` result for (control, target) with the reason: a probe that
    crashes never drops its host from the report and never passes."""
    try:
        out = probe(*args, **kwargs)
    except Exception as e:  # any failure of the probe itself: the control could not be decided
        tb = traceback.format_exc(limit=3).strip().splitlines()
        return [
            result(
                control,
                "error",
                f"the probe failed: {type(e).__name__}: {e}"[:400],
                target,
                exception=type(e).__name__,
                trace=tb[-3:],
            )
        ]
    return out if isinstance(out, list) else [out]


def controls_for(groups: list[str]) -> list[str]:
    """The controls probed on a host that is in `groups` (its group_names)."""
    mine = set(groups)
    return [c for c, d in CATALOGUE.items() if "all" in d["groups"] or mine & set(d["groups"])]


def worst(results: list[dict]) -> str:
    """The status of a group of results: error beats fail beats pass; all not_applicable stays not_applicable."""
    statuses = {r["status"] for r in results}
    for s in ("error", "fail", "pass"):
        if s in statuses:
            return s
    return "not_applicable"


def tcp_state(host: str, port: int, timeout: float) -> tuple[str, str]:
    """What a TCP connection attempt shows: ('open', ''), ('closed', why) when refused or silently dropped (a
    firewall), or ('error', why) when the probe could not tell: the name does not resolve, no route, another failure.
    Only 'open' and 'closed' are evidence about the port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return "error", f"{host} does not resolve: {e}"
    family, kind, proto, _canon, addr = infos[0]
    s = socket.socket(family, kind, proto)
    s.settimeout(timeout)
    try:
        s.connect(addr)
        return "open", ""
    except ConnectionRefusedError:
        return "closed", "refused"
    except TimeoutError:
        return "closed", f"no answer in {timeout:g}s (dropped)"
    except OSError as e:
        return "error", f"{type(e).__name__}: {e}"
    finally:
        s.close()
