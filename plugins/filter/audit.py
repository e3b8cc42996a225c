# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the security audit (playbooks/audit.yml): what to probe, and the results gathered from every host."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def audit_targets(open_entries, closed_entries, groups, hostvars):
    """TCP targets for the reachability module: every port of every host of each entry's group, with what to expect."""
    targets, seen = [], set()
    for expect, entries in (("open", open_entries), ("closed", closed_entries)):
        for i, entry in enumerate(entries or []):
            if not isinstance(entry, dict) or "group" not in entry or not entry.get("ports"):
                raise AnsibleFilterError(f"audit targets ({expect}) entry {i}: needs group and ports (got {entry!r})")
            for host in groups.get(entry["group"], []):
                address = hostvars[host].get("ansible_host", host)
                for port in entry["ports"]:
                    key = (address, int(port))
                    if key in seen:
                        continue
                    seen.add(key)
                    targets.append({"host": address, "port": int(port), "expect": expect,
                                    "service": f"{entry['group']} on {host}"})  # fmt: skip
    return targets


def audit_collect(hostvars, hosts):
    """Every host's `audit_results`, each result labelled with its host (unless it names one itself)."""
    out = []
    for host in hosts:
        for r in hostvars[host].get("audit_results") or []:
            out.append(dict(r, host=r.get("host") or host))
    return out


def audit_addresses(hostvars, hosts, var="ansible_host", port=None):
    """How the controller reaches each host: its `var`, else its ansible_host, else its inventory name; with :port."""
    out = []
    for host in hosts or []:
        hv = hostvars[host]
        address = hv.get(var) or hv.get("ansible_host") or host
        out.append(f"{address}:{int(port)}" if port is not None else str(address))
    return out


class FilterModule:
    def filters(self):
        return {"audit_targets": audit_targets, "audit_collect": audit_collect, "audit_addresses": audit_addresses}
