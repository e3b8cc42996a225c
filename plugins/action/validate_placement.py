# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin behind analytics.platform.validate_placement (documentation in plugins/modules)."""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.analytics.platform.plugins.module_utils.placement import check_placement

display = Display()
ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
# Settings the rules depend on: (parameter, role, variable). Read from the first host of the role's group, else
# from the role's defaults/main.yml, so the check sees what the roles will deploy.
SETTINGS = (
    ("kafka_replication_factor", "kafka", "kafka_default_replication_factor"),
    ("kafka_min_insync_replicas", "kafka", "kafka_min_insync_replicas"),
    ("seaweedfs_replication", "seaweedfs", "seaweedfs_replication"),
    ("postgresql_patroni", "postgresql", "postgresql_patroni"),
)


def role_default(role: str, var: str):
    path = ROLES_DIR / role / "defaults" / "main.yml"
    if not path.is_file():
        return None
    value = (yaml.safe_load(path.read_text()) or {}).get(var)
    return None if isinstance(value, str) and "{{" in value else value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("required_groups", "components", "fail_on_warnings"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        unknown = set(args) - self._VALID_ARGS
        if unknown:
            raise AnsibleActionFail(f"validate_placement: unsupported option(s) {', '.join(sorted(unknown))}")
        groups = {k: list(v) for k, v in task_vars.get("groups", {}).items()}
        hostvars = task_vars.get("hostvars", {})
        zone_of = {h: (hostvars[h].get("zone") or None) for h in groups.get("all", [])}

        params = {}
        for param, role, var in SETTINGS:
            hosts = groups.get(role) or []
            value = hostvars[hosts[0]].get(var) if hosts else None
            params[param] = value if value is not None else role_default(role, var)
        kafka_hosts = groups.get("kafka") or []
        params["kafka_controllers"] = [
            h for h in kafka_hosts if "controller" in str(hostvars[h].get("kafka_node_roles") or "broker,controller")
        ]
        minio_hosts = groups.get("minio") or []
        if minio_hosts:
            drives = hostvars[minio_hosts[0]].get("minio_drives") or role_default("minio", "minio_drives") or ["x"]
            params["minio_drives_per_node"] = len(drives)
        if args.get("required_groups") is not None:
            params["required_groups"] = list(args["required_groups"])
        if args.get("components") is not None:
            params["components"] = list(args["components"])

        report = check_placement(groups, zone_of, params)
        for w in report.warnings:
            display.warning(f"placement: {w}")
        result.update(
            changed=False,
            zones=report.zones,
            errors=report.errors,
            placement_warnings=report.warnings,
            params={k: v for k, v in params.items() if k != "kafka_controllers"},
        )
        problems = report.errors + (report.warnings if args.get("fail_on_warnings") else [])
        if problems:
            result["failed"] = True
            result["msg"] = "Zone placement check failed: " + "; ".join(problems)
        else:
            result["msg"] = f"Placement survives the loss of any one of {len(report.zones)} zones"
        return result
