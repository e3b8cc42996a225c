"""The probes that run on a host (module_utils/audit_host, audit_host) and from a vantage (reachability), against
real sockets, processes, files and commands on this machine: each reaches pass, fail and error, and a probe that
cannot decide is never a pass."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.analytics.platform.plugins.module_utils import audit_host as probes
from ansible_collections.analytics.platform.plugins.module_utils.audit import guarded, tcp_state
from ansible_collections.analytics.platform.plugins.modules.reachability import check

from .test_tls_probe import make_ca, make_leaf


def closed_port() -> int:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- reachability from a vantage ----------------------------------------------------------------------------------
def test_matrix_as_expected_passes_and_an_open_port_that_should_be_closed_fails():
    listener = socket.create_server(("127.0.0.1", 0))
    open_port, shut = listener.getsockname()[1], closed_port()
    nginx = {"host": "edge", "address": "127.0.0.1", "port": open_port, "expect": "open", "service": "nginx"}
    db = {"host": "db", "address": "127.0.0.1", "port": shut, "expect": "closed", "service": "postgresql"}
    try:
        good = check([nginx, db], "test", 1)
        bad = check([dict(nginx, host="db", expect="closed", service="postgresql")], "outside", 1)
    finally:
        listener.close()
    assert [(r["host"], r["status"]) for r in good] == [("edge", "pass"), ("db", "pass")]
    assert bad[0]["status"] == "fail" and f"postgresql {open_port}" in bad[0]["reason"], bad
    assert bad[0]["target"] == "from outside"


def test_an_expected_service_that_does_not_answer_is_an_error_not_a_pass():
    r = check([{"host": "edge", "address": "127.0.0.1", "port": closed_port(), "expect": "open"}], "outside", 1)
    assert r[0]["status"] == "error", r


def test_a_name_that_does_not_resolve_is_an_error_never_closed():
    """The finding: any connection error, DNS failure included, counted as 'closed' (a pass for a closed port)."""
    assert tcp_state("no-such-host.invalid", 5432, 1)[0] == "error"
    r = check([{"host": "db", "address": "no-such-host.invalid", "port": 5432, "expect": "closed"}], "outside", 1)
    assert r[0]["status"] == "error" and "does not resolve" in r[0]["reason"], r


# --- secrets ------------------------------------------------------------------------------------------------------
def test_a_secret_in_process_arguments_is_found_by_name_without_its_value():
    secret = "s3cr3t-value-for-the-audit-test"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", secret])
    deadline = time.time() + 10
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    while secret.encode() not in cmdline.read_bytes() and time.time() < deadline:
        time.sleep(0.05)  # the child has not shown its arguments yet
    try:
        r = probes.secrets_in_processes({"kafka_admin_password": secret})
        clean = probes.secrets_in_processes({"kafka_admin_password": "not-running-anywhere-0123"})
    finally:
        proc.kill()
    assert r["status"] == "fail" and "kafka_admin_password in the arguments" in r["reason"], r
    assert secret not in str(r)
    assert clean["status"] == "pass" and clean["target"] == "process arguments"


def test_a_secret_in_a_world_readable_file_fails_and_in_a_private_one_passes(tmp_path):
    secret = "another-secret-value-1234"
    private = tmp_path / "private.env"
    private.write_text(f"PASSWORD={secret}\n")
    private.chmod(0o600)
    assert probes.secrets_in_files({"pg_password": secret}, [str(tmp_path)])["status"] == "pass"
    private.chmod(0o644)
    r = probes.secrets_in_files({"pg_password": secret}, [str(tmp_path)])
    assert r["status"] == "fail" and f"world-readable {private}" in r["reason"], r


@pytest.fixture
def fake_journalctl(tmp_path, monkeypatch):
    """A journalctl on PATH that prints what the test says (the scan streams it), or fails."""

    def make(text: str, rc: int = 0):
        exe = tmp_path / "journalctl"
        body = tmp_path / "journal.txt"
        body.write_text(text)
        exe.write_text(f"#!/bin/sh\ncat {body}\nexit {rc}\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    return make


def test_a_secret_in_the_journal_fails_across_chunk_boundaries(fake_journalctl):
    secret = "journal-secret-value-98765"
    filler = "x" * ((1 << 20) - 10)  # the secret straddles the first 1 MiB chunk
    fake_journalctl(f"{filler}{secret}\nnothing else\n")
    r = probes.secrets_in_journal({"s3_secret": secret, "other_one": "absent-value-0000"}, 30)
    assert r["status"] == "fail" and r["reason"] == "s3_secret in the journal" and secret not in str(r)


def test_a_journal_that_cannot_be_read_is_an_error(fake_journalctl):
    fake_journalctl("", rc=1)
    r = guarded("secrets", "journal", probes.secrets_in_journal, {"s3_secret": "journal-secret-value-98765"}, 30)
    assert r[0]["status"] == "error" and "journalctl failed" in r[0]["reason"]


# --- listening ports ------------------------------------------------------------------------------------------------
def test_a_port_the_matrix_does_not_name_fails_with_its_process():
    listener = socket.create_server(("0.0.0.0", 0))  # noqa: S104 - a listener on every address is the point
    port = listener.getsockname()[1]
    try:
        bad = probes.listening_ports([22])
        good = probes.listening_ports(list(probes._listeners()))  # everything named: nothing extra
    finally:
        listener.close()
    assert bad["status"] == "fail" and f"{port} (" in bad["reason"] and f"{port} (?)" not in bad["reason"], bad
    assert good["status"] == "pass"


def test_loopback_listeners_are_not_findings():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        assert port not in probes._listeners()
    finally:
        listener.close()


# --- security updates, audit logging, PostgreSQL --------------------------------------------------------------------
def runner(answers: dict):
    """A command runner answering by the command's first word: (rc, stdout, stderr)."""
    return lambda argv: answers.get(argv[0], (127, "", f"{argv[0]}: not found"))


