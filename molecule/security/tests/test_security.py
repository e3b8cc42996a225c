"""Security base, verified against the running hosts: firewall reachability from each vantage point, sshd,
host certificates, audit rules, security updates, and bad input refused before anything changes."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
from conftest import address, ansible_playbook, assert_passes, assert_refused, lab_host, run_audit, tcp_open


@pytest.fixture(scope="module")
def sec_a():
    return lab_host("sec-a")


@pytest.fixture(scope="module")
def sec_b():
    return lab_host("sec-b")


@pytest.fixture(scope="module")
def out_x():
    return lab_host("out-x")


# --- firewall: the matrix, seen from every vantage point ----------------------------------------------------------
# sec-a is in groups postgresql and nginx; sec-b in kafka. Every probed port has a listener behind it.
@pytest.mark.parametrize(
    ("port", "expected"),
    [(443, True), (80, True), (5432, True), (22, False), (3001, False), (8501, False), (9999, False), (9092, False)],
)
def test_other_zone_sees_only_internal_and_public_ports_of_sec_a(sec_b, port, expected):
    assert tcp_open(sec_b, address("sec-a"), port) is expected


@pytest.mark.parametrize(
    ("port", "expected"),
    [(443, True), (80, True), (5432, False), (22, False), (3001, False), (9999, False)],
)
def test_outside_sees_only_public_ports_of_sec_a(out_x, port, expected):
    assert tcp_open(out_x, address("sec-a"), port) is expected


@pytest.mark.parametrize(("port", "expected"), [(9092, False), (9093, False), (22, False), (443, False)])
def test_outside_reaches_nothing_on_sec_b(out_x, port, expected):
    assert tcp_open(out_x, address("sec-b"), port) is expected


@pytest.mark.parametrize(("port", "expected"), [(9092, True), (9093, False), (5432, False), (22, False)])
def test_kafka_controller_port_is_for_kafka_members_only(sec_a, port, expected):
    assert tcp_open(sec_a, address("sec-b"), port) is expected


@pytest.mark.parametrize("name", ["sec-a", "sec-b"])
def test_admin_network_reaches_ssh(name):
    with socket.create_connection((address(name), 22), timeout=5) as s:
        assert s.recv(64).startswith(b"SSH-2.0-")


@pytest.mark.parametrize("name", ["sec-a", "sec-b"])
def test_ruleset_is_default_drop_and_persistent(name):
    host = lab_host(name)
    ruleset = host.run("nft list chain inet analytics_platform input").stdout
    assert "policy drop;" in ruleset
    assert host.service("nftables").is_enabled


# --- sshd -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sec-a", "sec-b"])
def test_sshd_effective_settings(name):
    cfg = lab_host(name).run("sshd -T").stdout.lower().splitlines()
    assert "passwordauthentication no" in cfg
    assert "kbdinteractiveauthentication no" in cfg
    assert "permitrootlogin without-password" in cfg
    assert "x11forwarding no" in cfg
    ciphers = next(line for line in cfg if line.startswith("ciphers ")).split()[1].split(",")
    assert not [c for c in ciphers if "cbc" in c or c in {"3des-cbc", "arcfour"}]
    macs = next(line for line in cfg if line.startswith("macs ")).split()[1].split(",")
    assert all("sha1" not in m and "md5" not in m for m in macs)


def test_password_login_is_refused():
    r = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "ConnectTimeout=5",
            f"root@{address('sec-a')}",
            "true",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert r.returncode == 255
    assert "Permission denied (publickey)" in r.stderr


# --- certificates -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sec-a", "sec-b"])
def test_host_certificate_verifies_against_the_ca_with_expected_sans(name):
    host = lab_host(name)
    verify = host.run("openssl verify -CAfile /etc/analytics-platform/pki/ca.crt /etc/analytics-platform/pki/host.crt")
    assert verify.rc == 0, verify.stderr
    text = host.run("openssl x509 -in /etc/analytics-platform/pki/host.crt -noout -ext subjectAltName").stdout
    assert f"DNS:{name}" in text
    assert f"IP Address:{address(name)}" in text
    key = host.file("/etc/analytics-platform/pki/host.key")
    assert key.mode == 0o640 and key.user == "root" and key.group == "ssl-cert"
    # The key matches the certificate.
    pub_cert = host.run("openssl x509 -in /etc/analytics-platform/pki/host.crt -noout -pubkey").stdout
    pub_key = host.run("openssl pkey -in /etc/analytics-platform/pki/host.key -pubout").stdout
    assert pub_cert == pub_key
    # The CA is trusted system-wide, and its key never left the controller.
    assert host.file("/usr/local/share/ca-certificates/analytics-platform-ca.crt").exists
    assert host.run("grep -rl 'ENCRYPTED PRIVATE KEY' /etc /root 2>/dev/null").stdout.strip() == ""


def test_tls_handshake_with_host_certificate(sec_a):
    """A real TLS server using sec-a's host certificate verifies by name against the CA, and not under another name."""
    sec_a.run(
        "systemd-run --unit=tls-probe --property=RuntimeMaxSec=60 openssl s_server -accept 9998 -quiet "
        "-cert /etc/analytics-platform/pki/host.crt -key /etc/analytics-platform/pki/host.key"
    )
    try:
        sec_a.run("sleep 1")

        def handshake(name):
            return sec_a.run(
                f"openssl s_client -connect {address('sec-a')}:9998 -servername {name} -verify_hostname {name} "
                "-CAfile /etc/analytics-platform/pki/ca.crt -brief </dev/null 2>&1"
            ).stdout

        good = handshake("sec-a")
        assert "Verification: OK" in good, good
        bad = handshake("not-sec-a.example")
        assert "Verification: OK" not in bad
        assert "hostname mismatch" in bad.lower() or "verify error" in bad.lower(), bad
    finally:
        sec_a.run("systemctl stop tls-probe")


