#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: s3_upload
short_description: Put the files of a folder into a bucket, each checked on arrival and read back
description:
  - Uploads every regular file of a folder (or the files named) to C(<prefix>/<name>) in a bucket. Each upload
    carries its MD5 (the store refuses a body that arrived changed) and its SHA-256 as the object's metadata
    C(sha256); the object is read back (its size and checksum) before the file counts as uploaded.
  - An object that already holds the same bytes (same size and C(sha256)) is left as it is, so a second run changes
    nothing. Check mode says what would be uploaded.
  - Used by playbooks/privacy_export.yml to deliver a data subject's export to a bucket. Runs where the files are
    (the controller).
version_added: 0.3.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - analytics.platform.s3
  - ansible.builtin.action_common_attributes
options:
  bucket:
    description: The bucket.
    type: str
    required: true
  prefix:
    description: Where the files go in the bucket (C(a/b) puts C(x.json) at C(a/b/x.json)); empty for the top.
    type: str
    default: ""
  src:
    description: The folder whose files are uploaded (not its subfolders).
    type: path
    required: true
  files:
    description: Only these files of the folder (names, not paths). All of its regular files when not given.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Deliver an export to the privacy team's bucket
  analytics.platform.s3_upload:
    endpoint: https://s3.example.com
    access_key: privacy-export
    secret_key: "{{ vault_privacy_export_secret_key }}"
    bucket: privacy-exports
    prefix: production/DSAR-2026-0007
    src: reports/privacy/exports/production/DSAR-2026-0007
  delegate_to: localhost
"""

RETURN = r"""
uploaded:
  description: Keys written in this run (in check mode, that would be).
  returned: always
  type: list
  elements: str
unchanged:
  description: Keys that already held the same bytes.
  returned: always
  type: list
  elements: str
objects:
  description: Every file's key, size and SHA-256.
  returned: always
  type: list
  elements: dict
location:
  description: C(s3://<bucket>/<prefix>/), where the files are.
  returned: always
  type: str
"""

import base64
import hashlib
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.s3 import client, error_code, s3_common_argument_spec


def digests(path: str) -> tuple:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    return base64.b64encode(md5.digest()).decode(), sha.hexdigest()


def held(s3, bucket: str, key: str):
    """(size, sha256 metadata) of the object, or None when there is none."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as e:
        if error_code(e) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head.get("ContentLength"), (head.get("Metadata") or {}).get("sha256")


def main():
    spec = s3_common_argument_spec()
    spec.update(
        bucket={"type": "str", "required": True},
        prefix={"type": "str", "default": ""},
        src={"type": "path", "required": True},
        files={"type": "list", "elements": "str"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    src, prefix = p["src"], p["prefix"].strip("/")
    if not os.path.isdir(src):
        module.fail_json(msg=f"src: {src} is not a folder")
    names = p["files"] if p["files"] is not None else sorted(os.listdir(src))
    bad = [n for n in names if not n or "/" in n or n in (".", "..")]
    if bad:
        module.fail_json(msg=f"files: each is a name in src, not a path ({bad[0]!r})")
    names = [n for n in names if p["files"] is not None or os.path.isfile(os.path.join(src, n))]
    missing = [n for n in names if not os.path.isfile(os.path.join(src, n))]
    if missing:
        module.fail_json(msg=f"files: {missing[0]} is not a file in {src}")
    if not names:
        module.fail_json(msg=f"src: {src} holds no file to upload")
    location = f"s3://{p['bucket']}/{prefix + '/' if prefix else ''}"
    s3 = client(module)
    uploaded, unchanged, objects = [], [], []
    for name in names:
        path, key = os.path.join(src, name), f"{prefix}/{name}" if prefix else name
        size = os.path.getsize(path)
        md5, sha = digests(path)
        objects.append({"key": key, "bytes": size, "sha256": sha})
        try:
            if held(s3, p["bucket"], key) == (size, sha):
                unchanged.append(key)
                continue
            if not module.check_mode:
                with open(path, "rb") as body:
                    s3.put_object(Bucket=p["bucket"], Key=key, Body=body, ContentMD5=md5, Metadata={"sha256": sha})
                got = held(s3, p["bucket"], key)
                if got != (size, sha):
                    module.fail_json(msg=f"{location}{name}: read back {got}, not ({size}, {sha})", uploaded=uploaded)
            uploaded.append(key)
        except Exception as e:
            module.fail_json(msg=f"{location}{name} on {p['endpoint']}: {error_code(e)}: {e}", uploaded=uploaded)
    module.exit_json(changed=bool(uploaded), uploaded=uploaded, unchanged=unchanged, objects=objects, location=location)


if __name__ == "__main__":
    main()
