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
CONSENT_MODES = {"anonymize": True, "drop": True, "ignore": False}


def api_consent(run, unit: str = "analytics-api") -> dict:
    """The consent mode the running API uses: API_CONSENT_MODE in its main process's environment (what it started
    with, not what a file says now), anonymize when unset (the service's default). Only that variable is read back."""
    rc, out, err = run(["systemctl", "show", "--property", "MainPID", "--value", unit])
    pid = out.strip() if rc == 0 else ""
    if not pid.isdigit() or pid == "0":
        raise RuntimeError(f"{unit} is not running (systemctl: {(err or out).strip() or 'no main process'})")
    with open(f"/proc/{pid}/environ", "rb") as f:
        found = [e for e in f.read().split(b"\0") if e.startswith(b"API_CONSENT_MODE=")]
    mode = found[-1].split(b"=", 1)[1].decode("utf-8", "replace") if found else None
    effective = mode or "anonymize"
    ev = {"unit": unit, "pid": int(pid), "API_CONSENT_MODE": mode, "effective": effective}
    if effective not in CONSENT_MODES:
        return result("consent", "error", f"{unit} runs with an unknown consent mode {effective!r}", unit, **ev)
    if CONSENT_MODES[effective]:
        what = "stored without identifiers" if effective == "anonymize" else "not stored"
        return result("consent", "pass", f"events of requests without consent are {what} ({effective})", unit, **ev)
    return result("consent", "fail", "requests without consent (Sec-GPC, DNT) are stored as sent (ignore)", unit, **ev)


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


def _pg_json(run, query: str, database: str, psql: str, what: str, valid) -> dict:
    """One JSON object from psql as postgres over the local socket; anything else raises (the probe is undecided)."""
    argv = ["runuser", "-u", "postgres", "--", psql, "-XAtq", "-d", database, "-v", "ON_ERROR_STOP=1", "-c", query]
    rc, out, err = run(argv)
    if rc != 0:
        raise RuntimeError(f"PostgreSQL did not answer: {((err or out).strip().splitlines() or [str(rc)])[-1]}")
    try:
        data = json.loads(out)
    except ValueError:
        raise RuntimeError(f"PostgreSQL's answer is not the expected JSON: {out.strip()[:120]!r}") from None
    if not isinstance(data, dict) or not valid(data):
        raise RuntimeError(f"PostgreSQL's answer lacks its {what}: {out.strip()[:120]!r}")
    return data


def pg_settings(run, database: str = "postgres", psql: str = "psql") -> dict:
    return _pg_json(run, PG_QUERY, database, psql, "settings", lambda d: isinstance(d.get("settings"), dict))


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


# --- PostgreSQL: replication and backups ------------------------------------------------------------------------
PG_HA_QUERY = r"""
SELECT json_build_object(
  'recovery', pg_is_in_recovery(),
  'replicas', (SELECT coalesce(json_agg(json_build_object('name', application_name, 'state', state,
                                                          'sync', sync_state, 'client', client_addr::text)), '[]')
               FROM pg_stat_replication),
  'receiver', (SELECT json_build_object('status', status, 'sender', sender_host) FROM pg_stat_wal_receiver),
  'archive_mode', current_setting('archive_mode'),
  'archiver', (SELECT json_build_object('archived', archived_count, 'failed', failed_count,
                                        'last_archived', last_archived_time, 'last_failed', last_failed_time,
                                        'failing', coalesce(last_failed_time > coalesce(last_archived_time,
                                                                                        '-infinity'), false))
               FROM pg_stat_archiver)
)
"""


def pg_ha_state(run, database: str = "postgres", psql: str = "psql") -> dict:
    return _pg_json(run, PG_HA_QUERY, database, psql, "replication state", lambda d: "recovery" in d)


def pg_replication(state: dict, expected_replicas: int) -> dict:
    """A primary has every other member of the inventory streaming from it; a replica streams from its primary. A server
    with no replica at all holds the only copy of the data (the guide asks for replicas across zones)."""
    target = "replication"
    if state["recovery"]:
        receiver = state.get("receiver") or {}
        ev = {"role": "replica", "receiver": receiver}
        if receiver.get("status") == "streaming":
            return result("db_replication", "pass", f"replica streaming from {receiver.get('sender')}", target, **ev)
        return result(
            "db_replication",
            "fail",
            f"replica not streaming (WAL receiver: {receiver.get('status') or 'not running'})",
            target,
            **ev,
        )
    replicas = state.get("replicas") or []
    streaming = sorted(r["name"] for r in replicas if r.get("state") == "streaming")
    ev = {"role": "primary", "replicas": replicas, "expected_replicas": expected_replicas}
    if expected_replicas < 1:
        reason = "no replica: this server holds the only copy of the data (the guide asks for replicas across zones)"
        return result("db_replication", "fail", reason, target, **ev)
    if len(streaming) < expected_replicas:
        reason = f"{len(streaming)} of {expected_replicas} replicas streaming ({', '.join(streaming) or 'none'})"
        return result("db_replication", "fail", reason, target, **ev)
    return result(
        "db_replication", "pass", f"{len(streaming)} replicas streaming: {', '.join(streaming)}", target, **ev
    )


