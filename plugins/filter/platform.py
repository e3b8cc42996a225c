# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Filters that derive every consumer's view of the platform from its one catalogue (module_utils/platform.py):
the firewall's port matrix, endpoint lists (nginx upstreams, client bootstrap lists, audit targets), Prometheus's
scrape jobs, the audit's TLS endpoints, the platform's secret variables, and port conflicts on a host."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.module_utils.platform import (
    ENDPOINTS,
    conflicts,
    endpoint,
    in_group,
    roles_of,
    secret_vars,
)


def _host_vars(hostvars, host):
    try:
        return hostvars[host]
    except KeyError:
        raise AnsibleFilterError(f"host '{host}' is not in the inventory") from None


def _entry(name):
    try:
        return endpoint(name)
    except KeyError as e:
        raise AnsibleFilterError(str(e.args[0])) from None


def _resolve(port, hv, host):
    try:
        return port.resolve(hv)
    except ValueError as e:
        raise AnsibleFilterError(f"host '{host}': {e}") from None


def _resolve_all(port, hv, host):
    try:
        return port.resolve_all(hv)
    except ValueError as e:
        raise AnsibleFilterError(f"host '{host}': {e}") from None


def platform_endpoints(hosts, name, hostvars, port=0, address_var="ansible_host"):
    """One entry per host of `hosts`: {host, address, port, hostport, url (with a scheme)}, the port of endpoint
    `name` (its `port`-th, from 0) as that host's variables set it."""
    e = _entry(name)
    if not 0 <= int(port) < len(e.ports):
        raise AnsibleFilterError(f"endpoint '{name}' has {len(e.ports)} port(s), not a port number {port}")
    out = []
    for host in hosts or []:
        hv = _host_vars(hostvars, host)
        number = _resolve(e.ports[int(port)], hv, host)
        address = str(hv.get(address_var) or hv.get("ansible_host") or host)
        item = {"host": host, "address": address, "port": number, "hostport": f"{host}:{number}"}
        if e.scheme:
            item["url"] = f"{e.scheme}://{address}:{number}"
        out.append(item)
    return out


def platform_port(host, name, hostvars, port=0):
    """The port of endpoint `name` (its `port`-th, from 0) as `host`'s variables set it; the catalogue's default for
    an empty host (a group with no hosts yet: the roles' preflights name that) or one outside the inventory (an
    address, an external service)."""
    if not host or host not in hostvars:
        e = _entry(name)
        if not 0 <= int(port) < len(e.ports):
            raise AnsibleFilterError(f"endpoint '{name}' has {len(e.ports)} port(s), not a port number {port}")
        return _resolve(e.ports[int(port)], {}, "")
    return platform_endpoints([host], name, hostvars, port)[0]["port"]


def platform_ports(host, name, hostvars, port=0):
    """Every port of endpoint `name` (its `port`-th, from 0) on `host`, one per instance of the service there (Bento
    runs bento_instances of them, on consecutive ports); a single port for any other endpoint."""
    e = _entry(name)
    if not 0 <= int(port) < len(e.ports):
        raise AnsibleFilterError(f"endpoint '{name}' has {len(e.ports)} port(s), not a port number {port}")
    hv = hostvars[host] if host and host in hostvars else {}
    return _resolve_all(e.ports[int(port)], hv, host)


def _serves(e, hv, host):
    try:
        return e.served_by(hv)
    except ValueError as err:
        raise AnsibleFilterError(f"host '{host}': {err}") from None


def platform_matrix(host, hostvars):
    """The firewall's port matrix with the ports as `host`'s variables set them: entry name -> {group, ports,
    audience, description} (roles/firewall: firewall_matrix). An endpoint the host's variables switch off (such as
    Alertmanager with monitoring_alertmanager_enabled false) is left out: its ports stay closed."""
    hv = _host_vars(hostvars, host)
    return {
        name: {
            "group": e.group,
            "ports": sorted({n for p in e.ports for n in _resolve_all(p, hv, host)}),
            "audience": list(e.audience) if len(e.audience) > 1 else e.audience[0],
            "description": e.description,
            **({"proto": e.proto} if e.proto != "tcp" else {}),
        }
        for name, e in ENDPOINTS.items()
        if _serves(e, hv, host)
    }


