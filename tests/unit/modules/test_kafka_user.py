"""kafka_user against a fake AdminClient: create, leave alone, rotate only when the password no longer works, remove."""

from __future__ import annotations

import pytest
from ansible_collections.analytics.platform.plugins.module_utils import kafka as kafka_utils
from ansible_collections.analytics.platform.plugins.modules import kafka_user
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ScramMechanism

from .conftest import CONN, done, ns

PASSWORD = "s3cret-password-for-tests"


class FakeAdmin:
    def __init__(self, users=None, works=True):
        self.users = users or {}
        self.works = works
        self.alterations = []

    def describe_user_scram_credentials(self, users):
        name = users[0]
        if name not in self.users:
            return {name: done(exc=KafkaException(KafkaError(KafkaError.RESOURCE_NOT_FOUND, "no such user")))}
        infos = [ns(mechanism=ScramMechanism.SCRAM_SHA_512, iterations=8192)]
        return {name: done(ns(user=name, scram_credential_infos=infos))}

    def alter_user_scram_credentials(self, alterations):
        self.alterations.extend(type(a).__name__ for a in alterations)
        return {alterations[0].user: done()}

    def poll(self, timeout=None):
        return 0

    def list_topics(self, timeout=None):
        if not self.works:
            raise KafkaException(KafkaError(KafkaError._AUTHENTICATION, "Authentication failed"))
        return ns(topics={})


def factory(fake):
    return lambda module, user=None, password=None, error_cb=None: fake


@pytest.fixture
def patches(monkeypatch):
    """The module's own client and the probe it logs in with as the user (module_utils' can_authenticate)."""

    def use(fake):
        monkeypatch.setattr(kafka_utils, "AdminClient", lambda conf: fake)
        return {"admin_client": factory(fake)}

    return use


def args(**kw):
    return dict(CONN, name="pg-sink", **kw)


def test_creates_a_missing_user(run_module, patches):
    fake = FakeAdmin()
    out = run_module(kafka_user, args(password=PASSWORD), **patches(fake))
    assert out.result["changed"] and out.result["user"]["action"] == "created"
    assert fake.alterations == ["UserScramCredentialUpsertion"]


def test_leaves_a_user_whose_password_works(run_module, patches):
    fake = FakeAdmin(users={"pg-sink"}, works=True)
    out = run_module(kafka_user, args(password=PASSWORD), **patches(fake))
    assert out.result["changed"] is False and fake.alterations == []


def test_rotates_when_the_password_no_longer_works(run_module, patches):
    fake = FakeAdmin(users={"pg-sink"}, works=False)
    out = run_module(kafka_user, args(password=PASSWORD), **patches(fake))
    assert out.result["changed"] and out.result["user"]["action"] == "rotated"


def test_on_create_never_rotates(run_module, patches):
    fake = FakeAdmin(users={"pg-sink"}, works=False)
    out = run_module(kafka_user, args(password=PASSWORD, update_password="on_create"), **patches(fake))
    assert out.result["changed"] is False


def test_check_mode_changes_nothing(run_module, patches):
    fake = FakeAdmin()
    out = run_module(kafka_user, args(password=PASSWORD, _ansible_check_mode=True), **patches(fake))
    assert out.result["changed"] and fake.alterations == []


def test_removes(run_module, patches):
    fake = FakeAdmin(users={"pg-sink"})
    out = run_module(kafka_user, args(state="absent"), **patches(fake))
    assert out.result["changed"] and fake.alterations == ["UserScramCredentialDeletion"]


def test_password_required_and_never_returned(run_module, patches):
    out = run_module(kafka_user, args(), **patches(FakeAdmin()))
    assert out.failed and "password" in out.result["msg"]
    out = run_module(kafka_user, args(password=PASSWORD), **patches(FakeAdmin()))
    assert PASSWORD not in repr(out.result)


def test_too_few_iterations(run_module, patches):
    out = run_module(kafka_user, args(password=PASSWORD, iterations=100), **patches(FakeAdmin()))
    assert out.failed and "iterations must be 4096 or more" in out.result["msg"]
