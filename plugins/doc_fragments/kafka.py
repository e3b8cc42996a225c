# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  bootstrap_servers:
    description: Brokers to connect to, as C(host:port).
    type: list
    elements: str
    required: true
  security_protocol:
    description: How to connect. The platform's brokers accept SASL_SSL only.
    type: str
    default: SASL_SSL
    choices: [SASL_SSL, SSL, PLAINTEXT]
  sasl_mechanism:
    description: SASL mechanism.
    type: str
    default: SCRAM-SHA-512
    choices: [SCRAM-SHA-512, SCRAM-SHA-256]
  login_user:
    description: SASL user (the admin super user for topics, users and ACLs).
    type: str
    aliases: [sasl_username]
  login_password:
    description: Password of O(login_user).
    type: str
    aliases: [sasl_password]
  ca_path:
    description: CA bundle that verifies the brokers' certificates.
    type: path
  request_timeout:
    description: Seconds to wait for the cluster to answer.
    type: int
    default: 30
attributes:
  action_group:
    description: >-
      Set the connection options once for every Kafka module with C(module_defaults) and the group
      C(group/analytics.platform.kafka).
    support: full
    membership: [analytics.platform.kafka]
requirements:
  - confluent-kafka >= 2.2 (on the host that runs the module, usually the controller)
notes:
  - Connection options are shared by every Kafka module of this collection.
"""
