"""Every systemd unit the collection writes or relies on carries the collection's one hardening drop-in
(roles/base: unit_hardening) and scores 5 or lower ("OK") in `systemd-analyze security`. Shared by every scenario
that converges the roles (.config/molecule/config.yml: additional_files_or_dirs); the insecure twin and the
scenarios that converge no role (default, fresh) opt out."""

from __future__ import annotations

import pytest
from conftest import inventory, lab_host

DROP_IN = "50-analytics-hardening.conf"
# Debian's units the platform runs, which must carry the drop-in when they are installed.
DEBIAN_UNITS = [
    "nginx.service",
    "prometheus.service",
    "prometheus-alertmanager.service",
    "prometheus-nginx-exporter.service",
    "prometheus-node-exporter.service",
    "prometheus-postgres-exporter.service",
]
# Not hardened by the drop-in, each with the reason (roles/base/README.md "Unit hardening").
EXCEPTIONS = {
    "postgresql@.service": "Patroni takes over PostgreSQL's unit (issue 16); Debian's pg_ctlcluster runs as root",
    "grafana-server.service": "AGPL: never run here, so a drop-in could not be proven to leave it working",
    "test-listen@.service": "the security scenario's own test listeners (its prepare.yml), not a collection unit",
}
INSTANCE = {"bento@.service": "bento@1.service", "postgresql@.service": "postgresql@15-main.service"}


def hosts() -> list[str]:
    return sorted(inventory()["_meta"]["hostvars"])


def units_of(host) -> tuple[set[str], set[str]]:
    """(units the collection wrote or relies on, units carrying the drop-in) on a host."""
    written = host.run("find /etc/systemd/system -maxdepth 1 -type f -name '*.service' -printf '%f\\n'").stdout.split()
    installed = host.run(
        "for u in " + " ".join(DEBIAN_UNITS) + "; do systemctl cat $u >/dev/null 2>&1 && echo $u; done"
    ).stdout.split()
    hardened = host.run(
        f"find /etc/systemd/system -mindepth 2 -maxdepth 2 -name {DROP_IN} -printf '%h\\n'"
    ).stdout.split()
    return set(written) | set(installed), {h.rsplit("/", 1)[1].removesuffix(".d") for h in hardened}


@pytest.mark.parametrize("name", hosts())
def test_every_unit_carries_the_hardening_and_scores_ok(name):
    host = lab_host(name)
    units, hardened = units_of(host)
    missing = sorted(units - hardened - set(EXCEPTIONS))
    assert not missing, f"{name}: units without the hardening drop-in: {missing}"
    scores = {}
    for unit in sorted(hardened):
        r = host.run(f"systemd-analyze security --no-pager --threshold=50 {INSTANCE.get(unit, unit)}")
        scores[unit] = (r.rc, r.stdout.strip().splitlines()[-1:] or [r.stderr.strip()])
    unsafe = {u: s[1] for u, s in scores.items() if s[0] != 0}
    assert not unsafe, f"{name}: exposure above 5: {unsafe}"
