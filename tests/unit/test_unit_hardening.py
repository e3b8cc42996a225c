"""The collection's one systemd hardening drop-in (roles/base: unit_hardening) scored offline by this machine's own
`systemd-analyze security`: every kind of unit the roles harden lands at exposure 5 or lower, and the same unit without
the drop-in does not (the check can fail). The scenarios score the real units on their hosts
(molecule/resources/tests/test_units_hardened.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASELINE = yaml.safe_load((ROOT / "roles/base/vars/main.yml").read_text())["__base_unit_hardening_defaults"]
ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, autoescape=jinja2.select_autoescape(("html",), default_for_string=False)
)  # a unit file, not HTML
TEMPLATE = ENV.from_string((ROOT / "roles/base/templates/unit-hardening.conf.j2").read_text())
# (unit, its [Service] lines, its exceptions as the roles pass them)
UNITS = [
    (
        "kafka.service",
        "User=kafka\nExecStart=/usr/bin/java kafka.Kafka",
        {"writable": ["/var/lib/kafka"], "write_execute": True},
    ),
    ("analytics-api.service", "User=analytics-api\nExecStart=/opt/x/venv/bin/analytics-api", {"umask": "0077"}),
    ("weed-s3.service", "User=seaweedfs\nExecStart=/usr/local/bin/weed s3", {"writable": ["/var/lib/seaweedfs"]}),
    ("ap-cert-expiry.service", "Type=oneshot\nUser=prometheus\nExecStart=/usr/local/sbin/ap-cert-expiry", {}),
    (
        "pgbackrest-full.service",
        "Type=oneshot\nUser=postgres\nExecStart=/usr/bin/pgbackrest backup",
        {"writable": ["/var/lib/pgbackrest", "-/var/spool/pgbackrest"], "remove_ipc": False},
    ),
    (
        "nginx.service",
        "Type=forking\nPIDFile=/run/nginx.pid\nExecStart=/usr/sbin/nginx",
        {
            "writable": ["/var/log/nginx", "/var/lib/nginx", "/run"],
            "capabilities": [
                "CAP_NET_BIND_SERVICE",
                "CAP_SETUID",
                "CAP_SETGID",
                "CAP_CHOWN",
                "CAP_KILL",
                "CAP_DAC_OVERRIDE",
            ],
        },
    ),
    (
        "keepalived.service",
        "Type=forking\nPIDFile=/run/keepalived.pid\nExecStart=/usr/sbin/keepalived",
        {
            "writable": ["/run"],
            "capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"],
            "address_families": ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK", "AF_PACKET"],
        },
    ),
    (
        "prometheus-node-exporter.service",
        "User=prometheus\nExecStart=/usr/bin/prometheus-node-exporter",
        {"protect_home": "read-only", "address_families": ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"]},
    ),
]


def exposure(tmp_path: Path, unit: str, service: str, hardening: dict | None) -> float:
    system = tmp_path / "etc/systemd/system"
    system.mkdir(parents=True, exist_ok=True)
    (system / unit).write_text(f"[Unit]\nDescription={unit}\n[Service]\n{service}\n")
    if hardening is not None:
        (system / f"{unit}.d").mkdir(exist_ok=True)
        text = TEMPLATE.render(__base_hardening=BASELINE | hardening, base_unit=unit, ansible_managed="test")
        (system / f"{unit}.d" / "50-analytics-hardening.conf").write_text(text)
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={tmp_path}", "--no-pager", unit],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    assert m, f"systemd-analyze did not score {unit}: {r.stdout[-500:]}{r.stderr[-500:]}"
    return float(m.group(1))


@pytest.mark.parametrize(("unit", "service", "hardening"), UNITS, ids=[u[0] for u in UNITS])
def test_each_hardened_unit_scores_5_or_lower(tmp_path, unit, service, hardening):
    assert exposure(tmp_path, unit, service, hardening) <= 5.0


@pytest.mark.parametrize(("unit", "service", "hardening"), UNITS[:2], ids=[u[0] for u in UNITS[:2]])
def test_the_same_unit_without_the_drop_in_scores_unsafe(tmp_path, unit, service, hardening):
    assert exposure(tmp_path, unit, service, None) > 5.0


def test_every_option_the_roles_pass_is_in_the_spec():
    spec = yaml.safe_load((ROOT / "roles/base/meta/argument_specs.yml").read_text())["argument_specs"]
    options = spec["unit_hardening"]["options"]["base_unit_hardening"]["options"]
    assert set(options) == set(BASELINE)
    assert {key for _u, _s, h in UNITS for key in h} <= set(options)
