# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Filters that turn the platform's one port matrix into nftables rules for a host."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

PROTOCOLS = ("tcp", "udp")
# Protocols without ports, by IP protocol number (an entry of these accepts the protocol from its audience).
PORTLESS = {"vrrp": 112}


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
        proto = entry.get("proto", "tcp")
        if proto not in PROTOCOLS and proto not in PORTLESS:
            raise AnsibleFilterError(f"{where}: proto '{proto}' is not one of {', '.join((*PROTOCOLS, *PORTLESS))}")
        for key in ("group", "audience") if proto in PORTLESS else ("group", "ports", "audience"):
            if not entry.get(key):
                raise AnsibleFilterError(f"{where}: '{key}' is missing")
        if proto in PORTLESS and _as_list(entry.get("ports")):
            raise AnsibleFilterError(f"{where}: proto '{proto}' has no ports (got {entry['ports']!r})")
        for port in _as_list(entry.get("ports")):
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise AnsibleFilterError(f"{where}: port {port!r} is out of range (1-65535)")
        for aud in _as_list(entry["audience"]):
            if aud not in audiences:
                raise AnsibleFilterError(
                    f"{where}: audience '{aud}' is unknown (defined: {', '.join(sorted(audiences))})"
                )
    return True


def firewall_rules(matrix, audiences, groups, hostvars, host):
    """The accept rules for `host`: one per matrix entry whose group contains the host.

    Returns a list of {service, proto, number (the IP protocol number of a portless proto, else 0), ports, any (bool),
    v4 [cidr], v6 [cidr], audiences}, sorted by service.
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
                "number": PORTLESS.get(entry.get("proto", "tcp"), 0),
                "ports": sorted(set(_as_list(entry.get("ports")))),
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


def host_address(host, hostvars):
    """The address other hosts' firewalls know `host` by: its firewall_address, an IP ansible_host, or its default
    IPv4 address (the addresses the group audiences resolve to)."""
    if host not in hostvars:
        raise AnsibleFilterError(f"host '{host}' is not in the inventory")
    return _host_address(host, hostvars)


def interface_of(address, facts):
    """The name of the interface (from a host's gathered facts) that holds `address`, or, for a network in CIDR form
    (such as 203.0.113.10/24), that has an IPv4 address in that network; "" when none does."""
    text = str(address)
    try:
        if "/" in text:
            net, exact = ipaddress.ip_interface(text).network, None
        else:
            net, exact = None, ipaddress.ip_address(text)
    except ValueError as e:
        raise AnsibleFilterError(f"'{text}' is not an address or an address with its prefix length ({e})") from None
    facts = facts or {}
    for name in sorted(facts.get("interfaces") or []):
        data = facts.get(name.replace("-", "_")) or {}
        for entry in [data.get("ipv4") or {}, *(data.get("ipv4_secondaries") or [])]:
            own = entry.get("address")
            if not own:
                continue
            own = ipaddress.ip_address(own)
            if (exact is not None and own == exact) or (net is not None and own in net):
                return name
    return ""


class FilterModule:
    def filters(self):
        return {
            "firewall_rules": firewall_rules,
            "firewall_address_allowed": address_allowed,
            "firewall_host_address": host_address,
            "interface_of": interface_of,
        }