APT_OK = (0, "Inst libssl3 [3.0.1] (3.0.2 Debian-Security:12/stable-security [amd64])\n", "")


@pytest.mark.parametrize(
    ("answers", "status", "text"),
    [
        (
            {
                "apt-get": (0, "", ""),
                "apt-config": (0, 'APT::Periodic::Unattended-Upgrade "1";', ""),
                "dpkg-query": (0, "install ok installed", ""),
            },
            "pass",
            "are on",
        ),
        (
            {
                "apt-get": (0, "", ""),
                "apt-config": (0, 'APT::Periodic::Unattended-Upgrade "0";', ""),
                "dpkg-query": (0, "install ok installed", ""),
            },
            "fail",
            "are OFF",
        ),
        (
            {
                "apt-get": APT_OK,
                "apt-config": (0, 'APT::Periodic::Unattended-Upgrade "1";', ""),
                "dpkg-query": (0, "install ok installed", ""),
            },
            "fail",
            "1 security updates pending",
        ),
        (
            {
                "apt-get": (100, "", "E: Could not get lock"),
                "apt-config": (0, '"1"', ""),
                "dpkg-query": (0, "install ok installed", ""),
            },
            "error",
            "apt-get -s upgrade failed",
        ),
    ],
)
def test_security_updates_pass_fail_and_an_apt_failure_is_an_error(answers, status, text):
    """The finding: an apt failure was read as '0 pending' (a pass)."""
    r = guarded("security_updates", "unattended-upgrades", probes.security_updates, runner(answers), 2)
    assert r[0]["status"] == status and text in r[0]["reason"], r


def test_auditd_is_not_applicable_in_a_container_and_fails_without_rules(tmp_path):
    rules = tmp_path / "50.rules"
    none = probes.auditd(runner({"systemd-detect-virt": (0, "docker", "")}), str(rules))
    assert none["status"] == "fail" and "no audit rules" in none["reason"]
    rules.write_text("-w /etc/passwd -p wa -k identity\n")
    container = probes.auditd(runner({"systemd-detect-virt": (0, "docker", "")}), str(rules))
    assert container["status"] == "not_applicable" and "not namespaced" in container["reason"]
    vm = {
        "systemd-detect-virt": (1, "none", ""),
        "systemctl": (0, "active\n", ""),
        "auditctl": (0, "-w /etc/passwd -p wa -k identity\n", ""),
    }
    assert probes.auditd(runner(vm), str(rules))["status"] == "pass"
    stopped = dict(vm, systemctl=(3, "inactive\n", ""))
    assert probes.auditd(runner(stopped), str(rules))["status"] == "fail"


