# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the security audit (roles/audit): what each host must be probed for, from the catalogue
(module_utils/audit.py) and the firewall's port matrix, and the results gathered from every host."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.module_utils.audit import CATALOGUE, controls_for
from ansible_collections.analytics.platform.plugins.module_utils.platform import endpoint, instance_ports, ports_of


def _entries(matrix):
    if not isinstance(matrix, dict):
        raise AnsibleFilterError(f"the port matrix must be a dict of entries (got {type(matrix).__name__})")
    for name, entry in matrix.items():
        # The audit's port probes speak TCP: entries of other protocols (VRRP, UDP) are not theirs.
        if isinstance(entry, dict) and entry.get("proto", "tcp") != "tcp":
            continue
        if not isinstance(entry, dict) or "group" not in entry or not entry.get("ports"):
            raise AnsibleFilterError(f"port matrix entry '{name}': needs group and ports (got {entry!r})")
        audience = entry.get("audience", [])
        yield (
            name,
            entry["group"],
            [int(p) for p in entry["ports"]],
            audience if isinstance(audience, list) else [audience],
        )


def audit_matrix_ports(matrix, group_names):
    """The TCP ports the port matrix names for a host in `group_names`."""
    mine = set(group_names or []) | {"all"}
    return sorted({p for _n, group, ports, _a in _entries(matrix) if group in mine for p in ports})


def audit_outside_targets(matrix, groups, hostvars, hosts):
    """For the reachability probe from outside: every matrix port of every host in `hosts` (from the host's own
    firewall_port_matrix when it has one, else `matrix`), expected open when the entry's audience is public, closed
    otherwise."""
    targets = []
    for host in hosts or []:
        mine = set(hostvars[host].get("group_names", [])) | {"all"}
        address = hostvars[host].get("ansible_host", host)
        seen = set()
        # the host's own matrix (its ports as its variables set them) when the audit has read it there
        for name, group, ports, audience in _entries(hostvars[host].get("firewall_port_matrix") or matrix):
            if group not in mine:
                continue
            for port in ports:
                if port in seen:
                    continue
                seen.add(port)
                expect = "open" if "public" in audience else "closed"
                targets.append({"host": host, "address": address, "port": port, "expect": expect, "service": name})
    return targets


def audit_host_endpoints(endpoints, group_names, host_vars=None):
    """The TLS endpoints a host in `group_names` serves (entries of audit_tls_endpoints by group); an entry names its
    port, or its endpoint in the platform catalogue (the port as the host's variables `host_vars` set it; none when
    they switch the endpoint off)."""
    mine = set(group_names or []) | {"all"}
    out = []
    for i, e in enumerate(endpoints or []):
        if not isinstance(e, dict) or not e.get("group") or not (e.get("port") or e.get("endpoint")):
            raise AnsibleFilterError(f"audit_tls_endpoints[{i}]: needs group and port or endpoint (got {e!r})")
        if e["group"] not in mine:
            continue
        try:
            if e.get("endpoint") and not endpoint(e["endpoint"]).served_by(host_vars or {}):
                continue
            if e.get("port"):
                ports = [int(e["port"])]
            else:
                ports = instance_ports(e["endpoint"], host_vars or {}, int(e.get("endpoint_port") or 0))
        except (KeyError, ValueError, IndexError) as err:
            raise AnsibleFilterError(f"audit_tls_endpoints[{i}]: {err.args[0]}") from None
        service, protocol = e.get("service", e["group"]), e.get("protocol", "tls")
        out.extend({"port": port, "service": service, "protocol": protocol} for port in ports)
    return out


def audit_expected(hostvars, hosts, controls, extra=None):
    """The (host, control) pairs the audit must report on: each catalogue control enabled in `controls`, on each host
    of `hosts` whose groups it applies to; plus `extra` pairs (the inventory's own secrets)."""
    unknown = sorted(set(controls) - set(CATALOGUE))
    if unknown:
        raise AnsibleFilterError(f"audit_controls: unknown control(s) {unknown} (known: {', '.join(CATALOGUE)})")
    out = []
    for host in hosts or []:
        for control in controls_for(hostvars[host].get("group_names", [])):
            if control in controls:
                out.append({"host": host, "control": control})
    return out + [e for e in (extra or []) if e["control"] in controls]


def _in(hostvars, host, *groups):
    return bool(set(hostvars[host].get("group_names", [])) & set(groups))


