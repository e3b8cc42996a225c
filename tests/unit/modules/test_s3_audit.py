"""s3_audit when the store answers nonsense: a check that raises is an error entry (never a pass, never a crash that
drops the node from the report), and what was written is still removed. The live tests (tests/live) run it against
real SeaweedFS stores, one sound and one that lets anyone read."""

from __future__ import annotations

from ansible_collections.analytics.platform.plugins.modules import s3_audit


class Page(dict):
    pass


class FakeAdmin:
    """Answers like a store for the admin identity, except that versioning cannot be read."""

    def __init__(self):
        self.objects, self.buckets = set(), {"analytics"}

    def head_bucket(self, Bucket):
        assert Bucket in self.buckets

    def create_bucket(self, Bucket):
        self.buckets.add(Bucket)

    def delete_bucket(self, Bucket):
        self.buckets.discard(Bucket)

    def list_buckets(self):
        return {"Buckets": [{"Name": b} for b in self.buckets]}

    def put_object(self, Bucket, Key, Body):
        self.objects.add((Bucket, Key))

    def get_bucket_versioning(self, Bucket):
        raise ConnectionResetError("the store hung up")

    def get_bucket_policy(self, Bucket):
        err = Exception("no policy")
        err.response = {"Error": {"Code": "NoSuchBucketPolicy"}}
        raise err

    def list_object_versions(self, Bucket, Prefix):
        return {"Versions": [{"Key": k, "VersionId": "null"} for b, k in self.objects if k.startswith(Prefix)]}

    def get_paginator(self, name):
        admin = self

        class P:
            def paginate(self, Bucket, Prefix):
                if name == "list_object_versions":
                    return [admin.list_object_versions(Bucket, Prefix)]
                return [{"Contents": [{"Key": k} for b, k in admin.objects if k.startswith(Prefix)]}]

        return P()

    def delete_object(self, Bucket, Key, VersionId=None):
        self.objects.discard((Bucket, Key))


class Refusing:
    """Any other identity: refused like a store refuses."""

    def __getattr__(self, name):
        def call(*_a, **_k):
            err = Exception("denied")
            err.response = {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
            raise err

        return call


def test_a_check_that_raises_is_an_error_and_the_probe_still_cleans_up(run_module):
    admin = FakeAdmin()

    def client(module, access_key=None, secret_key=None, anonymous=False):
        return admin if access_key is None and not anonymous else Refusing()

    args = {
        "host": "store",
        "endpoint": "https://store:8333",
        "access_key": "admin",
        "secret_key": "x" * 20,
        "bucket": "analytics",
    }
    out = run_module(s3_audit, args, client=client)
    got = {r["target"]: r for r in out.result["audit"]}
    assert got["versioning"]["status"] == "error" and "ConnectionResetError" in got["versioning"]["reason"]
    assert got["anonymous access"]["status"] == "pass"
    assert got["read-only"]["status"] == "pass" and admin.objects == set() and admin.buckets == {"analytics"}
