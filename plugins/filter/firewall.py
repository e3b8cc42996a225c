# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Filters that turn the platform's one port matrix into nftables rules for a host."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

PROTOCOLS = ("tcp", "udp")


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _host_address(host, hostvars):
    hv = hostvars[host]
    for key in ("firewall_address", "ansible_host"):
        value = hv.get(key)
        if value:
            try:
                return str(ipaddress.ip_address(str(value)))
            except ValueError:
                continue
    facts = hv.get("ansible_facts") or {}
    addr = (facts.get("default_ipv4") or {}).get("address")
    if addr:
        return addr
    raise AnsibleFilterError(
        f"cannot find an IP address for host '{host}': set firewall_address (or an IP ansible_host) for it"
    )


def _networks(cidrs, where):
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(str(c), strict=False))
        except ValueError as e:
            raise AnsibleFilterError(f"{where}: '{c}' is not an address or CIDR ({e})") from None
    return out


def resolve_audience(name, audiences, groups, hostvars):
    """The networks of one audience: its CIDRs plus the addresses of its groups' hosts."""
    if name not in audiences:
        raise AnsibleFilterError(f"audience '{name}' is not defined in firewall_audiences")
    spec = audiences[name] or {}
    unknown = set(spec) - {"cidrs", "groups"}
    if unknown:
        raise AnsibleFilterError(f"firewall_audiences.{name}: unknown key(s) {', '.join(sorted(unknown))}")
    nets = _networks(_as_list(spec.get("cidrs")), f"firewall_audiences.{name}.cidrs")
    for g in _as_list(spec.get("groups")):
        for h in groups.get(g, []):
            nets.append(ipaddress.ip_network(_host_address(h, hostvars)))
    return nets


def validate_matrix(matrix, audiences):
    """Fail naming the entry for an unknown audience, a bad port or protocol."""
    if not isinstance(matrix, dict):
        raise AnsibleFilterError("firewall_matrix must be a dictionary of service name -> entry")
    for svc, entry in matrix.items():
        where = f"firewall_matrix.{svc}"
        if not isinstance(entry, dict):
            raise AnsibleFilterError(f"{where} must be a dictionary with group, ports and audience")
        unknown = set(entry) - {"group", "ports", "audience", "proto", "description"}
        if unknown:
            raise AnsibleFilterError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("group", "ports", "audience"):
            if not entry.get(key):
                raise AnsibleFilterError(f"{where}: '{key}' is missing")
        for port in _as_list(entry["ports"]):
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise AnsibleFilterError(f"{where}: port {port!r} is out of range (1-65535)")
        proto = entry.get("proto", "tcp")
        if proto not in PROTOCOLS:
            raise AnsibleFilterError(f"{where}: proto '{proto}' is not one of {', '.join(PROTOCOLS)}")
        for aud in _as_list(entry["audience"]):
            if aud not in audiences:
                raise AnsibleFilterError(
                    f"{where}: audience '{aud}' is unknown (defined: {', '.join(sorted(audiences))})"
                )
    return True


def firewall_rules(matrix, audiences, groups, hostvars, host):
    """The accept rules for `host`: one per matrix entry whose group contains the host.

    Returns a list of {service, proto, ports, any (bool), v4 [cidr], v6 [cidr], audiences}, sorted by service.
    """
    validate_matrix(matrix, audiences)
    rules = []
    for svc in sorted(matrix):
        entry = matrix[svc]
        group = entry["group"]
        members = groups.get(group, []) if group != "all" else groups.get("all", [])
        if host not in members:
            continue
        nets = []
        for aud in _as_list(entry["audience"]):
            nets += resolve_audience(aud, audiences, groups, hostvars)
        any_source = any(n.prefixlen == 0 for n in nets)
        uniq = sorted({str(n) for n in nets})
        rules.append(
            {
                "service": svc,
                "proto": entry.get("proto", "tcp"),
                "ports": sorted(set(_as_list(entry["ports"]))),
                "any": any_source,
                "v4": [] if any_source else [n for n in uniq if ":" not in n],
                "v6": [] if any_source else [n for n in uniq if ":" in n],
                "audiences": _as_list(entry["audience"]),
            }
        )
    return rules


def address_allowed(rules, address, port, proto="tcp"):
    """Whether `address` may reach `port` under `rules` (to refuse a ruleset that would lock out the controller)."""
    ip = ipaddress.ip_address(str(address))
    for r in rules:
        if r["proto"] != proto or int(port) not in r["ports"]:
            continue
        if r["any"] or any(ip in ipaddress.ip_network(n) for n in r["v4"] + r["v6"]):
            return True
    return False


class FilterModule:
    def filters(self):
        return {
            "firewall_rules": firewall_rules,
            "firewall_address_allowed": address_allowed,
        }
