"""The audit's filters: what each host must be probed for (from the catalogue and the port matrix), the entries the
probes from elsewhere must report, and the results gathered with their hosts."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.filter.audit import (
    audit_addresses,
    audit_collect,
    audit_endpoints,
    audit_expected,
    audit_expected_targets,
    audit_host_endpoints,
    audit_host_groups,
    audit_matrix_ports,
    audit_outside_targets,
)

MATRIX = {
    "ssh": {"group": "all", "ports": [22], "audience": "admin"},
    "nginx": {"group": "nginx", "ports": [80, 443], "audience": "public"},
    "postgresql": {"group": "postgresql", "ports": [5432], "audience": "internal"},
    "kafka": {"group": "kafka", "ports": [9092], "audience": ["internal", "admin"]},
}
HOSTVARS = {
    "edge-a": {"ansible_host": "10.0.1.14", "group_names": ["zone_a", "nginx"]},
    "db-a": {"ansible_host": "10.0.1.12", "group_names": ["zone_a", "postgresql"]},
    "k1": {"kafka_advertised_host": "10.0.0.1", "ansible_host": "192.0.2.1", "group_names": ["kafka"]},
    "app-a": {"ansible_host": "10.0.1.13", "group_names": ["analytics_api"]},
}


def test_matrix_ports_of_a_host_come_from_its_groups_and_all():
    assert audit_matrix_ports(MATRIX, ["zone_a", "nginx"]) == [22, 80, 443]
    assert audit_matrix_ports(MATRIX, []) == [22]


def test_outside_targets_expect_only_public_entries_open():
    t = audit_outside_targets(MATRIX, {}, HOSTVARS, ["edge-a", "db-a"])
    by = {(x["host"], x["port"]): (x["expect"], x["address"]) for x in t}
    assert by[("edge-a", 443)] == ("open", "10.0.1.14") and by[("edge-a", 22)][0] == "closed"
    assert by[("db-a", 5432)] == ("closed", "10.0.1.12")
    assert ("db-a", 443) not in by


def test_a_malformed_matrix_entry_is_named():
    with pytest.raises(AnsibleFilterError, match="port matrix entry 'broken': needs group and ports"):
        audit_matrix_ports({"broken": {"group": "nginx"}}, ["nginx"])


def test_tls_endpoints_by_group():
    eps = [
        {"group": "nginx", "port": 443, "service": "nginx"},
        {"group": "all", "port": 9100, "service": "node"},
        {"group": "postgresql", "port": 5432, "protocol": "postgres"},
    ]
    assert audit_host_endpoints(eps, ["nginx"]) == [
        {"port": 443, "service": "nginx", "protocol": "tls"},
        {"port": 9100, "service": "node", "protocol": "tls"},
    ]
    with pytest.raises(AnsibleFilterError, match=r"audit_tls_endpoints\[0\]: needs group and port"):
        audit_host_endpoints([{"group": "nginx"}], ["nginx"])


def test_expected_pairs_follow_the_catalogue_and_the_enabled_controls():
    got = audit_expected(
        HOSTVARS,
        ["db-a", "edge-a"],
        ["tls", "db_encryption", "api_auth", "secrets"],
        [{"host": "inventory", "control": "secrets"}],
    )
    pairs = {(e["host"], e["control"]) for e in got}
    assert ("db-a", "db_encryption") in pairs and ("edge-a", "api_auth") in pairs
    assert ("edge-a", "db_encryption") not in pairs and ("inventory", "secrets") in pairs
    with pytest.raises(AnsibleFilterError, match=r"unknown control\(s\) \['telepathy'\]"):
        audit_expected(HOSTVARS, ["db-a"], ["telepathy"])


def test_expected_targets_name_each_probe_from_elsewhere():
    controls = ["api_auth", "default_passwords", "firewall", "kafka_sasl_ssl", "reverse_proxy"]
    got = audit_expected_targets(HOSTVARS, ["edge-a", "db-a", "k1", "app-a"], controls, "x (outside)", "app-a (inside)")
    triples = {(e["host"], e["control"], e["target"]) for e in got}
    assert ("edge-a", "api_auth", "https://edge-a:443") in triples
    assert ("db-a", "default_passwords", "postgresql logins from x (outside)") in triples
    assert ("db-a", "default_passwords", "postgresql logins from app-a (inside)") in triples
    assert ("k1", "kafka_sasl_ssl", "ACL default deny") in triples and ("k1", "kafka_sasl_ssl", "listeners") in triples
    assert ("app-a", "reverse_proxy", "port 3001 from x (outside)") in triples
    assert ("db-a", "firewall", "from x (outside)") in triples and ("edge-a", "firewall", "from x (outside)") in triples


def test_without_an_outside_host_the_probes_from_outside_are_expected_with_the_reason():
    got = audit_expected_targets(HOSTVARS, ["db-a"], ["firewall", "default_passwords"], "", "app-a (inside)")
    outside = [e for e in got if e["target"].endswith("from outside")]
    assert {e["target"] for e in outside} == {"from outside", "postgresql logins from outside"}
    assert all("no vantage host" in e["reason"] for e in outside)


def test_endpoints_and_host_groups():
    assert audit_endpoints(HOSTVARS, ["k1"], 9092, var="kafka_advertised_host") == [
        {"host": "k1", "address": "10.0.0.1", "port": 9092}
    ]
    assert audit_endpoints(HOSTVARS, ["db-a"], 8333, "https")[0]["endpoint"] == "https://10.0.1.12:8333"
    assert audit_host_groups(HOSTVARS, ["edge-a", "k1"], MATRIX) == {"edge-a": ["nginx"], "k1": ["kafka"]}


def test_collect_labels_results_with_their_host_and_filters_controls():
    hv = {
        "a": {"audit_results": [{"control": "tls", "status": "pass"}]},
        "localhost": {"audit_results": [{"control": "grafana", "status": "not_applicable", "host": "grafana"}]},
        "b": {},
    }
    assert [(r["host"], r["control"]) for r in audit_collect(hv, ["a", "b", "localhost"])] == [
        ("a", "tls"),
        ("grafana", "grafana"),
    ]
    assert [r["control"] for r in audit_collect(hv, ["a", "localhost"], ["tls"])] == ["tls"]


def test_addresses_prefer_the_named_variable_then_ansible_host_then_the_name():
    hv = {
        "k1": {"kafka_advertised_host": "10.0.0.1", "ansible_host": "192.0.2.1"},
        "k2": {"ansible_host": "192.0.2.2"},
        "k3": {},
    }
    assert audit_addresses(hv, ["k1", "k2", "k3"], "kafka_advertised_host", 9092) == [
        "10.0.0.1:9092",
        "192.0.2.2:9092",
        "k3:9092",
    ]
    assert audit_addresses(hv, ["k1", "k3"]) == ["192.0.2.1", "k3"]
