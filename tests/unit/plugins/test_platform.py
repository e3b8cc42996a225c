"""The platform catalogue (module_utils/platform.py) and the filters that derive every consumer from it: the owning
roles' defaults agree with it, and every consumer follows a host's non-default ports."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.filter.audit import (
    audit_endpoints,
    audit_expected_targets,
    audit_host_endpoints,
    audit_outside_targets,
)
from ansible_collections.analytics.platform.plugins.filter.platform import (
    platform_conflicts,
    platform_endpoints,
    platform_matrix,
    platform_port,
    platform_ports,
    platform_roles,
    platform_scrape_jobs,
    platform_secrets,
    platform_serving,
    platform_tls_endpoints,
    platform_tls_targets,
    platform_units,
)
from ansible_collections.analytics.platform.plugins.module_utils.platform import ENDPOINTS, port_vars

ROOT = Path(__file__).resolve().parents[3]
ROLE_DEFAULTS = {}
for _f in sorted(ROOT.glob("roles/*/defaults/main.yml")):
    ROLE_DEFAULTS.update(yaml.safe_load(_f.read_text()) or {})

HOSTVARS = {
    "edge-a": {"ansible_host": "10.0.1.14", "group_names": ["zone_a", "nginx"]},
    "app-a": {"ansible_host": "10.0.1.13", "group_names": ["zone_a", "analytics_api"], "analytics_api_port": 3443},
    "app-b": {"ansible_host": "10.0.2.13", "group_names": ["zone_b", "analytics_api"]},
    "k1": {"ansible_host": "10.0.1.11", "group_names": ["kafka"], "kafka_client_port": "19092"},
    "store-a": {"ansible_host": "10.0.1.12", "group_names": ["seaweedfs"], "seaweedfs_master_port": 9433},
}


@pytest.mark.parametrize("var", sorted(port_vars()))
def test_every_port_default_is_the_owning_roles_default(var):
    assert var in ROLE_DEFAULTS, f"{var}: no role defines it"
    assert ROLE_DEFAULTS[var] == port_vars()[var], f"{var}: the role says {ROLE_DEFAULTS[var]}, the catalogue otherwise"


ROLE_OPTIONS = {}  # every role's main options, the required ones (no default) included
for _f in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
    ROLE_OPTIONS.update(yaml.safe_load(_f.read_text())["argument_specs"]["main"]["options"])


def test_every_secret_is_a_role_variable():
    missing = [s for s in platform_secrets() if s not in ROLE_OPTIONS]
    assert all(ROLE_OPTIONS[s].get("no_log") for s in platform_secrets()), "a secret option without no_log"
    assert not missing and len(platform_secrets()) == len(set(platform_secrets()))


def test_the_docs_table_names_every_endpoint_and_variable():
    table = (ROOT / "docs" / "inventories.md").read_text()
    assert all(f"`{name}`" in table for name in ENDPOINTS) and all(f"`{var}`" in table for var in port_vars())


def test_the_default_matrix_is_the_guides_table():
    m = platform_matrix("edge-a", HOSTVARS)
    assert m["nginx"]["ports"] == [80, 443] and m["nginx"]["audience"] == "public"
    assert m["analytics_api"] == {
        "group": "analytics_api",
        "ports": [3001],
        "audience": ["load_balancer", "monitoring"],  # Prometheus reads /metrics
        "description": ENDPOINTS["analytics_api"].description,
    }
    assert m["postgresql"]["ports"] == [5432] and m["postgresql"]["audience"] == "internal"
    assert m["seaweedfs_internal"]["ports"] == [8080, 8888, 9333, 18080, 18333, 18888, 19333]


def test_a_hosts_own_ports_reach_its_matrix_and_derived_ports():
    assert platform_matrix("app-a", HOSTVARS)["analytics_api"]["ports"] == [3443]
    assert platform_matrix("k1", HOSTVARS)["kafka"]["ports"] == [19092]
    internal = platform_matrix("store-a", HOSTVARS)["seaweedfs_internal"]["ports"]
    assert 9433 in internal and 19433 in internal and 9333 not in internal


def test_endpoints_carry_each_hosts_port():
    got = platform_endpoints(["app-a", "app-b"], "analytics_api", HOSTVARS)
    assert [(e["address"], e["port"]) for e in got] == [("10.0.1.13", 3443), ("10.0.2.13", 3001)]
    assert got[0]["url"] == "https://10.0.1.13:3443" and got[0]["hostport"] == "app-a:3443"
    assert [e["hostport"] for e in platform_endpoints(["k1"], "kafka", HOSTVARS)] == ["k1:19092"]
    assert platform_port("edge-a", "nginx", HOSTVARS, 1) == 443


def test_a_port_outside_the_inventory_is_the_catalogues_default():
    assert platform_port("", "postgresql", HOSTVARS) == 5432
    assert platform_port("10.255.0.2", "postgresql", HOSTVARS) == 5432


def test_bad_input_names_the_host_and_variable():
    with pytest.raises(AnsibleFilterError, match="host 'x': analytics_api_port must be a port number"):
        platform_endpoints(["x"], "analytics_api", {"x": {"analytics_api_port": "fast"}})
    with pytest.raises(AnsibleFilterError, match="host 'x': kafka_client_port: port 70000 is out of range"):
        platform_matrix("x", {"x": {"kafka_client_port": 70000}})
    with pytest.raises(AnsibleFilterError, match="'nope' is not an endpoint"):
        platform_endpoints(["app-a"], "nope", HOSTVARS)
    with pytest.raises(AnsibleFilterError, match="host 'ghost' is not in the inventory"):
        platform_endpoints(["ghost"], "kafka", HOSTVARS)


def test_conflicts_name_both_endpoints_and_their_variables():
    hv = {"a": {"group_names": ["analytics_api", "pg_sink"], "analytics_api_port": 9101}}
    assert platform_conflicts("a", hv) == [
        "port 9101 is claimed by both analytics_api (analytics_api_port) and pg_sink_metrics (pg_sink_metrics_port)"
    ]
    derived = {"s": {"group_names": ["seaweedfs"], "seaweedfs_filer_port": 8333}}
    assert "seaweedfs_s3 (seaweedfs_s3_port)" in platform_conflicts("s", derived)[0]
    assert platform_conflicts("app-a", HOSTVARS) == []


def test_scrape_jobs_tls_endpoints_and_units():
    jobs = {j["name"]: j for j in platform_scrape_jobs(None, "platform")}
    assert jobs["node"]["group"] == "platform" and jobs["analytics_api"]["endpoint"] == "analytics_api"
    # Every job is scraped over TLS but SeaweedFS's, whose metrics weed serves in plain HTTP only (on the internal
    # address, to the monitoring hosts).
    plain = {name for name, j in jobs.items() if j["scheme"] != "https"}
    assert plain == {"seaweedfs_master", "seaweedfs_volume", "seaweedfs_filer", "seaweedfs_s3"}
    tls = {e["endpoint"]: e for e in platform_tls_endpoints()}
    assert tls["postgresql"]["protocol"] == "postgres" and "ssh" not in tls and "kafka_controller" not in tls
    units = platform_units()
    assert units["pg-sink"] == {"endpoint": "pg_sink_metrics", "group": "pg_sink", "scheme": "https", "ready": "/ready"}


def test_the_audit_follows_each_hosts_ports():
    api = audit_endpoints(HOSTVARS, ["app-a", "app-b"], endpoint="analytics_api", scheme="https")
    assert [e["endpoint"] for e in api] == ["https://10.0.1.13:3443", "https://10.0.2.13:3001"]
    mine = audit_host_endpoints(platform_tls_endpoints(), HOSTVARS["app-a"]["group_names"], HOSTVARS["app-a"])
    assert {"port": 3443, "service": "analytics_api", "protocol": "tls"} in mine
    assert {e["port"] for e in mine} == {3443, 9100}
    want = audit_expected_targets(HOSTVARS, ["app-a", "app-b"], ["reverse_proxy"], "x (outside)", "i (inside)")
    assert [w["target"] for w in want] == ["port 3443 from x (outside)", "port 3001 from x (outside)"]
    own = dict(HOSTVARS["app-a"], firewall_port_matrix=platform_matrix("app-a", HOSTVARS))
    targets = audit_outside_targets(
        platform_matrix("edge-a", HOSTVARS), {}, dict(HOSTVARS, **{"app-a": own}), ["app-a"]
    )
    assert {t["port"] for t in targets} == {22, 3443, 9100}


def test_the_groups_are_the_catalogues():
    from ansible_collections.analytics.platform.plugins.module_utils import placement, platform

    assert {e.group for e in platform.ENDPOINTS.values()} - {"all"} <= set(platform.GROUPS)
    assert all((ROOT / "roles" / g.role / "tasks" / "main.yml").is_file() for g in platform.GROUPS.values())
    assert placement.REQUIRED_GROUPS == ("kafka", "postgresql_primary", "analytics_api", "nginx", "monitoring")
    assert set(placement.REQUIRED_GROUPS) | set(placement.OPTIONAL_GROUPS) == set(platform.GROUPS)


@pytest.mark.parametrize(
    ("groups", "roles"),
    [
        (["zone_a", "postgresql_replica", "pg_sink"], ["postgresql", "pg_sink"]),
        (["zone_b", "postgresql_primary", "postgresql", "monitoring"], ["postgresql"]),
        (["zone_c", "nginx", "kafka", "analytics_api"], ["kafka", "analytics_api", "nginx"]),
        (["outside", "vantage"], []),
    ],
)
def test_a_hosts_roles_follow_its_groups_in_site_order(groups, roles):
    assert platform_roles(groups) == roles


MONITORING = {
    "mon-a": {"ansible_host": "10.0.1.30", "group_names": ["monitoring"]},
    "mon-b": {"ansible_host": "10.0.2.30", "group_names": ["monitoring"], "monitoring_alertmanager_enabled": False},
    "mon-c": {"ansible_host": "10.0.3.30", "group_names": ["monitoring"], "monitoring_alertmanager_enabled": "false"},
    "mon-d": {"ansible_host": "10.0.4.30", "group_names": ["monitoring"], "monitoring_alertmanager_enabled": "maybe"},
}


def test_a_host_that_switches_alertmanager_off_opens_probes_and_serves_none_of_it():
    """The finding: with monitoring_alertmanager_enabled false, the firewall still opened 9094/9095, the audit probed
    TLS on a closed port (an error) and the other Alertmanagers listed it as a peer."""
    on = platform_matrix("mon-a", MONITORING)
    assert {"alertmanager", "alertmanager_cluster", "prometheus"} <= set(on)
    for host in ("mon-b", "mon-c"):
        off = platform_matrix(host, MONITORING)
        assert "prometheus" in off and not {"alertmanager", "alertmanager_cluster"} & set(off), host
    hosts = ["mon-a", "mon-b", "mon-c"]
    assert platform_serving(hosts, "alertmanager", MONITORING) == ["mon-a"]
    assert platform_serving(hosts, "prometheus", MONITORING) == hosts
    tls = platform_tls_endpoints()
    probed = {h: [e["service"] for e in audit_host_endpoints(tls, ["monitoring"], MONITORING[h])] for h in hosts}
    assert probed["mon-a"].count("alertmanager") == 1 and "prometheus" in probed["mon-b"]
    assert "alertmanager" not in probed["mon-b"] + probed["mon-c"]
    # Switched off, its ports are free for something else on the host.
    clash = {"h": {"group_names": ["monitoring"], "monitoring_alertmanager_port": 9090}}
    assert "alertmanager" in platform_conflicts("h", clash)[0]
    clash["h"]["monitoring_alertmanager_enabled"] = False
    assert platform_conflicts("h", clash) == []


def test_the_edges_accept_vrrp_from_each_other_only_with_a_floating_address():
    assert "nginx_vrrp" not in platform_matrix("edge-a", HOSTVARS)
    with_vip = {"edge-a": dict(HOSTVARS["edge-a"], nginx_floating_address="203.0.113.10/24")}
    vrrp = platform_matrix("edge-a", with_vip)["nginx_vrrp"]
    assert vrrp == {
        "group": "nginx",
        "ports": [],
        "audience": "load_balancer",
        "description": ENDPOINTS["nginx_vrrp"].description,
        "proto": "vrrp",
    }
    assert "nginx_vrrp" not in platform_matrix(
        "edge-a", {"edge-a": dict(with_vip["edge-a"], nginx_floating_address="")}
    )


def test_a_switch_that_is_not_a_boolean_is_named_with_its_host():
    with pytest.raises(AnsibleFilterError, match="host 'mon-d': monitoring_alertmanager_enabled must be true or false"):
        platform_matrix("mon-d", MONITORING)
    with pytest.raises(AnsibleFilterError, match="host 'mon-d'"):
        platform_serving(["mon-d"], "alertmanager", MONITORING)


def test_tls_targets_follow_each_hosts_groups_ports_and_switches():
    """The blackbox probes: every TLS endpoint a host serves, on the port that host sets, once."""
    hv = dict(HOSTVARS, **MONITORING)
    hv["app-a"] = dict(hv["app-a"], zone="zone-a")
    targets = platform_tls_targets(["app-a", "edge-a", "mon-a", "mon-b", "k1"], hv)
    by_host = {}
    for t in targets:
        by_host.setdefault(t["host"], {})[t["endpoint"]] = t
    assert by_host["app-a"]["analytics_api"] == {
        "host": "app-a",
        "endpoint": "analytics_api",
        "service": "analytics_api",
        "protocol": "tls",
        "address": "10.0.1.13",
        "port": 3443,
        "zone": "zone-a",
    }
    # Every host's node exporter; nginx's TLS port is its second (HTTPS), not the HTTP redirect.
    assert all("node_exporter" in e for e in by_host.values())
    assert by_host["edge-a"]["nginx"]["port"] == 443 and "nginx_metrics" in by_host["edge-a"]
    assert by_host["k1"]["kafka"]["port"] == 19092 and "kafka_controller" not in by_host["k1"]
    assert "alertmanager" in by_host["mon-a"] and "alertmanager" not in by_host["mon-b"]
    assert len(targets) == len({(t["host"], t["endpoint"]) for t in targets})
    pg = platform_tls_targets(["pg"], {"pg": {"group_names": ["postgresql_primary", "postgresql"]}})
    assert {t["endpoint"]: t["protocol"] for t in pg}["postgresql"] == "postgres" and pg[0]["address"] == "pg"


def test_tls_targets_name_the_host_whose_port_is_wrong():
    with pytest.raises(AnsibleFilterError, match="host 'k9': kafka_client_port must be a port number"):
        platform_tls_targets(["k9"], {"k9": {"group_names": ["kafka"], "kafka_client_port": "x"}})
    with pytest.raises(AnsibleFilterError, match="host 'nowhere' is not in the inventory"):
        platform_tls_targets(["nowhere"], {})


def test_a_service_with_instances_has_a_port_each_and_a_wrong_count_is_named():
    """Bento: bento_instances processes on consecutive ports from bento_http_port, each opened, scraped and probed."""
    hv = {"etl": {"group_names": ["bento"], "bento_http_port": 5000, "bento_instances": "3"}}
    assert platform_ports("etl", "bento_metrics", hv) == [5000, 5001, 5002]
    assert platform_matrix("etl", hv)["bento_metrics"]["ports"] == [5000, 5001, 5002]
    assert [t["port"] for t in platform_tls_targets(["etl"], hv) if t["endpoint"] == "bento_metrics"] == [
        5000,
        5001,
        5002,
    ]
    assert platform_ports("api", "analytics_api", {"api": {"group_names": ["analytics_api"]}}) == [3001]
    hv["etl"]["monitoring_node_exporter_port"] = 5002
    assert "port 5002 is claimed by both" in platform_conflicts("etl", hv)[0]
    for bad in (0, "x"):
        hv["etl"]["bento_instances"] = bad
        with pytest.raises(AnsibleFilterError, match="host 'etl': bento_instances must be a number of instances, 1 or"):
            platform_matrix("etl", hv)
    hv["etl"].update(bento_instances=3, bento_http_port=65534)
    with pytest.raises(AnsibleFilterError, match="host 'etl': bento_http_port: 3 instances from port 65534 run past"):
        platform_ports("etl", "bento_metrics", hv)
