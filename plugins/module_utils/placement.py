# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Zone-placement rules of the platform, as plain Python (used by the validate_placement action and unit tests).

The rule behind every check: losing any ONE zone must leave
- Kafka with a controller quorum and enough brokers for min.insync.replicas on every partition;
- the object store readable and writable;
- a PostgreSQL copy (primary or replica) in a surviving zone;
- nginx with at least one live analytics_api upstream (and a live nginx).
Errors name the group and the hosts; warnings name single points of failure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ansible_collections.analytics.platform.plugins.module_utils.platform import optional_groups, required_groups

# Groups that make up the platform (the catalogue's GROUPS): "required" groups must exist and have hosts.
REQUIRED_GROUPS = required_groups()
OPTIONAL_GROUPS = optional_groups()
SEAWEEDFS_REPLICATION_RE = re.compile(r"^[0-9]{3}$")
# Rule sets that can be checked on their own (a role checks only its own component).
COMPONENTS = ("kafka", "postgresql", "etcd", "object_store", "edge", "services")


@dataclass
class PlacementReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    zones: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _zones_of(hosts, zone_of):
    out: dict[str, list[str]] = {}
    for h in hosts:
        out.setdefault(zone_of[h], []).append(h)
    return out


def _fmt(hosts):
    return ", ".join(sorted(hosts))


def check_placement(groups: dict, zone_of: dict, params: dict | None = None) -> PlacementReport:
    """Check the placement of an inventory.

    groups: group name -> list of hosts (as Ansible's `groups`).
    zone_of: host -> zone (None or "" when the host has none).
    params: effective settings that the rules depend on:
      kafka_replication_factor (3), kafka_min_insync_replicas (2), kafka_controllers (list of hosts; default all
      kafka hosts), seaweedfs_replication ("100"), minio_drives_per_node (1), object_store ("auto"),
      postgresql_patroni (True: PostgreSQL fails over through Patroni, whose etcd group must keep a quorum),
      required_groups (groups that must have hosts), components (rule sets to apply; default all of COMPONENTS).
    """
    p = {
        "kafka_replication_factor": 3,
        "kafka_min_insync_replicas": 2,
        "kafka_controllers": None,
        "seaweedfs_replication": "100",
        "minio_drives_per_node": 1,
        "postgresql_patroni": True,
        "required_groups": list(REQUIRED_GROUPS),
        "components": list(COMPONENTS),
    }
    p.update({k: v for k, v in (params or {}).items() if v is not None})
    r = PlacementReport()

    unknown = sorted(set(p["components"]) - set(COMPONENTS))
    if unknown:
        r.errors.append(f"unknown placement component(s) {', '.join(unknown)}: use {', '.join(COMPONENTS)}")
        return r
    platform_groups = [g for g in (*REQUIRED_GROUPS, *OPTIONAL_GROUPS, *p["required_groups"]) if groups.get(g)]
    platform_groups = list(dict.fromkeys(platform_groups))
    for g in p["required_groups"]:
        if not groups.get(g):
            r.errors.append(f"group '{g}' is missing or empty: the platform needs at least one host in it")

    # Every platform host needs a zone.
    platform_hosts = sorted({h for g in platform_groups for h in groups[g]})
    missing = [h for h in platform_hosts if not zone_of.get(h)]
    for h in missing:
        r.errors.append(f"host '{h}' has no zone: set the variable 'zone' for it")
    if missing:
        return r  # the zone rules below need every zone
    all_zones = sorted({zone_of[h] for h in platform_hosts})
    r.zones = {z: sorted(h for h in platform_hosts if zone_of[h] == z) for z in all_zones}
    if len(all_zones) < 2:
        r.errors.append(f"all platform hosts are in one zone ({_fmt(all_zones)}): losing it loses everything")
    elif len(all_zones) < 3 and {"kafka", "object_store"} & set(p["components"]):
        r.warnings.append(
            f"only two zones ({_fmt(all_zones)}): Kafka and the object store need three to survive a loss"
        )

    comps = set(p["components"])
    if "kafka" in comps:
        _check_kafka(groups, zone_of, p, r)
    if "postgresql" in comps:
        _check_postgresql(groups, zone_of, r)
    patroni = "postgresql" in comps and _true(p["postgresql_patroni"]) and bool(groups.get("postgresql_primary"))
    if patroni or ("etcd" in comps and groups.get("etcd")):
        _check_etcd(groups, zone_of, r)
    if "object_store" in comps:
        _check_object_store(groups, zone_of, p, r)
    if "edge" in comps:
        _check_edge(groups, zone_of, r)
    if "services" not in comps:
        return r
    for g in ("pg_sink", "delta_writer", "delta_dashboard", "grafana", "monitoring", "bento"):
        hosts = groups.get(g) or []
        if hosts and len(_zones_of(hosts, zone_of)) == 1:
            r.warnings.append(
                f"group '{g}' runs only in zone {zone_of[hosts[0]]} ({_fmt(hosts)}): a single point of failure"
            )
    return r


