#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: s3_bucket
short_description: Create a bucket on the platform's S3 store and keep its versioning on
description:
  - Creates the bucket when it is missing and enables versioning (the guide's "use versioning for important buckets").
  - Works with SeaweedFS and MinIO (path-style requests).
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - analytics.platform.s3
  - ansible.builtin.action_common_attributes
options:
  name:
    description: Bucket name.
    type: str
    required: true
  versioning:
    description: Keep versioning enabled.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: The data bucket
  analytics.platform.s3_bucket:
    name: analytics
    endpoint: https://store-a:8333
    access_key: admin
    secret_key: "{{ vault_s3_admin_secret }}"
    ca_path: /srv/pki/ca.crt
  delegate_to: localhost
"""

RETURN = r"""
created:
  description: Whether the bucket was created.
  returned: always
  type: bool
versioning:
  description: The bucket's versioning status afterwards.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils.s3 import client, error_code, s3_common_argument_spec


def main():
    spec = s3_common_argument_spec()
    spec.update(name={"type": "str", "required": True}, versioning={"type": "bool", "default": True})
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    s3 = client(module)
    name = p["name"]
    try:
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        created = name not in existing
        if created and not module.check_mode:
            s3.create_bucket(Bucket=name)
        status = "" if created else s3.get_bucket_versioning(Bucket=name).get("Status", "")
        want = "Enabled" if p["versioning"] else "Suspended"
        version_change = (p["versioning"] and status != "Enabled") or (not p["versioning"] and status == "Enabled")
        if version_change and not module.check_mode:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": want})
        module.exit_json(
            changed=created or version_change, created=created, versioning=want if version_change else status
        )
    except Exception as e:
        module.fail_json(msg=f"bucket '{name}' on {p['endpoint']}: {error_code(e)}: {e}")


if __name__ == "__main__":
    main()
