"""kafka_topic against a fake AdminClient: create, grow, configure, refuse decreases, check mode."""

from __future__ import annotations

import pytest
from ansible_collections.analytics.platform.plugins.modules import kafka_topic

from .conftest import CONN, done, ns


class FakeAdmin:
    def __init__(self, topics=None):
        self.topics = topics or {}  # name -> {"partitions": n, "rf": r, "config": {}}
        self.calls = []

    def list_topics(self, topic=None, timeout=None):
        meta = {}
        if topic in self.topics:
            t = self.topics[topic]
            parts = {i: ns(replicas=list(range(t["rf"]))) for i in range(t["partitions"])}
            meta[topic] = ns(partitions=parts, error=None)
        return ns(topics=meta)

    def describe_configs(self, resources):
        res = resources[0]
        cfg = self.topics[res.name]["config"]
        return {res: done({k: ns(value=v) for k, v in cfg.items()})}

    def create_topics(self, new, operation_timeout=None):
        self.calls.append(("create", new[0].topic, new[0].num_partitions, new[0].replication_factor, new[0].config))
        return {new[0].topic: done()}

    def create_partitions(self, new, operation_timeout=None):
        self.calls.append(("grow", new[0].topic, new[0].new_total_count))
        return {new[0].topic: done()}

    def incremental_alter_configs(self, resources):
        entries = {e.name: e.value for e in resources[0].incremental_configs}
        self.calls.append(("alter", resources[0].name, entries))
        return {resources[0]: done()}

    def delete_topics(self, names, operation_timeout=None):
        self.calls.append(("delete", names[0]))
        return {names[0]: done()}


EXISTING = {
    "events": {"partitions": 6, "rf": 3, "config": {"retention.ms": "604800000", "compression.type": "producer"}},
}


@pytest.fixture
def admin():
    return FakeAdmin({k: dict(v, config=dict(v["config"])) for k, v in EXISTING.items()})


def args(**kw):
    return dict(CONN, **kw)


def test_creates_missing_topic(run_module):
    fake = FakeAdmin()
    out = run_module(
        kafka_topic,
        args(name="new", partitions=10, replication_factor=3, config={"retention.ms": 1}),
        admin_client=lambda m: fake,
    )
    assert not out.failed and out.result["changed"]
    assert fake.calls == [("create", "new", 10, 3, {"retention.ms": "1"})]


def test_create_needs_partitions_and_replication(run_module):
    out = run_module(kafka_topic, args(name="new"), admin_client=lambda m: FakeAdmin())
    assert out.failed and "partitions and replication_factor are required" in out.result["msg"]


def test_unchanged_topic_changes_nothing(run_module, admin):
    out = run_module(
        kafka_topic,
        args(name="events", partitions=6, replication_factor=3, config={"retention.ms": "604800000"}),
        admin_client=lambda m: admin,
    )
    assert not out.failed and out.result["changed"] is False
    assert admin.calls == []


def test_grows_partitions_and_alters_only_differing_config(run_module, admin):
    out = run_module(
        kafka_topic,
        args(name="events", partitions=10, config={"retention.ms": "604800000", "compression.type": "lz4"}),
        admin_client=lambda m: admin,
    )
    assert out.result["changed"]
    assert ("alter", "events", {"compression.type": "lz4"}) in admin.calls
    assert ("grow", "events", 10) in admin.calls
    assert out.result["diff"]["before"]["partitions"] == 6 and out.result["diff"]["after"]["partitions"] == 10


def test_refuses_partition_decrease_without_changing_anything(run_module, admin):
    out = run_module(
        kafka_topic, args(name="events", partitions=3, config={"compression.type": "lz4"}), admin_client=lambda m: admin
    )
    assert out.failed
    assert out.result["msg"].startswith("refusing to decrease the partitions of topic 'events' from 6 to 3")
    assert admin.calls == []


def test_refuses_replication_factor_change(run_module, admin):
    out = run_module(kafka_topic, args(name="events", replication_factor=2), admin_client=lambda m: admin)
    assert out.failed and "has replication factor 3, not 2" in out.result["msg"]


def test_unknown_config_key_is_named(run_module, admin):
    out = run_module(kafka_topic, args(name="events", config={"retention.msec": "1"}), admin_client=lambda m: admin)
    assert out.failed and "unknown configuration key(s) retention.msec" in out.result["msg"]


def test_check_mode_reports_but_does_not_change(run_module, admin):
    out = run_module(
        kafka_topic, args(name="events", partitions=12, _ansible_check_mode=True), admin_client=lambda m: admin
    )
    assert out.result["changed"] and out.result["topic"]["partitions"] == 12
    assert admin.calls == []


def test_absent(run_module, admin):
    out = run_module(kafka_topic, args(name="events", state="absent"), admin_client=lambda m: admin)
    assert out.result["changed"] and admin.calls == [("delete", "events")]
    out = run_module(kafka_topic, args(name="gone", state="absent"), admin_client=lambda m: admin)
    assert out.result["changed"] is False


def test_cluster_unreachable_is_reported_with_the_servers(run_module):
    class Down(FakeAdmin):
        def list_topics(self, topic=None, timeout=None):
            raise TimeoutError("timed out")

    out = run_module(kafka_topic, args(name="events"), admin_client=lambda m: Down())
    assert out.failed and "cannot reach the cluster at k1:9092" in out.result["msg"]
