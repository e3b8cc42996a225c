#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: s3_object_versions
short_description: Remove objects for good from a versioned bucket, every version and delete marker of each
description:
  - In a versioned bucket (the platform's data bucket), deleting an object only adds a delete marker; its data stays
    as a noncurrent version. This module removes every version and delete marker of exactly the keys given (another
    key that merely starts with one of them is left alone), so that their data is gone from the store.
  - Used by playbooks/privacy_erase.yml for the Delta data files that held an erased data subject's rows.
  - In an unversioned bucket it deletes the objects. Keys that do not exist are counted as nothing to do; a second
    run changes nothing. Check mode counts what would be removed.
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
  keys:
    description: The objects' keys.
    type: list
    elements: str
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Remove the files that held an erased subject's rows, with their old versions
  analytics.platform.s3_object_versions:
    endpoint: https://store-a:8333
    access_key: delta-writer
    secret_key: "{{ vault_s3_delta_writer_secret_key }}"
    ca_path: /etc/analytics-platform/pki/ca.crt
    bucket: analytics
    keys: [delta/analytics-events/event_date=2026-12-01/part-00000-1.parquet]
  delegate_to: localhost
"""

RETURN = r"""
removed:
  description: Versions and delete markers removed (in check mode, that would be).
  returned: always
  type: int
objects:
  description: Keys that had at least one version or delete marker.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.s3 import client, error_code, s3_common_argument_spec


def versions_of(s3, bucket: str, key: str) -> list:
    """Every version id of exactly `key` (None for an unversioned object), delete markers included."""
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if entry["Key"] == key:
                vid = entry.get("VersionId")
                out.append(None if vid in (None, "", "null") else vid)
    return out


def main():
    spec = s3_common_argument_spec()
    spec.update(
        bucket={"type": "str", "required": True},
        keys={"type": "list", "elements": "str", "required": True, "no_log": False},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    if any(not k or k.startswith("/") for k in p["keys"]):
        module.fail_json(msg="keys: each key is a path inside the bucket (not empty, no leading /)")
    s3 = client(module)
    removed = objects = 0
    for key in dict.fromkeys(p["keys"]):
        try:
            found = versions_of(s3, p["bucket"], key)
            if found:
                objects += 1
            for vid in found:
                if not module.check_mode:
                    s3.delete_object(Bucket=p["bucket"], Key=key, **({"VersionId": vid} if vid else {}))
                removed += 1
        except Exception as e:
            module.fail_json(msg=f"s3://{p['bucket']}/{key} on {p['endpoint']}: {error_code(e)}: {e}", removed=removed)
    module.exit_json(changed=removed > 0, removed=removed, objects=objects)


if __name__ == "__main__":
    main()
