"""s3_mirror against SeaweedFS (two versioned buckets of one store as source and target): every version copied once,
what the source removed for good leaves the mirror after prune_after_hours, and a source with nothing under the prefix
never empties the mirror."""

from __future__ import annotations

import json
import uuid

import pytest
from ansible_collections.analytics.platform.plugins.modules import s3_mirror
from conftest import s3_login


def held(s3, bucket: str, prefix: str) -> list[tuple[str, str]]:
    """(key, body or "marker") of every version and delete marker under the prefix but the mirror's manifest."""
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            if v["Key"].startswith(prefix + "_mirror/"):
                continue
            body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read().decode()
            out.append((v["Key"].removeprefix(prefix), body))
        out += [(m["Key"].removeprefix(prefix), "marker") for m in page.get("DeleteMarkers", [])]
    return sorted(out)


@pytest.fixture(scope="module")
def buckets(seaweedfs):
    """(source, target): the fixture's data bucket (versioned, as the seaweedfs role makes it) and a versioned target;
    each test works under prefixes of its own (every bucket costs the store volumes of its own)."""
    admin = seaweedfs.client("admin")
    target = f"mirror-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(Bucket=target)
    admin.put_bucket_versioning(Bucket=target, VersioningConfiguration={"Status": "Enabled"})
    return "analytics", target


def test_the_mirror_follows_what_the_source_removed_for_good_after_the_grace(run_module, seaweedfs, buckets):
    admin = seaweedfs.client("admin")
    source_bucket, target_bucket = buckets
    run = uuid.uuid4().hex[:8]
    for body in ("alice v1", "alice v2"):
        admin.put_object(Bucket=source_bucket, Key=f"{run}/t/a.parquet", Body=body.encode())
    admin.put_object(Bucket=source_bucket, Key=f"{run}/t/b.parquet", Body=b"bob")
    admin.delete_object(Bucket=source_bucket, Key=f"{run}/t/a.parquet")  # vacuum: a delete marker, both kept
    side = s3_login(seaweedfs)
    args = {
        "source": {**side, "bucket": source_bucket, "prefix": f"{run}/t/"},
        "target": {**side, "bucket": target_bucket, "prefix": f"{run}/m/"},
        "prune_after_hours": 1,
    }

    first = run_module(s3_mirror, args)
    assert not first.failed, first.result["msg"]
    mirror = f"{run}/m/{run}/t/"  # the target's prefix, then the source's keys
    assert (first.result["copied"], first.result["deleted"], first.result["pruned"]) == (3, 1, 0)
    mirrored = [("a.parquet", "alice v1"), ("a.parquet", "alice v2"), ("a.parquet", "marker"), ("b.parquet", "bob")]
    assert held(admin, target_bucket, mirror) == mirrored
    assert not run_module(s3_mirror, args).result["changed"]

    # The source's old versions and marker of a.parquet removed for good (the writer's maintenance, an erasure).
    for page in admin.get_paginator("list_object_versions").paginate(Bucket=source_bucket, Prefix=f"{run}/t/a."):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            admin.delete_object(Bucket=source_bucket, Key=v["Key"], VersionId=v["VersionId"])
    marked = run_module(s3_mirror, args)
    assert (marked.result["changed"], marked.result["gone"], marked.result["pruned"]) == (True, 3, 0)
    assert held(admin, target_bucket, mirror) == mirrored  # within the grace: the copies stay
    assert not run_module(s3_mirror, args).result["changed"]  # still within it: nothing to do
    check = run_module(s3_mirror, {**args, "prune_after_hours": 0, "_ansible_check_mode": True})
    assert check.result["pruned"] == 3 and held(admin, target_bucket, mirror) == mirrored
    pruned = run_module(s3_mirror, {**args, "prune_after_hours": 0})
    assert (pruned.result["pruned"], pruned.result["gone"], pruned.result["total"]) == (3, 0, 1)
    assert held(admin, target_bucket, mirror) == [("b.parquet", "bob")]
    key = f"{run}/m/_mirror/manifest.json"
    manifest = json.loads(admin.get_object(Bucket=target_bucket, Key=key)["Body"].read())
    assert len(versions_of(admin, target_bucket, key)) == 1  # earlier manifests are not kept
    bob = f"{run}/t/b.parquet"
    assert list(manifest["copies"]) == [f"{bob}@{v}" for v in versions_of(admin, source_bucket, bob)]
    assert not run_module(s3_mirror, {**args, "prune_after_hours": 0}).result["changed"]

    # A source that holds nothing under the prefix (wrong prefix, or wiped) never empties the mirror.
    wrong = run_module(s3_mirror, {**args, "source": {**args["source"], "prefix": "nothing-here/"}})
    assert wrong.failed and "holds no object version while the mirror holds 1" in wrong.result["msg"]
    assert held(admin, target_bucket, mirror) == [("b.parquet", "bob")]
    bad = run_module(s3_mirror, {**args, "prune_after_hours": -2})
    assert bad.failed and bad.result["msg"].startswith("prune_after_hours: hours, or -1")


def test_copies_made_before_the_manifest_recorded_their_version_are_pruned_by_their_metadata(
    run_module, seaweedfs, buckets
):
    """The first manifest format (a list of source versions): a removed source version's copy is found by the
    source-version-id metadata every copy carries."""
    admin = seaweedfs.client("admin")
    source_bucket, target_bucket = buckets
    run = uuid.uuid4().hex[:8]
    key = f"{run}/k"
    for body in (b"v1", b"v2"):
        admin.put_object(Bucket=source_bucket, Key=key, Body=body)
    old, new = versions_of(admin, source_bucket, key)
    for vid, body in ((old, b"v1"), (new, b"v2")):  # as the first format's runs copied them
        admin.put_object(Bucket=target_bucket, Key=f"{run}/m/{key}", Body=body, Metadata={"source-version-id": vid})
    manifest = json.dumps([f"{key}@{old}", f"{key}@{new}"]).encode()
    admin.put_object(Bucket=target_bucket, Key=f"{run}/m/_mirror/manifest.json", Body=manifest)
    admin.delete_object(Bucket=source_bucket, Key=key, VersionId=old)
    side = s3_login(seaweedfs)
    args = {
        "source": {**side, "bucket": source_bucket, "prefix": f"{run}/"},
        "target": {**side, "bucket": target_bucket, "prefix": f"{run}/m/"},
    }
    done = run_module(s3_mirror, {**args, "prune_after_hours": 0})
    assert not done.failed, done.result["msg"]
    assert (done.result["copied"], done.result["pruned"], done.result["total"]) == (0, 1, 1)
    assert held(admin, target_bucket, f"{run}/m/") == [(key, "v2")]


def versions_of(s3, bucket: str, key: str) -> list[str]:
    """The key's version ids, oldest first."""
    page = s3.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [v for v in page.get("Versions", []) if v["Key"] == key]
    return [v["VersionId"] for v in sorted(versions, key=lambda v: v["LastModified"])]