def _pgbackrest_conf(path: str) -> dict:
    conf: dict = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith(("#", "[")):
                key, _sep, value = line.partition("=")
                conf[key.strip()] = value.strip()
    return conf


def pg_backups(run, state: dict, stanza: str, max_age_hours: float, repo_shared: bool, conf_path: str) -> dict:
    """Backups exist, are fresher than max_age_hours, live off this host and are encrypted; on the primary, WAL is
    archived and archiving does not fail. The repository is read with pgBackRest itself (as postgres)."""
    target = "backups"
    if not os.path.isfile(conf_path):
        reason = f"no pgBackRest configuration ({conf_path}): nothing backs it up"
        return result("db_backups", "fail", reason, target, conf=conf_path, stanza=stanza, configured=False)
    conf = _pgbackrest_conf(conf_path)
    repo_type = conf.get("repo1-type", "posix")
    ev = {
        "repo_type": repo_type,
        "repo": conf.get("repo1-s3-endpoint") or conf.get("repo1-path", ""),
        "stanza": stanza,
        "max_age_hours": max_age_hours,
    }
    rc, out, err = run(["runuser", "-u", "postgres", "--", "pgbackrest", f"--stanza={stanza}", "--output=json", "info"])
    if rc != 0:
        raise RuntimeError(f"pgbackrest info failed ({rc}): {((err or out).strip().splitlines() or [''])[-1][:200]}")
    try:
        info = next(i for i in json.loads(out) if i.get("name") == stanza)
    except (ValueError, StopIteration):
        raise RuntimeError(f"pgbackrest info does not describe stanza {stanza}: {out.strip()[:120]!r}") from None
    good = [b for b in info.get("backup", []) if not b.get("error")]
    newest = max((b["timestamp"]["stop"] for b in good), default=None)
    age_h = round((time.time() - newest) / 3600, 2) if newest else None
    archiver = state.get("archiver") or {}
    ev.update(
        repo_status=info.get("status", {}).get("message"),
        cipher=info.get("cipher"),
        backups=len(good),
        newest_age_hours=age_h,
        archive_mode=state.get("archive_mode"),
        archiver=archiver if not state["recovery"] else None,
    )
    problems = []
    if repo_type == "posix" and not repo_shared:
        problems.append(
            f"the repository is a folder on this host ({conf.get('repo1-path')}): losing it loses the backups"
        )
    if info.get("status", {}).get("code") != 0:
        problems.append(f"the repository says: {info.get('status', {}).get('message')}")
    if newest is None:
        problems.append("no backup in the repository")
    elif age_h > max_age_hours:
        problems.append(f"the newest backup is {age_h} hours old (more than {max_age_hours})")
    if info.get("cipher", "none") == "none":
        problems.append("the repository is not encrypted")
    if not state["recovery"]:
        if state.get("archive_mode") not in ("on", "always"):
            problems.append(f"archive_mode is {state.get('archive_mode')}: no point-in-time restore")
        elif archiver.get("failing"):
            problems.append(f"WAL archiving fails (last failure {archiver.get('last_failed')})")
    if problems:
        return result("db_backups", "fail", "; ".join(problems), target, **ev)
    where = ev["repo"] if repo_type != "posix" else f"{ev['repo']} (shared)"
    reason = f"newest of {len(good)} backups {age_h} h old, {repo_type} repository {where}, {info.get('cipher')}"
    return result("db_backups", "pass", reason, target, **ev)


