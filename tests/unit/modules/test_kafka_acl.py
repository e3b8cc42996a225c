"""kafka_acl against a fake AdminClient: only missing bindings are created, present ones removed on absent."""

from __future__ import annotations

from ansible_collections.analytics.platform.plugins.modules import kafka_acl

from .conftest import CONN, done


class FakeAdmin:
    def __init__(self, existing=()):
        self.existing = list(existing)
        self.created, self.deleted = [], []

    def describe_acls(self, _filter):
        return done(list(self.existing))

    def create_acls(self, bindings):
        self.created.extend(bindings)
        return {b: done() for b in bindings}

    def delete_acls(self, filters):
        self.deleted.extend(filters)
        return {f: done([]) for f in filters}


WRITE = {"principal": "User:analytics-api", "resource_type": "topic", "resource_name": "events", "operation": "write"}
DESCRIBE = dict(WRITE, operation="describe")


def test_creates_only_missing_bindings(run_module):
    fake = FakeAdmin(existing=[kafka_acl.to_binding(kafka_acl_defaults(WRITE))])
    out = run_module(kafka_acl, dict(CONN, acls=[WRITE, DESCRIBE]), admin_client=lambda m: fake)
    assert out.result["changed"]
    assert [kafka_acl.from_binding(b)["operation"] for b in fake.created] == ["describe"]


def test_no_change_when_all_present(run_module):
    fake = FakeAdmin(existing=[kafka_acl.to_binding(kafka_acl_defaults(a)) for a in (WRITE, DESCRIBE)])
    out = run_module(kafka_acl, dict(CONN, acls=[WRITE, DESCRIBE]), admin_client=lambda m: fake)
    assert out.result["changed"] is False and fake.created == []


def test_absent_removes_present_bindings_only(run_module):
    fake = FakeAdmin(existing=[kafka_acl.to_binding(kafka_acl_defaults(WRITE))])
    out = run_module(kafka_acl, dict(CONN, acls=[WRITE, DESCRIBE], state="absent"), admin_client=lambda m: fake)
    assert out.result["changed"] and len(fake.deleted) == 1


def test_bad_principal_and_cluster_name(run_module):
    out = run_module(kafka_acl, dict(CONN, acls=[dict(WRITE, principal="analytics-api")]), admin_client=lambda m: None)
    assert out.failed and "must look like User:<name>" in out.result["msg"]
    bad = {"principal": "User:x", "resource_type": "cluster", "resource_name": "c", "operation": "alter"}
    out = run_module(kafka_acl, dict(CONN, acls=[bad]), admin_client=lambda m: None)
    assert out.failed and "the cluster resource is named 'kafka-cluster'" in out.result["msg"]


def kafka_acl_defaults(acl):
    return dict({"pattern_type": "literal", "permission": "allow", "host": "*"}, **acl)
