#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: s3_audit
short_description: The object store's security controls for the audit, leaving the store as it was
description:
  - Runs the S3 contract's checks (module_utils/s3_contract, shared with the s3_contract module) against one S3
    endpoint and returns C(object_store) results, one per target, reported on O(host).
  - "Targets: C(anonymous access) (an anonymous client may not list the data bucket, read an object the admin
    identity wrote for the probe, or write), C(bucket policy) (no statement allows everyone), C(identity <name>)
    (each service identity can do exactly what its policy allows, nothing on another bucket, no bucket of its own),
    C(versioning) (on, on the data bucket), C(read-only) (everything the probe wrote, every version and the probe's
    own bucket, is gone again)."
  - A check that cannot decide (timeout, TLS failure, an answer that is no refusal) is an C(error), never a pass.
    Default credentials are tried by audit_logins, from outside and from an application host.
version_added: 0.2.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - analytics.platform.s3
  - analytics.platform.s3.identities
  - ansible.builtin.action_common_attributes
options:
  host:
    description: The inventory host the results are reported on (the S3 node behind O(endpoint)).
    type: str
    required: true
  bucket:
    description: The data bucket.
    type: str
    required: true
attributes:
  check_mode:
    support: full
    details: The probe writes test objects and a bucket of its own, and removes them before it returns.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Audit the object store behind store-a
  analytics.platform.s3_audit:
    host: store-a
    endpoint: https://10.0.1.12:8333
    access_key: admin
    secret_key: "{{ vault_s3_admin_secret }}"
    ca_path: /home/ops/.analytics-platform/pki/ca.crt
    bucket: analytics
    identities:
      - {name: delta-writer, access_key: delta-writer, secret_key: "{{ vault_s3_writer }}",
         expect: {read: true, write: true, list: true}}
  delegate_to: localhost
  no_log: true
"""

RETURN = r"""
audit:
  description: One object_store result per target (host, control, target, status, reason, evidence).
  returned: always
  type: list
  elements: dict
"""

from functools import partial

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils import s3_contract as contract
from ansible_collections.analytics.platform.plugins.module_utils.audit import result
from ansible_collections.analytics.platform.plugins.module_utils.s3 import (
    client,
    identities_argument_spec,
    s3_common_argument_spec,
)

TARGETS = {"anonymous_denied": "anonymous access", "bucket_policy": "bucket policy", "versioning": "versioning"}


def as_result(check: dict, endpoint: str) -> dict:
    name = check["check"]
    target = TARGETS.get(name) or name.replace("identity_", "identity ")
    status = {True: "pass", False: "fail", None: "error"}[check["passed"]]
    return result("object_store", status, f"{endpoint}: {check['evidence']}", target, check=name, endpoint=endpoint)


def main():
    spec = s3_common_argument_spec()
    spec.update(
        host={"type": "str", "required": True},
        bucket={"type": "str", "required": True},
        identities=identities_argument_spec(),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params

    def make_client(access_key=None, secret_key=None, anonymous=False):
        return client(module, access_key, secret_key, anonymous)

    def checks():
        """(target, check) pairs: a check that raises is reported on its own target."""
        yield "anonymous access", lambda: contract.check_anonymous(make_client, tracker)
        yield "bucket policy", lambda: contract.check_bucket_policy(admin, p["bucket"])
        for ident in sorted(p["identities"], key=lambda i: i["name"]):
            yield (
                f"identity {ident['name']}",
                partial(contract.check_identity, make_client, tracker, other, ident["name"], ident, ident["expect"]),
            )
        yield "versioning", lambda: contract.check_versioning(admin, p["bucket"])

    endpoint = p["endpoint"]
    out = []
    admin = make_client()
    tracker = contract.Tracker(admin, p["bucket"])
    try:
        admin.head_bucket(Bucket=p["bucket"])
        other = tracker.new_bucket("other")
        admin.create_bucket(Bucket=other)
    except Exception as e:  # nothing can be decided without the admin identity
        reason = f"{endpoint}: the admin identity cannot use bucket {p['bucket']}: {type(e).__name__}: {e}"[:400]
        out = [result("object_store", "error", reason, t) for t in ("anonymous access", "versioning")]
    else:
        for target, check in checks():
            try:
                out.append(as_result(check(), endpoint))
            except Exception as e:  # the check itself failed: undecided
                reason = f"{endpoint}: the check failed: {type(e).__name__}: {e}"[:400]
                out.append(result("object_store", "error", reason, target))
    finally:
        left = tracker.cleanup()
        try:
            left = left or tracker.leftovers()
        except Exception as e:  # the leftovers could not be listed: the read-only promise is undecided
            left = [f"listing failed: {type(e).__name__}"]
    if left:
        out.append(
            result(
                "object_store",
                "error",
                f"the probe could not remove what it wrote: {', '.join(left)}",
                "read-only",
                leftovers=left,
            )
        )
    else:
        out.append(
            result(
                "object_store",
                "pass",
                "everything the probe wrote is gone again (every version)",
                "read-only",
                run=tracker.run,
            )
        )
    module.exit_json(changed=False, audit=[dict(r, host=p["host"]) for r in out])


if __name__ == "__main__":
    main()