# --- etcd ------------------------------------------------------------------------------------------------------------
def _http(host: str, port: int, path: str, tls_ca: str | None, timeout: float, body: bytes | None = None):
    """(status, text) of one request over TLS verified against tls_ca (or plain HTTP without); raises what the
    connection raised (OSError, ssl.SSLError): the caller decides what it means."""
    import http.client
    import ssl

    if tls_ca:
        conn = http.client.HTTPSConnection(
            host, port, context=ssl.create_default_context(cafile=tls_ca), timeout=timeout
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read(4096).decode("utf-8", "replace")
    finally:
        conn.close()


def _plain_http(address: str, port: int, path: str, timeout: float, body: bytes | None):
    """The first of address and loopback that answers plain HTTP on port: (url, status, text), or None. A TLS listener
    is no plain answer, even when it says so in HTTP (Go's servers answer 400 "Client sent an HTTP request to an HTTPS
    server")."""
    import http.client

    for host in dict.fromkeys([address, "127.0.0.1"]):
        try:
            status, text = _http(host, port, path, None, timeout, body)
        except (OSError, ValueError, http.client.HTTPException):  # refused, reset, TLS bytes that are no HTTP answer
            continue
        if "HTTP request to an HTTPS server" in text:
            continue
        return f"http://{host}:{port}{path}", status, text
    return None


def _etcd_client(address: str, port: int, ca_path: str, timeout: float) -> dict:
    import ssl

    target = "client authentication"
    key = json.dumps({"key": "Lw==", "keys_only": True, "limit": 1}).encode()  # "/", keys only
    url = f"https://{address}:{port}/v3/kv/range"  # the certificate names the address too (pki role)
    ev = {"url": url}
    try:
        status, text = _http(address, port, "/v3/kv/range", ca_path, timeout, key)
    except ssl.SSLCertVerificationError as e:
        return result("etcd_security", "error", f"{url}: cannot verify the server: {e}", target, **ev)
    except OSError as e:
        plain = _plain_http(address, port, "/v3/kv/range", timeout, key)
        if not plain:
            reason = f"etcd does not answer on {url} ({type(e).__name__}: {e}), nor in plain HTTP"
            return result("etcd_security", "error", reason[:300], target, **ev)
        ev.update(plain_url=plain[0], plain_status=plain[1])
        reason = f"plain HTTP answers on {plain[0]} (status {plain[1]}): no TLS"
        if plain[1] == 200:
            reason += ", and keys are read without a user (no authentication)"
        return result("etcd_security", "fail", reason, target, **ev)
    ev.update(http_status=status, answer=text[:200])
    if status == 200 and '"header"' in text:
        return result(
            "etcd_security", "fail", "a request without a user reads keys: authentication is off", target, **ev
        )
    if "user name is empty" in text or "invalid auth token" in text or status == 401:
        reason = "TLS verified, and a request without a user is refused (authentication on)"
        return result("etcd_security", "pass", reason, target, **ev)
    return result("etcd_security", "error", f"unexpected answer {status} without a user: {text[:120]}", target, **ev)


def _etcd_peer(address: str, port: int, ca_path: str, timeout: float) -> dict:
    import ssl

    target = "peer certificates"
    url = f"https://{address}:{port}/members"
    ev = {"url": url}
    try:
        status, _text = _http(address, port, "/members", ca_path, timeout)
    except ssl.SSLCertVerificationError as e:
        return result("etcd_security", "error", f"{url}: cannot verify the server: {e}", target, **ev)
    except OSError as e:
        # No TLS at all (the "handshake" met an HTTP answer, or nothing listens on the address) unless plain HTTP
        # stays silent; then a TLS error (with TLS 1.3 the refusal comes after the handshake) is the refusal.
        plain = _plain_http(address, port, "/members", timeout, None)
        if plain:
            ev.update(plain_url=plain[0], plain_status=plain[1])
            reason = f"plain HTTP answers on the peer port ({plain[0]}, status {plain[1]}): peers are not authenticated"
            return result("etcd_security", "fail", reason, target, **ev)
        if isinstance(e, (ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            ev["refused"] = f"{type(e).__name__}: {e}"[:200]
            reason = "the peer port refuses a client without a certificate of the platform CA"
            return result("etcd_security", "pass", reason, target, **ev)
        reason = f"etcd's peer port does not answer on {url} ({type(e).__name__}: {e}), nor in plain HTTP"
        return result("etcd_security", "error", reason[:300], target, **ev)
    ev["http_status"] = status
    reason = f"the peer port answered {status} to a client without a certificate"
    return result("etcd_security", "fail", reason, target, **ev)


def etcd_security(address: str, client_port: int, peer_port: int, ca_path: str, timeout: float) -> list[dict]:
    """etcd refuses a request without a user on its client port and a peer without a certificate of the platform CA
    on its peer port; plain HTTP answering on either is a fail."""
    return [_etcd_client(address, client_port, ca_path, timeout), _etcd_peer(address, peer_port, ca_path, timeout)]
