"""The audit's filters: targets expanded from the port matrix entries, results gathered with their hosts."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.filter.audit import audit_addresses, audit_collect, audit_targets

GROUPS = {"nginx": ["edge-a"], "postgresql": ["db-a", "db-b"], "all": ["edge-a", "db-a", "db-b"]}
HOSTVARS = {"edge-a": {"ansible_host": "10.0.1.14"}, "db-a": {"ansible_host": "10.0.1.12"}, "db-b": {}}


def test_targets_expand_groups_and_ports_and_keep_the_first_expectation():
    t = audit_targets([{"group": "nginx", "ports": [443]}],
                      [{"group": "postgresql", "ports": [5432]}, {"group": "all", "ports": [443, 9100]}],
                      GROUPS, HOSTVARS)  # fmt: skip
    by = {(x["host"], x["port"]): x["expect"] for x in t}
    assert by[("10.0.1.14", 443)] == "open"  # listed open first, not overridden by the "all" entry
    assert by[("10.0.1.12", 5432)] == "closed" and by[("db-b", 5432)] == "closed"  # no ansible_host: the name
    assert by[("10.0.1.12", 443)] == "closed" and by[("10.0.1.14", 9100)] == "closed"


def test_a_malformed_entry_is_named():
    with pytest.raises(AnsibleFilterError, match=r"audit targets \(closed\) entry 0: needs group and ports"):
        audit_targets([], [{"group": "nginx"}], GROUPS, HOSTVARS)


def test_collect_labels_results_with_their_host():
    hv = {"a": {"audit_results": [{"control": "tls", "status": "pass"}]},
          "localhost": {"audit_results": [{"control": "grafana", "status": "not_applicable", "host": "grafana"}]},
          "b": {}}  # fmt: skip
    assert [(r["host"], r["control"]) for r in audit_collect(hv, ["a", "b", "localhost"])] == [
        ("a", "tls"),
        ("grafana", "grafana"),
    ]


def test_addresses_prefer_the_named_variable_then_ansible_host_then_the_name():
    hv = {"k1": {"kafka_advertised_host": "10.0.0.1", "ansible_host": "192.0.2.1"}, "k2": {"ansible_host": "192.0.2.2"},
          "k3": {}}  # fmt: skip
    assert audit_addresses(hv, ["k1", "k2", "k3"], "kafka_advertised_host", 9092) == [
        "10.0.0.1:9092",
        "192.0.2.2:9092",
        "k3:9092",
    ]
    assert audit_addresses(hv, ["k1", "k3"]) == ["192.0.2.1", "k3"]
