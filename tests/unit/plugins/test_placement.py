"""Zone-placement rules: good placements pass, each kind of bad placement fails naming the group and hosts."""

import pytest
from ansible_collections.analytics.platform.plugins.module_utils.placement import check_placement

LAB = {
    "kafka": ["kafka-a", "kafka-b", "kafka-c"],
    "postgresql_primary": ["store-a"],
    "postgresql_replica": ["store-b"],
    "etcd": ["store-a", "store-b", "store-c"],
    "seaweedfs": ["store-a", "store-b", "store-c"],
    "analytics_api": ["app-a", "app-b", "app-c"],
    "nginx": ["edge-a", "edge-b"],
    "monitoring": ["ops-c"],
    "pg_sink": ["app-a", "app-b"],
}
ZONES = {
    h: f"zone-{h[-1]}"
    for h in [
        "kafka-a",
        "kafka-b",
        "kafka-c",
        "store-a",
        "store-b",
        "store-c",
        "app-a",
        "app-b",
        "app-c",
        "edge-a",
        "edge-b",
    ]
}
ZONES["ops-c"] = "zone-c"


def with_groups(**changes):
    groups = {k: list(v) for k, v in LAB.items()}
    groups.update(changes)
    return groups


def test_lab_placement_passes_and_warns_only_about_single_zone_groups():
    r = check_placement(LAB, ZONES)
    assert r.ok, r.errors
    assert sorted(r.zones) == ["zone-a", "zone-b", "zone-c"]
    assert any("'monitoring'" in w and "single point of failure" in w for w in r.warnings)
    assert not any("'nginx'" in w for w in r.warnings)


def test_host_without_zone_is_named():
    zones = dict(ZONES, **{"app-b": None})
    r = check_placement(LAB, zones)
    assert r.errors == ["host 'app-b' has no zone: set the variable 'zone' for it"]


def test_missing_required_group_is_named():
    groups = with_groups(kafka=[])
    r = check_placement(groups, ZONES)
    assert any(e.startswith("group 'kafka' is missing or empty") for e in r.errors)


def test_kafka_in_two_zones_breaks_min_isr():
    zones = dict(ZONES, **{"kafka-c": "zone-b"})
    r = check_placement(LAB, zones)
    assert any("group 'kafka'" in e and "below kafka_min_insync_replicas 2" in e for e in r.errors), r.errors


def test_kafka_controller_quorum_lost_with_zone():
    groups = with_groups(kafka=["kafka-a", "kafka-a2", "kafka-b", "kafka-c"])
    zones = dict(ZONES, **{"kafka-a2": "zone-a"})
    r = check_placement(groups, zones, {"kafka_controllers": ["kafka-a", "kafka-a2", "kafka-b"]})
    assert any("losing zone zone-a removes controllers kafka-a, kafka-a2" in e for e in r.errors), r.errors


def test_fewer_brokers_than_replication_factor():
    groups = with_groups(kafka=["kafka-a", "kafka-b"])
    r = check_placement(groups, ZONES)
    assert any("has 2 brokers" in e and "kafka_replication_factor is 3" in e for e in r.errors)


def test_min_isr_above_replication_factor():
    r = check_placement(LAB, ZONES, {"kafka_min_insync_replicas": 4})
    assert any("kafka_min_insync_replicas (4) is larger" in e for e in r.errors)


def test_replica_in_primary_zone_fails():
    zones = dict(ZONES, **{"store-b": "zone-a"})
    r = check_placement(LAB, zones)
    assert any("group 'postgresql_replica'" in e and "primary's zone zone-a" in e for e in r.errors), r.errors


def test_no_replica_fails():
    r = check_placement(with_groups(postgresql_replica=[]), ZONES)
    assert any("would lose the only PostgreSQL copy (store-a)" in e for e in r.errors)


def test_api_in_one_zone_leaves_nginx_without_upstream():
    zones = dict(ZONES, **{"app-b": "zone-a", "app-c": "zone-a"})
    r = check_placement(LAB, zones)
    assert any("group 'analytics_api'" in e and "without a live upstream" in e for e in r.errors)