def audit_expected_targets(hostvars, hosts, controls, outside="", inside="", outside_reason="", inside_reason=""):
    """The (host, control, target) entries the probes from elsewhere must report, named exactly as the modules name
    their targets: from `outside` (the vantage label) and `inside` (the application host's label), and from the
    controller. The report turns each one missing into an error (with the reason given for the vantage it needed), so
    a probe that did not run never goes unnoticed; without an outside host, everything probed from outside is such an
    error."""
    out = []
    if not outside:
        outside, outside_reason = "outside", "nothing was probed from outside: the inventory has no vantage host"
    if not inside:
        inside, inside_reason = "inside", "nothing was probed from inside: the inventory has no application host"
    reasons = {outside: outside_reason, inside: inside_reason}

    def want(host, control, target, via=None):
        if control in controls:
            e = {"host": host, "control": control, "target": target}
            if via and reasons.get(via):
                e["reason"] = reasons[via]
            out.append(e)

    for h in hosts or []:
        for label in (outside, inside):
            for component, groups in (
                ("postgresql", ["postgresql"]),
                ("kafka", ["kafka"]),
                ("s3", ["seaweedfs", "minio"]),
            ):
                if _in(hostvars, h, *groups):
                    want(h, "default_passwords", f"{component} logins from {label}", label)
        want(h, "firewall", f"from {outside}", outside)
        if _in(hostvars, h, "nginx"):
            https_port = ports_of("nginx", hostvars[h])[1]
            for control in ("api_auth", "cors", "api_rate_limit"):
                want(h, control, f"https://{h}:{https_port}", outside)
        if _in(hostvars, h, "analytics_api"):
            want(h, "reverse_proxy", f"port {ports_of('analytics_api', hostvars[h])[0]} from {outside}", outside)
        if _in(hostvars, h, "kafka"):
            want(h, "kafka_sasl_ssl", "listeners", inside)
            want(h, "kafka_sasl_ssl", "ACL default deny")
        if _in(hostvars, h, "seaweedfs", "minio"):
            for target in ("anonymous access", "bucket policy", "versioning", "read-only"):
                want(h, "object_store", target)
        if _in(hostvars, h, "grafana"):
            want(h, "default_passwords", "grafana admin login")
            want(h, "grafana", "admin login")
            want(h, "grafana", "oauth")
    return out


def audit_host_groups(hostvars, hosts, matrix):
    """Each host's components: its groups that the catalogue or the port matrix know."""
    known = {g for c in CATALOGUE.values() for g in c["groups"]} | {g for _n, g, _p, _a in _entries(matrix)}
    known.discard("all")
    return {h: sorted(set(hostvars[h].get("group_names", [])) & known) for h in hosts or []}


def audit_collect(hostvars, hosts, controls=None):
    """Every host's `audit_results`, each result labelled with its host (unless it names one itself); with
    `controls`, only the results of those controls."""
    out = []
    for host in hosts:
        for r in hostvars[host].get("audit_results") or []:
            if controls is None or r.get("control") in controls:
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


def audit_endpoints(hostvars, hosts, port=None, scheme=None, var="ansible_host", endpoint=None):
    """Each host as the probes address it: {host, address, port} (and endpoint, scheme://address:port, with a
    scheme); the address is the host's `var`, else its ansible_host, else its inventory name. The port is `port`, or
    with `endpoint` (a name in the platform catalogue) that endpoint's first port as each host's variables set it."""
    if port is None and endpoint is None:
        raise AnsibleFilterError("audit_endpoints needs a port or an endpoint")
    out = []
    for host, address in zip(hosts or [], audit_addresses(hostvars, hosts, var), strict=True):
        try:
            number = int(port) if endpoint is None else ports_of(endpoint, hostvars[host])[0]
        except (KeyError, ValueError) as err:
            raise AnsibleFilterError(f"host '{host}': {err.args[0]}") from None
        e = {"host": host, "address": address, "port": number}
        if scheme:
            e["endpoint"] = f"{scheme}://{address}:{number}"
        out.append(e)
    return out


SECRET_FIELDS = ("secret_key", "password")


def audit_secrets(host_vars, names):
    """The secret values a host's variables hold, by name: {name: value} for each of `names` set to a non-empty string,
    {name['key']: value} for each entry of one set to a mapping (kafka_client_passwords, seaweedfs_s3_secret_keys,
    minio_user_secrets), and {name['key'].secret_key: value} for the secret of a mapping's entry that is itself a pair
    (seaweedfs_s3_previous_credentials). The audit looks for every one of them in processes, files and the journal."""
    out = {}
    for name in names or []:
        value = (host_vars or {}).get(name)
        if isinstance(value, str) and value:
            out[name] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, str) and v:
                    out[f"{name}['{k}']"] = v
                elif isinstance(v, dict):
                    fields = [f for f in SECRET_FIELDS if isinstance(v.get(f), str) and v[f]]
                    out.update({f"{name}['{k}'].{f}": v[f] for f in fields})
    return out


def audit_catalogue(_unused=None):
    """The catalogue of controls: [{id, title, severity, groups, remediation}]."""
    return [{"id": cid, **c} for cid, c in CATALOGUE.items()]


class FilterModule:
    def filters(self):
        return {
            "audit_matrix_ports": audit_matrix_ports,
            "audit_outside_targets": audit_outside_targets,
            "audit_host_endpoints": audit_host_endpoints,
            "audit_expected": audit_expected,
            "audit_expected_targets": audit_expected_targets,
            "audit_host_groups": audit_host_groups,
            "audit_collect": audit_collect,
            "audit_addresses": audit_addresses,
            "audit_endpoints": audit_endpoints,
            "audit_catalogue": audit_catalogue,
            "audit_secrets": audit_secrets,
        }
