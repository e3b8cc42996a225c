#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
# The work is done by the action plugin of the same name (plugins/action/validate_placement.py), on the controller.

DOCUMENTATION = r"""
---
module: validate_placement
short_description: Check that the inventory's zone placement survives the loss of any one zone
description:
  - Reads every host's C(zone) and the platform groups of the inventory, and fails before any host is touched when
    losing one zone would break the Kafka controller quorum or min.insync.replicas, the object store's availability,
    the last PostgreSQL copy, or leave nginx without a live analytics_api upstream.
  - Warns about single points of failure (a group whose hosts all live in one zone).
  - Settings the rules depend on (kafka_default_replication_factor, kafka_min_insync_replicas, seaweedfs_replication,
    kafka_node_roles, minio_drives) are read from the inventory, else from the roles' defaults.
  - Runs on the controller only (action plugin); it contacts no host.
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  required_groups:
    description:
      - Groups that must exist and have at least one host.
      - Defaults to the groups of a whole platform (kafka, postgresql_primary, analytics_api, nginx, monitoring).
    type: list
    elements: str
  components:
    description:
      - Rule sets to check; a role checks only its own.
      - By default every rule set (kafka, postgresql, object_store, edge, services).
    type: list
    elements: str
    choices: [kafka, postgresql, object_store, edge, services]
  fail_on_warnings:
    description: Treat single points of failure as errors.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
"""

EXAMPLES = r"""
- name: Check the zone placement before anything is changed
  analytics.platform.validate_placement:

- name: Check a Kafka-only inventory
  analytics.platform.validate_placement:
    required_groups: [kafka]
"""

RETURN = r"""
zones:
  description: The platform hosts per zone.
  returned: always
  type: dict
  sample: {"zone-a": ["kafka-a", "store-a"], "zone-b": ["kafka-b"]}
errors:
  description: Every rule the placement breaks, naming groups and hosts.
  returned: always
  type: list
  elements: str
placement_warnings:
  description: Single points of failure.
  returned: always
  type: list
  elements: str
params:
  description: The effective settings the rules used.
  returned: always
  type: dict
"""
