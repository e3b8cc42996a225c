# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  endpoint:
    description: The S3 endpoint, C(https://host:port) (SeaweedFS's S3 gateway or MinIO).
    type: str
    required: true
  access_key:
    description: Access key of the identity to act as.
    type: str
  secret_key:
    description: Secret key of that identity.
    type: str
  region:
    description: Region name sent with signed requests.
    type: str
    default: us-east-1
  ca_path:
    description: CA bundle that verifies the endpoint's certificate.
    type: path
attributes:
  action_group:
    description: >-
      Set the connection options once for every S3 module with C(module_defaults) and the group
      C(group/analytics.platform.s3).
    support: full
    membership: [analytics.platform.s3]
requirements:
  - boto3 (on the host that runs the module, usually the controller)
"""

    # The service identities and what each may do (s3_contract, s3_audit: identities_argument_spec in module_utils/s3).
    IDENTITIES = r"""
options:
  identities:
    description:
      - Service identities and what each may do on the data bucket.
      - Actions not listed in O(identities[].expect) are expected to be denied, and so are other buckets and bucket
        creation.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The identity's name (used in the check's name).
        type: str
        required: true
      access_key:
        description: Its access key.
        type: str
        required: true
      secret_key:
        description: Its secret key.
        type: str
        required: true
      expect:
        description: The actions it may do, among C(read), C(write), C(list) (true or false).
        type: dict
        default: {}
"""