@pytest.mark.parametrize(
    "answer",
    [(0, "psql: warning: something unexpected\n", ""), (0, "[1, 2]", ""), (2, "", "could not connect to server")],
)
def test_postgresql_answers_that_are_not_its_settings_are_errors(answer):
    """The finding: non-JSON psql output crashed the probe and dropped the host from the report."""
    r = guarded("db_encryption", "postgresql settings and pg_hba", probes.pg_settings, runner({"runuser": answer}))
    assert r[0]["status"] == "error", r


def test_postgresql_settings_pass_and_fail():
    good = {
        "settings": {
            "ssl": "on",
            "ssl_min_protocol_version": "TLSv1.2",
            "password_encryption": "scram-sha-256",
            "shared_preload_libraries": "pg_cron,pgaudit",
            "pgaudit.log": "ddl,role",
            "log_connections": "on",
        },
        "hba": [
            {"line": 1, "type": "local", "method": "peer"},
            {"line": 2, "type": "hostssl", "method": "scram-sha-256"},
        ],
        "md5_roles": [],
    }
    assert [r["status"] for r in probes.pg_evaluate(good)] == ["pass", "pass"]
    bad = {
        **good,
        "settings": {**good["settings"], "ssl": "off", "log_connections": "off"},
        "hba": [{"line": 1, "type": "host", "method": "md5"}],
        "md5_roles": ["analytics"],
    }
    enc, aud = probes.pg_evaluate(bad)
    assert enc["status"] == "fail" and "ssl is off" in enc["reason"] and "pg_hba line 1: host md5" in enc["reason"]
    assert aud["status"] == "fail" and "log_connections is off" in aud["reason"]


def test_a_crashing_probe_is_an_error_with_its_reason_never_missing():
    def broken():
        raise KeyError("settings")

    (r,) = guarded("tls", "nginx:443", broken)
    assert (r["control"], r["target"], r["status"]) == ("tls", "nginx:443", "error")
    assert "KeyError" in r["reason"]


@pytest.mark.parametrize(
    ("hexaddr", "local"),
    [
        ("0100007F", True),  # 127.0.0.1
        ("0B00007F", True),  # 127.0.0.11: Docker's embedded DNS in every container
        ("00000000", False),  # 0.0.0.0
        ("0B01A8C0", False),  # 192.168.1.11
        ("00000000000000000000000001000000", True),  # ::1
        ("0000000000000000FFFF00000100007F", True),  # ::ffff:127.0.0.1
        ("00000000000000000000000000000000", False),  # ::
    ],
)
def test_loopback_is_read_from_procs_byte_order(hexaddr, local):
    """The finding of the first lab run: 127.0.0.11 was taken for a public address (its hex does not start 7F)."""
    assert probes._local_only(probes._address(hexaddr)) is local


# --- PostgreSQL replication and backups -------------------------------------------------------------------------------
PRIMARY = {
    "recovery": False,
    "replicas": [{"name": "pg_b", "state": "streaming"}, {"name": "pg_c", "state": "catchup"}],
    "receiver": None,
    "archive_mode": "on",
    "archiver": {"failing": False, "last_archived": "2026-12-03T09:00:00", "last_failed": None},
}


@pytest.mark.parametrize(
    ("state", "expected", "status", "text"),
    [
        (PRIMARY, 1, "pass", "1 replicas streaming: pg_b"),
        (PRIMARY, 2, "fail", "1 of 2 replicas streaming (pg_b)"),
        ({**PRIMARY, "replicas": []}, 0, "fail", "no replica: this server holds the only copy"),
        (
            {**PRIMARY, "recovery": True, "receiver": {"status": "streaming", "sender": "10.0.0.1"}},
            1,
            "pass",
            "10.0.0.1",
        ),
        ({**PRIMARY, "recovery": True, "receiver": None}, 1, "fail", "WAL receiver: not running"),
    ],
)
def test_replication_passes_only_with_every_replica_streaming(state, expected, status, text):
    r = probes.pg_replication(state, expected)
    assert (r["control"], r["status"]) == ("db_replication", status) and text in r["reason"], r


