#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: s3_mirror
short_description: Mirror a bucket, with its object versions, to a second S3 target
description:
  - The guide's C(mc mirror) for either object store (SeaweedFS or MinIO) and any S3 target.
  - Copies every object version of the source bucket that the target does not have yet, oldest first, so a versioned
    target keeps the same history. Deleted objects (delete markers) are mirrored as delete markers.
  - Idempotent, through a manifest object (C(_mirror/manifest.json)) in the target that records the source versions
    copied and the target version each became.
  - A source version removed for good (the Delta writer's removal of old versions, a data subject's erasure) is
    marked gone in the manifest, and its copy in the target is removed for good C(prune_after_hours) later, so the
    retention and erasures of the source reach the mirror too, with that delay. The delay is the window to notice a
    source that lost its data by accident or attack before the mirror follows it. A run that finds no version at all
    under the source's prefix while the mirror holds copies fails and changes nothing (a wrong bucket or prefix, or a
    wiped source, never empties the mirror).
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  source:
    description: The source bucket.
    type: dict
    required: true
    suboptions: &side
      endpoint:
        description: The S3 endpoint URL.
        type: str
        required: true
      access_key:
        description: Access key.
        type: str
        required: true
      secret_key:
        description: Secret key (never logged).
        type: str
        required: true
      bucket:
        description: The bucket.
        type: str
        required: true
      ca_path:
        description: CA bundle that verifies the endpoint.
        type: path
      region:
        description: Region.
        type: str
        default: us-east-1
      prefix:
        description: Key prefix (in the source, what is copied; in the target, where the copies go).
        type: str
        default: ""
  target:
    description: The target, with the same keys.
    type: dict
    required: true
    suboptions: *side
  prune_after_hours:
    description:
      - Hours after a source version was found removed for good that its copy is removed from the target. C(-1)
        keeps every copy for ever (the mirror then keeps data the source's retention and erasures removed).
    type: int
    default: 168
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - boto3
"""

EXAMPLES = r"""
- name: Mirror the data bucket to the backup site
  analytics.platform.s3_mirror:
    source:
      endpoint: https://store-a:8333
      access_key: backup
      secret_key: "{{ vault_s3_backup }}"
      bucket: analytics
      ca_path: /srv/pki/ca.crt
    target:
      endpoint: https://backup.example.com
      access_key: mirror
      secret_key: "{{ vault_mirror }}"
      bucket: analytics-mirror
  delegate_to: localhost
"""

RETURN = r"""
copied:
  description: Source object versions copied in this run.
  returned: always
  type: int
deleted:
  description: Delete markers mirrored in this run.
  returned: always
  type: int
total:
  description: Source versions the target holds after this run.
  returned: always
  type: int
gone:
  description: Copies whose source version was removed for good and that wait for C(prune_after_hours).
  returned: always
  type: int
pruned:
  description: Copies removed for good from the target in this run.
  returned: always
  type: int
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule

try:
    import boto3
    from botocore.config import Config

    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False

MANIFEST = "_mirror/manifest.json"
# The secret keys are options marked no_log, so Ansible masks them before it logs the invocation (on the target host's
# journal too): removing them from the module's output afterwards would be too late.
SIDE = {
    "endpoint": {"type": "str", "required": True},
    "access_key": {"type": "str", "required": True, "no_log": False},
    "secret_key": {"type": "str", "required": True, "no_log": True},
    "bucket": {"type": "str", "required": True},
    "ca_path": {"type": "path"},
    "region": {"type": "str", "default": "us-east-1"},
    "prefix": {"type": "str", "default": ""},
}


def make_client(side):
    return boto3.client(
        "s3",
        endpoint_url=side["endpoint"],
        aws_access_key_id=side["access_key"],
        aws_secret_access_key=side["secret_key"],
        region_name=side.get("region") or "us-east-1",
        verify=side.get("ca_path") or True,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "dict", "required": True, "options": SIDE},
            "target": {"type": "dict", "required": True, "options": SIDE},
            "prune_after_hours": {"type": "int", "default": 168},
        },
        supports_check_mode=True,
    )
    if not HAS_BOTO3:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("boto3"))
    src, dst = module.params["source"], module.params["target"]
    keep_hours = module.params["prune_after_hours"]
    if keep_hours < -1:
        module.fail_json(msg=f"prune_after_hours: hours, or -1 to keep every copy (got {keep_hours})")
    s, t = make_client(src), make_client(dst)
    prefix, tprefix = src.get("prefix") or "", dst.get("prefix") or ""
    try:
        copies = read_manifest(t, dst["bucket"], tprefix + MANIFEST)
        versions = []
        for page in s.get_paginator("list_object_versions").paginate(Bucket=src["bucket"], Prefix=prefix):
            versions += [("put", v) for v in page.get("Versions", [])]
            versions += [("delete", v) for v in page.get("DeleteMarkers", [])]
        if not versions and copies:
            module.fail_json(
                msg=f"the source {src['bucket']}/{prefix} holds no object version while the mirror holds"
                f" {len(copies)}: nothing done (a wrong bucket or prefix, or a source that lost its data)"
            )
        versions.sort(key=lambda kv: kv[1]["LastModified"])
        copied = deleted = 0
        changed_manifest = False
        for kind, v in versions:
            ident = f"{v['Key']}@{v['VersionId']}"
            if ident in copies or v["Key"].startswith(tprefix + "_mirror/"):
                continue
            entry = {"target": None, "gone": None}
            if not module.check_mode:
                target_key = tprefix + v["Key"]
                if kind == "put":
                    body = s.get_object(Bucket=src["bucket"], Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
                    made = t.put_object(
                        Bucket=dst["bucket"],
                        Key=target_key,
                        Body=body,
                        Metadata={"source-version-id": str(v["VersionId"])},
                    )
                else:
                    made = t.delete_object(Bucket=dst["bucket"], Key=target_key)
                entry["target"] = made.get("VersionId")
            copies[ident] = entry
            copied += kind == "put"
            deleted += kind == "delete"
        present = {f"{v['Key']}@{v['VersionId']}" for _kind, v in versions}
        now = int(time.time())
        pruned = 0
        for ident, entry in list(copies.items()):
            if ident in present:
                continue
            if entry.get("gone") is None:
                entry["gone"] = now  # removed for good at the source: the copy goes prune_after_hours from now
                changed_manifest = True
            if keep_hours >= 0 and now - entry["gone"] >= keep_hours * 3600:
                if not module.check_mode:
                    remove_copy(t, dst["bucket"], tprefix, ident, entry)
                del copies[ident]
                pruned += 1
        gone = sum(1 for e in copies.values() if e.get("gone") is not None)
        changed = bool(copied or deleted or pruned or changed_manifest)
        if changed and not module.check_mode:
            write_manifest(t, dst["bucket"], tprefix + MANIFEST, copies)
        module.exit_json(changed=changed, copied=copied, deleted=deleted, total=len(copies), gone=gone, pruned=pruned)
    except Exception as e:
        module.fail_json(msg=f"mirror of {src['bucket']} to {dst['bucket']} failed: {type(e).__name__}: {e}")


def read_manifest(t, bucket: str, key: str) -> dict:
    """{source key@version: {"target": the copy's version id, "gone": when the source version was found removed
    (epoch seconds) or None}}; the first format (a list of idents) is read as copies of unknown target version."""
    try:
        data = json.loads(t.get_object(Bucket=bucket, Key=key)["Body"].read())
    except t.exceptions.NoSuchKey:
        return {}
    if isinstance(data, list):
        return {ident: {"target": None, "gone": None} for ident in data}
    return data["copies"]


def write_manifest(t, bucket: str, key: str, copies: dict) -> None:
    """The new manifest, then the earlier ones removed (a versioned target would keep each run's for ever)."""
    body = json.dumps({"format": 2, "copies": copies}, sort_keys=True).encode()
    current = t.put_object(Bucket=bucket, Key=key, Body=body).get("VersionId")
    if current in (None, "", "null"):
        return
    for page in t.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if v["Key"] == key and v["VersionId"] != current:
                t.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])


def remove_copy(t, bucket: str, tprefix: str, ident: str, entry: dict) -> None:
    """Remove the target's copy of a source version for good: by its recorded version id, else (an unversioned
    target, or a copy made before the manifest recorded it) the version whose metadata names the source version."""
    key, _at, source_version = ident.rpartition("@")
    key = tprefix + key
    if entry.get("target") not in (None, "", "null"):
        t.delete_object(Bucket=bucket, Key=key, VersionId=entry["target"])
        return
    for page in t.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        for v in page.get("Versions", []):
            if v["Key"] != key:
                continue
            vid = v.get("VersionId")
            extra = {"VersionId": vid} if vid not in (None, "", "null") else {}
            meta = t.head_object(Bucket=bucket, Key=key, **extra).get("Metadata", {})
            if meta.get("source-version-id") == source_version:
                t.delete_object(Bucket=bucket, Key=key, **extra)


if __name__ == "__main__":
    main()
