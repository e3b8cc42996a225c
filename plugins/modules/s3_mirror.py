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
    copied.
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
"""

import json

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
        },
        supports_check_mode=True,
    )
    if not HAS_BOTO3:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("boto3"))
    src, dst = module.params["source"], module.params["target"]
    s, t = make_client(src), make_client(dst)
    prefix, tprefix = src.get("prefix") or "", dst.get("prefix") or ""
    try:
        try:
            done = set(json.loads(t.get_object(Bucket=dst["bucket"], Key=tprefix + MANIFEST)["Body"].read()))
        except t.exceptions.NoSuchKey:
            done = set()
        versions = []
        for page in s.get_paginator("list_object_versions").paginate(Bucket=src["bucket"], Prefix=prefix):
            versions += [("put", v) for v in page.get("Versions", [])]
            versions += [("delete", v) for v in page.get("DeleteMarkers", [])]
        versions.sort(key=lambda kv: kv[1]["LastModified"])
        copied = deleted = 0
        for kind, v in versions:
            ident = f"{v['Key']}@{v['VersionId']}"
            if ident in done or v["Key"].startswith(tprefix + "_mirror/"):
                continue
            if not module.check_mode:
                target_key = tprefix + v["Key"]
                if kind == "put":
                    body = s.get_object(Bucket=src["bucket"], Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
                    t.put_object(
                        Bucket=dst["bucket"],
                        Key=target_key,
                        Body=body,
                        Metadata={"source-version-id": str(v["VersionId"])},
                    )
                else:
                    t.delete_object(Bucket=dst["bucket"], Key=target_key)
            done.add(ident)
            copied += kind == "put"
            deleted += kind == "delete"
        if (copied or deleted) and not module.check_mode:
            t.put_object(Bucket=dst["bucket"], Key=tprefix + MANIFEST, Body=json.dumps(sorted(done)).encode())
        module.exit_json(changed=bool(copied or deleted), copied=copied, deleted=deleted, total=len(done))
    except Exception as e:
        module.fail_json(msg=f"mirror of {src['bucket']} to {dst['bucket']} failed: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