def info_answer(stop: float, cipher: str = "aes-256-cbc", code: int = 0, error: bool = False) -> tuple:
    info = [
        {
            "name": "analytics",
            "cipher": cipher,
            "status": {"code": code, "message": "ok" if code == 0 else "missing stanza path"},
            "backup": [{"type": "full", "timestamp": {"start": stop - 60, "stop": stop}, "error": error}],
        }
    ]
    return 0, __import__("json").dumps(info), ""


@pytest.mark.parametrize(
    ("conf", "answer", "state", "shared", "status", "text"),
    [
        (
            "repo1-type=s3\nrepo1-s3-endpoint=store-c\n",
            info_answer(time.time() - 600),
            PRIMARY,
            False,
            "pass",
            "store-c",
        ),
        (
            "repo1-type=posix\nrepo1-path=/var/lib/pgbackrest\n",
            info_answer(time.time()),
            PRIMARY,
            False,
            "fail",
            "a folder on this host",
        ),
        ("repo1-type=posix\nrepo1-path=/mnt/backup\n", info_answer(time.time()), PRIMARY, True, "pass", "(shared)"),
        ("repo1-type=s3\n", info_answer(time.time() - 5 * 3600), PRIMARY, False, "fail", "hours old (more than 3"),
        (
            "repo1-type=s3\n",
            info_answer(time.time(), error=True),
            PRIMARY,
            False,
            "fail",
            "no backup in the repository",
        ),
        ("repo1-type=s3\n", info_answer(time.time(), cipher="none"), PRIMARY, False, "fail", "not encrypted"),
        ("repo1-type=s3\n", info_answer(time.time(), code=1), PRIMARY, False, "fail", "missing stanza path"),
        (
            "repo1-type=s3\n",
            info_answer(time.time()),
            {**PRIMARY, "archive_mode": "off"},
            False,
            "fail",
            "archive_mode is off",
        ),
        (
            "repo1-type=s3\n",
            info_answer(time.time()),
            {**PRIMARY, "archiver": {"failing": True, "last_failed": "09:01"}},
            False,
            "fail",
            "WAL archiving fails",
        ),
        # A replica does not archive: only the repository counts there.
        (
            "repo1-type=s3\n",
            info_answer(time.time()),
            {**PRIMARY, "recovery": True, "archive_mode": "off"},
            False,
            "pass",
            "",
        ),
    ],
)
def test_backups_pass_only_fresh_encrypted_off_the_host_and_archiving(
    tmp_path, conf, answer, state, shared, status, text
):
    path = tmp_path / "pgbackrest.conf"
    path.write_text("[global]\n" + conf)
    r = probes.pg_backups(runner({"runuser": answer}), state, "analytics", 3, shared, str(path))
    assert (r["control"], r["status"]) == ("db_backups", status) and text in r["reason"], r


def test_backups_without_a_configuration_fail_and_an_unreadable_repository_is_an_error(tmp_path):
    r = probes.pg_backups(runner({}), PRIMARY, "analytics", 3, False, str(tmp_path / "none.conf"))
    assert r["status"] == "fail" and "no pgBackRest configuration" in r["reason"] and r["evidence"], r
    path = tmp_path / "pgbackrest.conf"
    path.write_text("repo1-type=s3\n")
    broken = runner({"runuser": (28, "", "ERROR: [028]: unable to connect")})
    r = guarded("db_backups", "backups", probes.pg_backups, broken, PRIMARY, "analytics", 3, False, str(path))
    assert r[0]["status"] == "error" and "unable to connect" in r[0]["reason"], r
    garbage = runner({"runuser": (0, "[]", "")})
    r = guarded("db_backups", "backups", probes.pg_backups, garbage, PRIMARY, "analytics", 3, False, str(path))
    assert r[0]["status"] == "error", r