def platform_serving(hosts, name, hostvars):
    """The hosts of `hosts` that serve endpoint `name` (all of them, but those whose variables switch it off)."""
    e = _entry(name)
    return [h for h in hosts or [] if _serves(e, _host_vars(hostvars, h), h)]


def platform_scrape_jobs(_unused=None, node_group="platform"):
    """Prometheus's jobs: {name, group, endpoint, scheme, path} for every endpoint with metrics; the node exporters'
    job covers `node_group` (monitoring_node_group)."""
    return [
        {
            "name": e.job,
            "group": node_group if name == "node_exporter" else e.group,
            "endpoint": name,
            "scheme": e.scheme or "http",
            "path": e.metrics,
            **({"token": e.metrics_auth} if e.metrics_auth else {}),
        }
        for name, e in ENDPOINTS.items()
        if e.metrics
    ]


def platform_tls_endpoints(_unused=None):
    """The audit's TLS endpoints: {group, endpoint, endpoint_port (which of its ports), service, protocol} for every
    endpoint that speaks TLS."""
    return [
        {"group": e.group, "endpoint": name, "endpoint_port": e.tls_port, "service": e.tls, "protocol": e.protocol}
        for name, e in ENDPOINTS.items()
        if e.tls
    ]


def platform_tls_targets(hosts, hostvars):
    """Every TLS endpoint each host of `hosts` serves, as a client reaches it: {host, endpoint, service, protocol,
    address, port, zone}, in the hosts' order then the catalogue's. A host serves the endpoints of its groups (and
    those of every host) that its variables do not switch off; the port is the endpoint's TLS port as the host sets
    it (the blackbox probes of the served certificates)."""
    out = []
    for host in hosts or []:
        hv = _host_vars(hostvars, host)
        names = hv.get("group_names", [])
        for name, e in ENDPOINTS.items():
            if not e.tls or not in_group(e.group, names) or not _serves(e, hv, host):
                continue
            out.extend(
                {
                    "host": host,
                    "endpoint": name,
                    "service": e.tls,
                    "protocol": e.protocol,
                    "address": str(hv.get("ansible_host") or host),
                    "port": port,
                    "zone": str(hv.get("zone") or ""),
                }
                for port in _resolve_all(e.ports[e.tls_port], hv, host)
            )
    return out


def platform_units(_unused=None):
    """The systemd units of endpoints with a readiness check: unit -> {endpoint, group, scheme, ready}."""
    return {
        e.unit: {"endpoint": name, "group": e.group, "scheme": e.scheme or "http", "ready": e.ready}
        for name, e in ENDPOINTS.items()
        if e.unit and e.ready
    }


def platform_roles(group_names):
    """The roles a host in these groups runs for its groups, in site.yml's order. base, pki, firewall and monitoring
    run on every host and are not listed."""
    return [r for r in roles_of(group_names) if r != "monitoring"]


def platform_secrets(_unused=None):
    """Every secret variable of the platform."""
    return secret_vars()


def platform_conflicts(host, hostvars):
    """Ports two endpoints on `host` both claim, as one message each (empty: none)."""
    hv = _host_vars(hostvars, host)
    try:
        return conflicts(hv, hv.get("group_names", []))
    except ValueError as e:
        raise AnsibleFilterError(f"host '{host}': {e}") from None


class FilterModule:
    def filters(self):
        return {
            "platform_endpoints": platform_endpoints,
            "platform_serving": platform_serving,
            "platform_matrix": platform_matrix,
            "platform_port": platform_port,
            "platform_ports": platform_ports,
            "platform_scrape_jobs": platform_scrape_jobs,
            "platform_tls_endpoints": platform_tls_endpoints,
            "platform_tls_targets": platform_tls_targets,
            "platform_secrets": platform_secrets,
            "platform_roles": platform_roles,
            "platform_units": platform_units,
            "platform_conflicts": platform_conflicts,
        }