def _check_kafka(groups, zone_of, p, r):
    brokers = groups.get("kafka") or []
    if not brokers:
        return
    rf = int(p["kafka_replication_factor"])
    min_isr = int(p["kafka_min_insync_replicas"])
    controllers = p["kafka_controllers"] or brokers
    if min_isr > rf:
        r.errors.append(
            f"kafka_min_insync_replicas ({min_isr}) is larger than kafka_replication_factor ({rf}): "
            "no write can succeed"
        )
    if len(brokers) < rf:
        r.errors.append(
            f"group 'kafka' has {len(brokers)} brokers ({_fmt(brokers)}) but kafka_replication_factor is {rf}"
        )
    by_zone = _zones_of(brokers, zone_of)
    # Rack-aware assignment spreads each partition's replicas over the racks (zones): the zone holding the most
    # replicas of a partition holds ceil(rf / zones) of them.
    worst_loss = math.ceil(rf / len(by_zone)) if by_zone else rf
    if rf - worst_loss < min_isr:
        r.errors.append(
            f"group 'kafka': brokers in {len(by_zone)} zone(s) ({_fmt(by_zone)}); losing one zone can leave "
            f"{rf - worst_loss} replica(s) of a partition, below kafka_min_insync_replicas {min_isr}"
        )
    ctrl_by_zone = _zones_of(controllers, zone_of)
    quorum = len(controllers) // 2 + 1
    for zone, hosts in sorted(ctrl_by_zone.items()):
        if len(controllers) - len(hosts) < quorum:
            r.errors.append(
                f"group 'kafka': losing zone {zone} removes controllers {_fmt(hosts)} and breaks the KRaft quorum "
                f"({len(controllers) - len(hosts)} of {len(controllers)} left, {quorum} needed)"
            )
    if len(controllers) % 2 == 0:
        r.warnings.append(
            f"{len(controllers)} KRaft controllers: an even count tolerates no more failures than one fewer"
        )


def _check_postgresql(groups, zone_of, r):
    primaries = groups.get("postgresql_primary") or []
    replicas = groups.get("postgresql_replica") or []
    if len(primaries) > 1:
        r.errors.append(
            f"group 'postgresql_primary' has {len(primaries)} hosts ({_fmt(primaries)}): exactly one is allowed"
        )
    if not primaries:
        return
    primary_zone = zone_of[primaries[0]]
    if not replicas:
        r.errors.append(
            "group 'postgresql_replica' is empty: losing zone "
            f"{primary_zone} would lose the only PostgreSQL copy ({primaries[0]})"
        )
        return
    overlap = sorted(set(primaries) & set(replicas))
    if overlap:
        r.errors.append(f"hosts {_fmt(overlap)} are in both postgresql_primary and postgresql_replica")
    elsewhere = [h for h in replicas if zone_of[h] != primary_zone]
    if not elsewhere:
        r.errors.append(
            f"group 'postgresql_replica': every replica ({_fmt(replicas)}) is in the primary's zone {primary_zone}; "
            "put one in another zone"
        )


