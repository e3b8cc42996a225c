# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Dashboards checked against Grafana's dashboard model on the controller, before any host is touched
(module_utils/dashboards.py)."""

from __future__ import annotations

from pathlib import Path

from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.module_utils.dashboards import dashboards_problems


def dashboard_problems(paths, sources):
    """One line per problem of the dashboard files `paths` (controller paths) against Grafana's dashboard model and
    the provisioned data sources `sources` ({uid: type})."""
    if not isinstance(sources, dict):
        raise AnsibleFilterError("dashboard_problems: sources must be a mapping of data source uid to type")
    files = {}
    for path in paths or []:
        try:
            files[Path(path).name] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise AnsibleFilterError(f"dashboard_problems: cannot read {path}: {e}") from None
    return dashboards_problems(files, {str(k): str(v) for k, v in sources.items()})


class FilterModule:
    def filters(self):
        return {"dashboard_problems": dashboard_problems}
