#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: s3_contract
short_description: Verify the platform's S3 security contract against a running object store
description:
  - One verification for SeaweedFS and MinIO, used by the roles' tests (the audit runs the same checks through
    s3_audit).
  - "Checks: TLS; anonymous list, get (of an object the admin identity writes first) and put denied; known default
    credentials rejected; each service identity can do exactly what its policy allows and nothing more (another
    bucket, bucket creation); versioning on the data bucket; no bucket policy that allows everyone; a Delta table
    written and read back with deltalake."
  - Writes only under C(_audit/<run>/) of the data bucket and into a bucket of its own, and removes all of it (every
    version) before it returns. A check that cannot decide (a timeout, an unexpected answer) fails the contract.
    Returns evidence per check.
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - analytics.platform.s3
  - analytics.platform.s3.identities
  - ansible.builtin.action_common_attributes
options:
  bucket:
    description: The data bucket.
    type: str
    required: true
  delta_identity:
    description: The identity that writes the Delta round trip (must be able to write); empty skips it.
    type: str
    default: ""
  fail_on_violation:
    description: Fail the task when a check fails (the audit sets this to false and reports instead).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: The checks write only test objects, and remove them; they run in check mode too.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Verify the S3 contract
  analytics.platform.s3_contract:
    endpoint: https://store-b:8333
    access_key: admin
    secret_key: "{{ vault_s3_admin_secret }}"
    ca_path: /srv/pki/ca.crt
    bucket: analytics
    identities:
      - name: delta-writer
        access_key: delta-writer
        secret_key: "{{ vault_s3_writer }}"
        expect: {read: true, write: true, list: true}
      - name: delta-dashboard
        access_key: delta-dashboard
        secret_key: "{{ vault_s3_dashboard }}"
        expect: {read: true, list: true}
    delta_identity: delta-writer
  delegate_to: localhost
"""

RETURN = r"""
checks:
  description: One entry per check, with passed (true, false, or null when it could not run) and evidence.
  returned: always
  type: list
  elements: dict
passed:
  description: Whether every check that ran passed.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils import s3_contract as contract
from ansible_collections.analytics.platform.plugins.module_utils.s3 import (
    client,
    identities_argument_spec,
    s3_common_argument_spec,
)


def main():
    spec = s3_common_argument_spec()
    spec.update(
        bucket={"type": "str", "required": True},
        identities=identities_argument_spec(),
        delta_identity={"type": "str", "default": ""},
        fail_on_violation={"type": "bool", "default": True},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    identities = {i["name"]: i for i in p["identities"]}
    if p["delta_identity"] and p["delta_identity"] not in identities:
        module.fail_json(msg=f"delta_identity '{p['delta_identity']}' is not in identities")

    def make_client(access_key=None, secret_key=None, anonymous=False):
        return client(module, access_key, secret_key, anonymous)

    checks = [contract.check_tls(p["endpoint"], p["ca_path"])]
    admin = make_client()
    tracker = contract.Tracker(admin, p["bucket"])
    try:
        try:
            admin.head_bucket(Bucket=p["bucket"])
            other = tracker.new_bucket("other")
            admin.create_bucket(Bucket=other)
        except Exception as e:
            checks.append(contract.result("admin_access", False, f"the admin identity cannot use {p['bucket']}: {e}"))
            module.exit_json(
                changed=False,
                checks=checks,
                passed=False,
                failed=p["fail_on_violation"],
                msg="S3 contract could not run: " + checks[-1]["evidence"],
            )
        checks.append(contract.check_anonymous(make_client, tracker))
        checks.append(contract.check_default_credentials(make_client))
        for name, ident in sorted(identities.items()):
            checks.append(contract.check_identity(make_client, tracker, other, name, ident, ident.get("expect", {})))
        checks.append(contract.check_versioning(admin, p["bucket"]))
        checks.append(contract.check_bucket_policy(admin, p["bucket"]))
        if p["delta_identity"]:
            ident = identities[p["delta_identity"]]
            checks.append(contract.check_delta_roundtrip(p["endpoint"], tracker, ident, p["region"], p["ca_path"]))
    finally:
        left = tracker.cleanup()
    if left:
        checks.append(contract.result("cleanup", False, f"could not remove what the checks wrote: {', '.join(left)}"))
    failed = [c for c in checks if c["passed"] is not True]
    out = {"changed": False, "checks": checks, "passed": not failed}
    if failed and p["fail_on_violation"]:
        out["failed"] = True
        out["msg"] = "S3 contract violated or undecided: " + "; ".join(f"{c['check']}: {c['evidence']}" for c in failed)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
