"""site.yml --check on fresh hosts: no failure, a report of what would change on every host, and nothing changed."""

from __future__ import annotations

import re

import pytest
from conftest import ansible_playbook, lab_host

HOSTS = ("fresh-a", "fresh-b", "fresh-c")
# What a real run would create or change on each host (packages, units, configuration, the firewall, users).
STATE = (
    "dpkg-query -W -f '${Package} ${Version}\\n' | sha256sum; "
    "find /etc /opt /usr/local /var/lib -xdev -newer /etc/hostname 2>/dev/null "
    "| grep -v -E '^/var/lib/(apt|dpkg|systemd)' | sort | sha256sum; "
    "getent passwd | sha256sum; nft list ruleset 2>&1 | sha256sum; "
    "systemctl list-unit-files --no-legend | sha256sum"
)


@pytest.fixture(scope="module")
def check_run(scenario_dir):
    before = {h: lab_host(h).run(STATE).stdout for h in HOSTS}
    r = ansible_playbook(scenario_dir / "converge.yml", "--check", "--diff")
    after = {h: lab_host(h).run(STATE).stdout for h in HOSTS}
    return r, before, after


def recap(r) -> dict[str, dict[str, int]]:
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", r.stdout, re.M):
        out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def test_check_mode_completes_without_failure(check_run):
    r, _before, _after = check_run
    failed = [line for line in r.stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
    assert r.returncode == 0, "\n".join(failed[-10:]) or r.output[-3000:]
    stats = recap(r)
    assert set(HOSTS) <= set(stats), f"hosts missing from the recap: {stats}"
    for host in (*HOSTS, "localhost"):
        if host in stats:
            assert stats[host]["failed"] == 0 and stats[host]["unreachable"] == 0, (host, stats[host])


def test_check_mode_reports_what_it_would_change(check_run):
    r, _before, _after = check_run
    stats = recap(r)
    for host in HOSTS:
        # A fresh host gets every package, user, unit and file of its roles: far more than a handful of changes.
        assert stats[host]["changed"] >= 20, (host, stats[host])
    # What check mode cannot compare before the software is there, it says it would do, naming the host.
    out = r.output
    for host, says in {
        "fresh-a": (
            "would install the crypto libraries, create the CA",
            "would unpack Kafka",
            "would install PostgreSQL",
            "schema and partitions",
            "would install weed",
            "would copy analytics-api's wheels",
            "would copy delta-dashboard's wheels",
        ),
        "fresh-b": ("streaming from the primary", "would copy pg-sink's wheels"),
        "fresh-c": ("would copy delta-writer's wheels", "would install weed"),
    }.items():
        for what in says:
            assert f"{host}: {what}" in out or (what.startswith(("schema", "streaming")) and what in out), (host, what)
    # The diff shows what would be written, e.g. the firewall's ruleset with this host's matrix.
    assert "table inet analytics_platform" in out


def test_check_mode_changes_nothing(check_run):
    _r, before, after = check_run
    for host in HOSTS:
        assert after[host] == before[host], f"{host} changed during a --check run"
    assert not lab_host("fresh-a").file("/etc/kafka").exists
