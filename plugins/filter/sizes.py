# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Memory sizes as PostgreSQL writes them ("64MB", "4GB"), in megabytes, for preflight checks."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

UNITS = {"kB": 1 / 1024, "MB": 1, "GB": 1024, "TB": 1024 * 1024}
SIZE_RE = re.compile(r"^\s*(\d+)\s*(kB|MB|GB|TB)\s*$")


def to_megabytes(value, name="value"):
    m = SIZE_RE.match(str(value))
    if not m:
        raise AnsibleFilterError(f"{name}: '{value}' is not a size such as 512MB or 4GB (units kB, MB, GB, TB)")
    return int(m.group(1)) * UNITS[m.group(2)]


class FilterModule:
    def filters(self):
        return {"to_megabytes": to_megabytes}
