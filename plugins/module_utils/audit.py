# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""What every audit probe returns: one result per control, with the evidence behind it.

A result is a dict: control (its name in the checklist), status (pass, fail, error or not_applicable), reason (one
line saying why) and evidence (what was probed and what was seen). Probes never raise for what they find; an
unreachable target is an `error` with the reason, never a pass.
"""

from __future__ import annotations

STATUSES = ("pass", "fail", "error", "not_applicable")


def result(control: str, status: str, reason: str, **evidence) -> dict:
    if status not in STATUSES:
        raise ValueError(f"unknown audit status {status!r}")
    return {"control": control, "status": status, "reason": reason, "evidence": evidence}


def worst(results: list[dict]) -> str:
    """The status of a group of results: error beats fail beats pass; all not_applicable stays not_applicable."""
    statuses = {r["status"] for r in results}
    for s in ("error", "fail", "pass"):
        if s in statuses:
            return s
    return "not_applicable"