def test_single_nginx_is_a_warning_not_an_error():
    r = check_placement(with_groups(nginx=["edge-a"]), ZONES)
    assert r.ok
    assert any("group 'nginx' runs only in zone zone-a" in w for w in r.warnings)


@pytest.mark.parametrize(
    ("replication", "needle"),
    [("000", "keeps every copy in one zone"), ("200", "it needs 4 zones"), ("1x0", "is not three digits")],
)
def test_seaweedfs_replication_must_survive_a_zone(replication, needle):
    r = check_placement(LAB, ZONES, {"seaweedfs_replication": replication})
    assert any(needle in e for e in r.errors), r.errors


def test_seaweedfs_in_two_zones_fails():
    zones = dict(ZONES, **{"store-c": "zone-b"})
    r = check_placement(LAB, zones)
    assert any("group 'seaweedfs'" in e for e in r.errors), r.errors


def test_minio_needs_four_nodes_and_write_quorum_after_zone_loss():
    groups = with_groups(seaweedfs=[], minio=["m1", "m2", "m3", "m4"])
    zones = dict(ZONES, m1="zone-a", m2="zone-a", m3="zone-b", m4="zone-c")
    r = check_placement(groups, zones)
    assert any("losing zone zone-a (m1, m2) leaves 2 of 4 drives" in e for e in r.errors), r.errors
    zones.update(m2="zone-b", m3="zone-c", m4="zone-a")
    groups["minio"] = ["m1", "m2", "m3", "m4", "m5", "m6"]
    zones.update(m5="zone-b", m6="zone-c")
    r = check_placement(groups, zones)
    assert r.ok, r.errors


def test_two_object_stores_fail():
    r = check_placement(with_groups(minio=["m1"]), dict(ZONES, m1="zone-a"))
    assert any("both 'seaweedfs' and 'minio'" in e for e in r.errors)


def test_everything_in_one_zone():
    zones = dict.fromkeys(ZONES, "zone-a")
    r = check_placement(LAB, zones)
    assert any("all platform hosts are in one zone" in e for e in r.errors)


def test_components_limit_the_rules():
    zones = dict(ZONES, **{"store-b": "zone-a"})  # replica in the primary's zone: a postgresql error
    r = check_placement(LAB, zones, {"components": ["kafka"], "required_groups": ["kafka"]})
    assert r.ok, r.errors
    assert r.warnings == []


def test_unknown_component_is_named():
    r = check_placement(LAB, ZONES, {"components": ["kafak"]})
    known = "kafka, postgresql, etcd, object_store, edge, services"
    assert r.errors == [f"unknown placement component(s) kafak: use {known}"]


def test_patroni_needs_etcd_members_and_names_the_way_out():
    r = check_placement(with_groups(etcd=[]), ZONES)
    assert any(e.startswith("group 'etcd' is empty") and "postgresql_patroni: false" in e for e in r.errors)
    # Without Patroni, no etcd is needed.
    assert check_placement(with_groups(etcd=[]), ZONES, {"postgresql_patroni": False}).ok
    assert check_placement(with_groups(etcd=[]), ZONES, {"postgresql_patroni": "false"}).ok


def test_etcd_quorum_must_survive_the_loss_of_any_zone():
    r = check_placement(with_groups(etcd=["store-a", "app-a", "store-b"]), ZONES)
    assert any("losing zone zone-a removes members app-a, store-a and breaks the quorum" in e for e in r.errors)
    r = check_placement(with_groups(etcd=["store-a", "store-b"]), ZONES)
    assert any("group 'etcd' has 2 member(s)" in e for e in r.errors)
    r = check_placement(with_groups(etcd=["store-a", "store-b", "store-c", "app-c"]), ZONES)
    assert any("losing zone zone-c" in e for e in r.errors)
    assert any("4 etcd members" in w for w in r.warnings)
    five = ["store-a", "app-a", "store-b", "app-b", "store-c"]
    assert check_placement(with_groups(etcd=five), ZONES).ok


def test_the_etcd_rules_alone():
    r = check_placement({"etcd": ["store-a", "store-b"]}, ZONES, {"components": ["etcd"], "required_groups": []})
    assert "group 'etcd' has 2 member(s) (store-a, store-b): losing one loses the quorum; use three or five" in r.errors