# --- etcd -------------------------------------------------------------------------------------------------------------
class EtcdStandIn:
    """An HTTP(S) server on 127.0.0.1 answering as etcd would: `answer` (status, body) to every request; with `ca`,
    client certificates of that CA are required (etcd's peer port)."""

    def __init__(self, answer, cert=None, key=None, ca=None):
        import http.server
        import ssl
        import threading

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = outer.answer[1].encode()
                self.send_response(outer.answer[0])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.answer = answer
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            if ca:
                ctx.load_verify_locations(ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def pki(tmp_path):
    ca = make_ca(tmp_path)
    cert, key = make_leaf(tmp_path, ca, names=("localhost",))
    return {"ca": str(ca[2]), "cert": str(cert), "key": str(key)}


AUTH_ON = (400, '{"error":"etcdserver: user name is empty","code":3}')
OPEN = (200, '{"header":{"cluster_id":"1"},"count":"1"}')


@pytest.mark.parametrize(
    ("client", "peer", "statuses", "texts"),
    [
        (("tls", AUTH_ON), ("mtls", OPEN), ["pass", "pass"], ["authentication on", "refuses a client without"]),
        (("tls", OPEN), ("tls", OPEN), ["fail", "fail"], ["authentication is off", "answered 200"]),
        (
            ("plain", OPEN),
            ("plain", OPEN),
            ["fail", "fail"],
            ["no TLS, and keys are read", "peers are not authenticated"],
        ),
        ((None, None), (None, None), ["error", "error"], ["does not answer", "does not answer"]),
        (("tls", (500, "boom")), ("mtls", OPEN), ["error", "pass"], ["unexpected answer 500", ""]),
    ],
)
def test_etcd_passes_only_with_authentication_and_peer_certificates(pki, client, peer, statuses, texts):
    servers = []

    def start(kind, answer):
        if kind is None:
            return closed_port()
        tls = {"cert": pki["cert"], "key": pki["key"]} if kind in ("tls", "mtls") else {}
        s = EtcdStandIn(answer, **tls, ca=pki["ca"] if kind == "mtls" else None)
        servers.append(s)
        return s.port

    try:
        results = probes.etcd_security("localhost", start(*client), start(*peer), pki["ca"], 3)
    finally:
        for s in servers:
            s.close()
    assert [r["control"] for r in results] == ["etcd_security", "etcd_security"]
    assert [r["target"] for r in results] == ["client authentication", "peer certificates"]
    assert [r["status"] for r in results] == statuses, results
    for r, text in zip(results, texts, strict=True):
        assert text in r["reason"], r


@pytest.mark.parametrize(
    ("env", "status", "effective"),
    [
        ({"API_CONSENT_MODE": "anonymize"}, "pass", "anonymize"),
        ({"API_CONSENT_MODE": "drop"}, "pass", "drop"),
        ({}, "pass", "anonymize"),  # the service's default
        ({"API_CONSENT_MODE": "ignore"}, "fail", "ignore"),
        ({"API_CONSENT_MODE": "later"}, "error", "later"),
    ],
)
def test_consent_is_read_from_the_running_processs_environment(env, status, effective):
    """A real process started with the setting (its /proc environ is what the probe reads), found as systemctl would
    report its main PID; only API_CONSENT_MODE comes back, no other variable of the process."""
    base = {k: v for k, v in os.environ.items() if k != "API_CONSENT_MODE"}
    code = "import time; print('up', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**base, **env, "SECRET": "s3"}, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"up\n"  # running: its environment is set (not in the middle of exec)
        (r,) = [probes.api_consent(lambda argv: (0, f"{proc.pid}\n", ""))]
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert (r["control"], r["status"], r["evidence"]["effective"]) == ("consent", status, effective)
    assert "s3" not in str(r)


def test_consent_is_undecided_when_the_api_does_not_run():
    [r] = guarded("consent", "analytics-api", probes.api_consent, lambda argv: (0, "0\n", ""))
    assert r["status"] == "error" and "analytics-api is not running" in r["reason"], r
