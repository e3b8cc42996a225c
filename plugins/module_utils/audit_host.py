# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The probes that look at a host from the inside (the audit_host module runs them all in one call per host):
secrets in process arguments, readable files and the journal; listening ports against the port matrix; security
updates; audit logging; PostgreSQL's own settings.

`run` is how a probe runs a command: a callable (argv) -> (rc, stdout, stderr), AnsibleModule.run_command in modules.
"""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import time

from ansible_collections.analytics.platform.plugins.module_utils.audit import result

MAX_FILE = 1 << 20
SECRET_PATHS = [
    "/etc/analytics-platform",
    "/etc/kafka",
    "/etc/seaweedfs",
    "/etc/minio",
    "/etc/postgresql",
    "/opt/analytics-platform",
]
MIN_SECRET = 8  # shorter values match by chance and are not searched for


def _wanted(secrets: dict) -> dict[str, bytes]:
    return {n: v.encode() for n, v in secrets.items() if isinstance(v, str) and len(v) >= MIN_SECRET}


def secrets_in_processes(secrets: dict) -> dict:
    wanted = _wanted(secrets)
    found, processes = [], 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:  # the process ended meanwhile
            continue
        processes += 1
        for name, value in wanted.items():
            if value in cmdline:
                exe = cmdline.split(b"\0", 1)[0].decode(errors="replace")
                found.append(f"{name} in the arguments of process {pid} ({exe})")
    if processes == 0:
        raise RuntimeError("no process command line could be read (/proc)")
    ev = {"secrets_checked": sorted(wanted), "processes": processes, "found": found}
    return _secrets_result("process arguments", wanted, found, f"none in {processes} command lines", ev)


def secrets_in_files(secrets: dict, paths: list[str]) -> dict:
    wanted = _wanted(secrets)
    found, files = [], 0
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
    ev = {"secrets_checked": sorted(wanted), "world_readable_files": files, "paths": paths, "found": found}
    return _secrets_result("readable files", wanted, found, f"none in {files} world-readable files", ev)


def secrets_in_journal(secrets: dict, days: int) -> dict:
    """The systemd journal of the last `days` days (what services and Ansible modules logged), read as a stream."""
    wanted = _wanted(secrets)
    argv = ["journalctl", "--no-pager", "-q", "-o", "cat", "--since", f"-{int(days)}d"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603 - fixed arguments
    keep = max((len(v) for v in wanted.values()), default=1) - 1
    hits, size, tail = set(), 0, b""
    try:
        while chunk := proc.stdout.read(1 << 20):
            size += len(chunk)
            window = tail + chunk
            hits |= {name for name, value in wanted.items() if value in window}
            tail = window[-keep:] if keep else b""
        err = proc.stderr.read().decode(errors="replace")
    finally:
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"journalctl failed ({rc}): {err.strip()[:200]}")
    found = [f"{name} in the journal" for name in sorted(hits)]
    ev = {"secrets_checked": sorted(wanted), "journal_bytes": size, "days": days, "found": found}
    return _secrets_result("journal", wanted, found, f"none in {size} bytes of journal ({days} days)", ev)


def _secrets_result(target, wanted, found, clean, ev) -> dict:
    if not wanted:
        return result(
            "secrets", "not_applicable", "no secret of this host's services is known to the audit", target, **ev
        )
    if found:
        return result("secrets", "fail", "; ".join(found[:5]), target, **ev)
    return result("secrets", "pass", f"{len(wanted)} secrets: {clean}", target, **ev)


# --- listening ports --------------------------------------------------------------------------------------------------
def _address(hexaddr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words in the host's (little-endian) byte order."""
    raw = bytes.fromhex(hexaddr)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw)


def _local_only(address) -> bool:
    """Reachable from this host only: loopback (127.0.0.0/8, ::1, or IPv4 loopback mapped into IPv6)."""
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _listeners() -> dict[int, set[str]]:
    """TCP ports in LISTEN on an address other than loopback -> the inodes of their sockets."""
    out: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            address, port = local.split(":")
            if state != "0A" or _local_only(_address(address)):
                continue
            out.setdefault(int(port, 16), set()).add(inode)
    return out


def _owners(inodes: set[str]) -> list[str]:
    names = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        names.add(f.read().strip())
                except OSError:
                    names.add(pid)
    return sorted(names)


def listening_ports(allowed: list[int]) -> dict:
    listening = _listeners()
    if not listening and not os.path.exists("/proc/net/tcp"):
        raise RuntimeError("/proc/net/tcp cannot be read")
    extra = {port: _owners(inodes) for port, inodes in sorted(listening.items()) if port not in set(allowed)}
    ev = {
        "listening": sorted(listening),
        "allowed_by_matrix": sorted(set(allowed)),
        "not_in_matrix": {str(p): who for p, who in extra.items()},
    }
    if extra:
        named = ", ".join(f"{p} ({', '.join(who) or '?'})" for p, who in extra.items())
        return result(
            "firewall", "fail", f"listens on ports the port matrix does not name: {named}", "listening ports", **ev
        )
    return result("firewall", "pass", f"listens only on matrix ports ({sorted(listening)})", "listening ports", **ev)


