"""The lab itself: systemd hosts in separate zones, routed to each other without NAT."""

import json

import pytest


def test_systemd_is_pid_1_and_running(host):
    assert host.process.get(pid=1).comm == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in {"running", "degraded"}, state


def test_zone_recorded(host):
    probe = json.loads(host.file("/etc/lab-probe.json").content_string)
    expected = {"lab-a1": "zone-a", "lab-b1": "zone-b"}[probe["host"]]
    assert probe["zone"] == expected
    assert host.service("lab-probe").is_running
    assert host.service("lab-probe").is_enabled


@pytest.fixture(scope="module")
def peers(host):
    me = json.loads(host.file("/etc/lab-probe.json").content_string)
    other = "lab-b1" if me["host"] == "lab-a1" else "lab-a1"
    return me, other


def test_other_zone_reachable_by_name_with_original_source_address(host, peers):
    """A zone routes to the other zone, names resolve through /etc/hosts, and the peer sees our real address."""
    me, other = peers
    answer = host.run(f"nc -w 5 {other} 7070 </dev/null")
    assert answer.rc == 0, answer.stderr
    theirs = json.loads(answer.stdout)
    assert theirs["host"] == other
    assert theirs["zone"] != me["zone"]
    # Routed, not masqueraded: the peer sees the connection come from our own address.
    assert theirs["peer"] == me["address"]