# --- audit logging, updates, system -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sec-a", "sec-b"])
def test_audit_rules_rendered_and_container_reported(name):
    host = lab_host(name)
    rules = host.file("/etc/audit/rules.d/50-analytics-platform.rules").content_string
    assert "-w /etc/shadow -p wa -k identity" in rules
    assert "-w /etc/sudoers -p wa -k sudoers" in rules
    assert "-a always,exit -F path=/usr/bin/sudo -F perm=x" in rules
    assert "-w /etc/postgresql -p wa -k analytics-platform-config" in rules
    # Every rule line is one of auditctl's forms.
    for line in rules.splitlines():
        assert not line or line.startswith(("#", "-w ", "-a ")), line
    fact = host.file("/etc/ansible/facts.d/analytics_platform_base.fact").content_string
    assert '"auditd": "rendered-only"' in fact
    assert "not namespaced" in fact
    assert not host.service("auditd").is_running


@pytest.mark.parametrize("name", ["sec-a", "sec-b"])
def test_unattended_security_upgrades(name):
    host = lab_host(name)
    assert host.package("unattended-upgrades").is_installed
    dump = host.run("apt-config dump").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert "label=Debian-Security" in host.file("/etc/apt/apt.conf.d/50unattended-upgrades").content_string
    assert host.service("apt-daily-upgrade.timer").is_enabled


@pytest.mark.parametrize("name", ["sec-a", "sec-b"])
def test_journal_and_sysctl(name):
    host = lab_host(name)
    assert host.file("/var/log/journal").is_directory
    assert "Storage=persistent" in host.file("/etc/systemd/journald.conf.d/50-analytics-platform.conf").content_string
    sysctl = host.file("/etc/sysctl.d/60-analytics-platform.conf").content_string
    assert "net.ipv4.ip_forward = 0" in sysctl
    assert "net.ipv4.tcp_syncookies = 1" in sysctl