# --- security updates, audit logging ----------------------------------------------------------------------------------
def security_updates(run, max_days: int) -> dict:
    rc, out, err = run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"])
    if rc != 0:
        raise RuntimeError(f"apt-get -s upgrade failed ({rc}): {(err or out).strip()[-200:]}")
    pending = [line.split()[1] for line in out.splitlines() if line.startswith("Inst ") and "-security" in line]
    rc_c, conf, _unused = run(["apt-config", "dump", "APT::Periodic::Unattended-Upgrade"])
    enabled = rc_c == 0 and '"1"' in conf
    rc_q, status, _unused = run(["dpkg-query", "-W", "-f=${Status}", "unattended-upgrades"])
    installed = rc_q == 0 and "ok installed" in status
    stamp = "/var/lib/apt/periodic/unattended-upgrades-stamp"
    last_days = int((time.time() - os.stat(stamp).st_mtime) // 86400) if os.path.exists(stamp) else None
    stale = bool(pending) and (last_days is None or last_days > max_days)
    ev = {
        "unattended_upgrades": enabled and installed,
        "installed": installed,
        "enabled": enabled,
        "pending_security": len(pending),
        "pending": pending[:20],
        "last_run_days": last_days,
    }
    if not (enabled and installed):
        return result("security_updates", "fail", "unattended security upgrades are OFF", "unattended-upgrades", **ev)
    if stale:
        reason = f"{len(pending)} security updates pending and no unattended run in {max_days} days"
        return result("security_updates", "fail", reason, "unattended-upgrades", **ev)
    return result("security_updates", "pass", "unattended security upgrades are on", "unattended-upgrades", **ev)


def auditd(run, rules_file: str) -> dict:
    rc_v, _unused, _unused2 = run(["systemd-detect-virt", "--container"])
    container = rc_v == 0
    rules = os.path.isfile(rules_file) and os.path.getsize(rules_file) > 0
    _rc, active, _unused = run(["systemctl", "is-active", "auditd"])
    rc_l, listed, _unused = run(["auditctl", "-l"])
    loaded = sum(" -k " in line for line in listed.splitlines()) if rc_l == 0 else 0
    ev = {
        "component": "auditd",
        "container": container,
        "rules_file": rules_file,
        "rules_installed": rules,
        "active": active.strip(),
        "loaded_rules": loaded,
    }
    if not rules:
        return result("audit_logging", "fail", f"no audit rules installed ({rules_file})", "auditd", **ev)
    if container:
        reason = (
            "auditd rules installed, but a container cannot run auditd: the kernel audit subsystem is not namespaced"
        )
        return result("audit_logging", "not_applicable", reason, "auditd", **ev)
    if active.strip() == "active" and loaded > 0:
        return result("audit_logging", "pass", f"auditd active with {loaded} rules loaded", "auditd", **ev)
    return result(
        "audit_logging", "fail", f"auditd {active.strip() or 'inactive'} with {loaded} rules loaded", "auditd", **ev
    )


# --- PostgreSQL -------------------------------------------------------------------------------------------------------
PG_QUERY = r"""
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


def pg_settings(run, database: str = "postgres", psql: str = "psql") -> dict:
    argv = ["runuser", "-u", "postgres", "--", psql, "-XAtq", "-d", database, "-v", "ON_ERROR_STOP=1", "-c", PG_QUERY]
    rc, out, err = run(argv)
    if rc != 0:
        raise RuntimeError(f"PostgreSQL did not answer: {((err or out).strip().splitlines() or [str(rc)])[-1]}")
    try:
        data = json.loads(out)
    except ValueError:
        raise RuntimeError(f"PostgreSQL's answer is not the expected JSON: {out.strip()[:120]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise RuntimeError(f"PostgreSQL's answer lacks its settings: {out.strip()[:120]!r}")
    return data


def pg_evaluate(data: dict) -> list[dict]:
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
    target = "postgresql settings and pg_hba"
    enc = (
        result("db_encryption", "fail", "; ".join(problems), target, **ev)
        if problems
        else result(
            "db_encryption",
            "pass",
            f"ssl on ({s['ssl_min_protocol_version']}+), only hostssl scram-sha-256 rules",
            target,
            **ev,
        )
    )
    audit_problems = []
    if "pgaudit" not in (s.get("shared_preload_libraries") or ""):
        audit_problems.append("pgaudit is not loaded")
    elif s.get("pgaudit.log") in (None, "", "none"):
        audit_problems.append("pgaudit.log is none")
    if s.get("log_connections") != "on":
        audit_problems.append("log_connections is off")
    aev = {k: s.get(k) for k in ("shared_preload_libraries", "pgaudit.log", "log_connections")}
    aud = (
        result("audit_logging", "fail", "; ".join(audit_problems), "pgaudit", component="postgresql", **aev)
        if audit_problems
        else result(
            "audit_logging",
            "pass",
            f"pgaudit logs {s.get('pgaudit.log')}, connections logged",
            "pgaudit",
            component="postgresql",
            **aev,
        )
    )
    return [enc, aud]