def _true(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def _check_etcd(groups, zone_of, r):
    members = groups.get("etcd") or []
    if not members:
        r.errors.append(
            "group 'etcd' is empty: Patroni (postgresql_patroni) needs three etcd members, one per zone, to fail over "
            "(or set postgresql_patroni: false for a primary and replicas without automatic failover)"
        )
        return
    quorum = len(members) // 2 + 1
    if len(members) < 3:
        r.errors.append(
            f"group 'etcd' has {len(members)} member(s) ({_fmt(members)}): "
            "losing one loses the quorum; use three or five"
        )
    for zone, hosts in sorted(_zones_of(members, zone_of).items()):
        if len(members) - len(hosts) < quorum:
            r.errors.append(
                f"group 'etcd': losing zone {zone} removes members {_fmt(hosts)} and breaks the quorum "
                f"({len(members) - len(hosts)} of {len(members)} left, {quorum} needed)"
            )
    if len(members) % 2 == 0:
        r.warnings.append(f"{len(members)} etcd members: an even count tolerates no more failures than one fewer")


def _check_object_store(groups, zone_of, p, r):
    weed = groups.get("seaweedfs") or []
    minio = groups.get("minio") or []
    if weed and minio:
        r.errors.append("both 'seaweedfs' and 'minio' have hosts: deploy one object store")
    if not weed and not minio:
        r.errors.append("no object store: put hosts in group 'seaweedfs' (or 'minio')")
        return
    if weed:
        repl = str(p["seaweedfs_replication"])
        if not SEAWEEDFS_REPLICATION_RE.match(repl):
            r.errors.append(f"seaweedfs_replication '{repl}' is not three digits (other DCs, other racks, same rack)")
            return
        other_dcs = int(repl[0])
        by_zone = _zones_of(weed, zone_of)
        if other_dcs < 1:
            r.errors.append(
                f"seaweedfs_replication '{repl}' keeps every copy in one zone: losing that zone loses data; "
                "use '100' or more (the first digit counts copies in other zones)"
            )
        if len(by_zone) < other_dcs + 2:
            r.errors.append(
                f"group 'seaweedfs': {len(by_zone)} zone(s) ({_fmt(by_zone)}) cannot keep writing with replication "
                f"'{repl}' after losing one zone: it needs {other_dcs + 2} zones"
            )
        masters = len(weed)
        for zone, hosts in sorted(by_zone.items()):
            if masters - len(hosts) < masters // 2 + 1:
                r.errors.append(
                    f"group 'seaweedfs': losing zone {zone} ({_fmt(hosts)}) breaks the master quorum "
                    f"({masters - len(hosts)} of {masters} left)"
                )
    if minio:
        drives = int(p["minio_drives_per_node"])
        total = len(minio) * drives
        if len(minio) < 4:
            r.errors.append(f"group 'minio' has {len(minio)} nodes ({_fmt(minio)}): distributed MinIO needs 4 or more")
        by_zone = _zones_of(minio, zone_of)
        for zone, hosts in sorted(by_zone.items()):
            left = total - len(hosts) * drives
            # With the default parity (EC:total/2 for small sets) writes need more than half of the drives.
            if left < total // 2 + 1:
                r.errors.append(
                    f"group 'minio': losing zone {zone} ({_fmt(hosts)}) leaves {left} of {total} drives, "
                    f"below the write quorum {total // 2 + 1}"
                )


def _check_edge(groups, zone_of, r):
    apis = groups.get("analytics_api") or []
    nginx = groups.get("nginx") or []
    if apis and len(_zones_of(apis, zone_of)) < 2:
        r.errors.append(
            f"group 'analytics_api': every API host ({_fmt(apis)}) is in zone {zone_of[apis[0]]}; "
            "losing it leaves nginx without a live upstream"
        )
    if nginx and len(_zones_of(nginx, zone_of)) < 2:
        r.warnings.append(
            f"group 'nginx' runs only in zone {zone_of[nginx[0]]} ({_fmt(nginx)}): a single point of failure"
        )