@pytest.mark.parametrize("name", ["sec-a", "sec-b"])
def test_data_hosts_are_tuned_and_what_a_container_cannot_take_is_reported(name):
    """sec-a (postgresql) and sec-b (kafka) are data hosts. systemd's default limits apply in a container too, up to
    what its runtime allows PID 1: a service started now gets that, and the fact says so. The kernel's settings are the
    host's: rendered, and reported with the values the host shows, not as applied."""
    host = lab_host(name)
    sysctl = host.file("/etc/sysctl.d/60-analytics-platform.conf").content_string
    assert "vm.swappiness = 1" in sysctl and "vm.max_map_count = 262144" in sysctl
    assert host.file("/etc/udev/rules.d/60-analytics-io-scheduler.rules").contains('ATTR{queue/scheduler}="none"')
    assert (
        "w- /sys/kernel/mm/transparent_hugepage/enabled - - - - never"
        in host.file("/etc/tmpfiles.d/60-analytics-thp.conf").content_string
    )
    assert host.run("systemctl show -p DefaultLimitNOFILE --value").stdout.strip() == "65536"
    # No service can get more than the manager's own hard limit, which a container's runtime sets.
    cap = int(host.run("awk '/^Max open files/ {print $5}' /proc/1/limits").stdout)
    nofile = min(65536, cap)
    r = host.run("systemd-run --quiet --wait --pipe /bin/bash -c 'ulimit -n; ulimit -u'")
    assert r.stdout.split() == [str(nofile), "32768"], r.stdout + r.stderr
    fact = json.loads(host.file("/etc/ansible/facts.d/analytics_platform_base.fact").content_string)
    thp = host.run("sed -n 's/.*\\[\\(.*\\)\\].*/\\1/p' /sys/kernel/mm/transparent_hugepage/enabled").stdout.strip()
    capped = f"capped by the container: {nofile} open files, 32768 processes"
    assert fact["tuning"]["limits"] == ("applied" if nofile == 65536 else capped)
    assert fact["tuning"]["sysctl"] == "rendered-only" and fact["tuning"]["io_scheduler"] == "rendered-only"
    assert fact["tuning"]["transparent_hugepages"] == f"host: {thp or 'unknown'}"
    assert fact["tuning"]["host_sysctl"]["vm.max_map_count"] == host.run("sysctl -n vm.max_map_count").stdout.strip()


def test_a_limit_that_does_not_take_effect_fails_the_run(scenario_dir):
    """Another drop-in that overrides the tuning's limits: the read-back names it; nothing is reported as applied."""
    host = lab_host("sec-b")
    override = "/etc/systemd/system.conf.d/99-test-override.conf"
    host.run_expect([0], f"printf '[Manager]\\nDefaultLimitNOFILE=4096\\n' > {override} && systemctl daemon-reexec")
    try:
        r = ansible_playbook(scenario_dir / "converge.yml", "--tags", "preflight,tuning", "--limit", "sec-b")
        assert r.returncode != 0, "the run accepted limits that did not take effect"
        message = "sec-b: a service started now gets 4096 open files and 32768 processes, not base_tuning_nofile 65536"
        assert message in r.output, r.output[-2000:]
    finally:
        host.run(f"rm -f {override} && systemctl daemon-reexec")
    assert host.run("systemctl show -p DefaultLimitNOFILE --value").stdout.strip() == "65536"


# --- bad input: refused before any host changes ------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '{"firewall_matrix_extra": {"bogus": {"group": "all", "ports": [70000], "audience": "admin"}}}',
            "firewall_matrix.bogus: port 70000 is out of range",
        ),
        (
            '{"firewall_matrix_extra": {"metrics": {"group": "all", "ports": [9200], "audience": "partners"}}}',
            "firewall_matrix.metrics: audience 'partners' is unknown",
        ),
        ('{"pki_extra_sans": ["DNS:"]}', "pki_extra_sans entry 0 ('DNS:') is not a valid request"),
        ('{"firewall_admin_cidrs": ["192.0.2.0/24"]}', "which the matrix does not allow to port 22"),
        ('{"pki_ca_passphrase": "analytics123"}', "pki_ca_passphrase is missing, shorter than 16 characters"),
        ('{"base_tuning_thp": "sometimes"}', "base_tuning_thp must be never, madvise or always (got 'sometimes')"),
    ],
)
def test_bad_input_fails_before_changes(scenario_dir, extra, message):
    r = assert_refused(scenario_dir, extra, message, ("sec-a", "nft list ruleset"))
    assert "changed=0" in r.stdout or "PLAY RECAP" not in r.stdout


def test_the_audit_passes_updates_and_secrets():
    """The hardened side of the audit's proof for what the security base deploys (molecule/insecure fails each):
    unattended security upgrades on with nothing pending too long, no secret in arguments, readable files, the
    journal or the inventory."""
    controls = ["security_updates", "secrets"]
    r, results = run_audit(controls)
    assert_passes(results, controls)
    assert r.returncode == 0, r.output[-2000:]
