#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: audit_report
short_description: Write the security audit's report (JSON, JUnit XML, SARIF 2.1.0, HTML) with waivers and a diff
description:
  - Takes the probes' results, keeps one entry per (host, control, target) (several results for one host and control
    are never merged), adds an C(error) entry for every expected (host, control) that no probe reported on, applies
    the waivers, compares with the previous report in O(dest), and writes the report there in O(formats).
  - "C(<name>.json): schema version 2 (roles/audit/files/audit-report.schema.json): summary, one entry per control of
    the catalogue (title, severity, remediation, status, counts), the hosts and their groups, the results, the diff and
    the waivers. C(<name>.xml): JUnit (one suite per control). C(<name>.sarif): SARIF 2.1.0 (one rule per control; a
    fail or an undecided control is a result of kind C(fail), a waived one is suppressed). C(<name>.html): one
    self-contained page, by checklist item and by component, each finding with its evidence and remediation."
  - The report it replaces is kept as C(<name>.previous.json).
  - A waiver needs a known control, a reason and an expiry date (optionally a host and a target); a waived finding is
    C(waived), never passed, and an expired waiver no longer applies. An unknown control in a waiver fails the task
    before anything is written.
  - Fails (after writing the report) when any entry fails or errors and O(fail_on_findings) is true.
version_added: 0.1.0
author: analytics.platform contributors (@analytics-platform)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  results:
    description: Probe results, each with C(host), C(control), C(status), C(reason), and C(target) and C(evidence).
    type: list
    elements: dict
    required: true
  expected:
    description: The (C(host), C(control)) pairs the audit had to report on; one without any result becomes an error.
    type: list
    elements: dict
    default: []
  host_groups:
    description: Each host's platform groups (its components), for the report's summary by component.
    type: dict
    default: {}
  waivers:
    description: Accepted findings, each with C(control), C(reason), C(expires) (YYYY-MM-DD), and optionally C(host)
      and C(target).
    type: list
    elements: dict
    default: []
  dest:
    description: Folder on the controller for the report files (created when missing).
    type: path
    required: true
  name:
    description: Base name of the report files.
    type: str
    default: audit
  formats:
    description: The formats to write.
    type: list
    elements: str
    choices: [json, junit, sarif, html]
    default: [json, junit, sarif, html]
  inventory:
    description: The inventory the audit ran on (the location SARIF results point at).
    type: str
    default: inventory
  today:
    description: The date waivers are checked against (YYYY-MM-DD); defaults to today.
    type: str
  fail_on_findings:
    description: Fail when any entry fails or errors (the report is written first).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: In check mode the report is built and returned but no file is written.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Write the report
  analytics.platform.audit_report:
    results: "{{ audit_results }}"
    expected: "{{ audit_expected }}"
    waivers: "{{ audit_waivers }}"
    dest: "{{ audit_report_dir }}"
  delegate_to: localhost
"""

RETURN = r"""
summary:
  description: How many entries have each status.
  returned: success
  type: dict
  sample: {pass: 41, fail: 1, waived: 1, error: 0, not_applicable: 2}
findings:
  description: The failed and errored entries (host, control, target, reason).
  returned: always
  type: list
files:
  description: The files written.
  returned: success
  type: list
diff:
  description: Entries whose status changed since the previous report (host, control, target, before, after).
  returned: success
  type: list
"""

import datetime as dt
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.analytics.platform.plugins.module_utils import audit_report as report_utils
from ansible_collections.analytics.platform.plugins.module_utils.audit import CATALOGUE, STATUSES

EXTENSIONS = {"json": ".json", "junit": ".xml", "sarif": ".sarif", "html": ".html"}


def main():
    module = AnsibleModule(
        argument_spec={
            "results": {"type": "list", "elements": "dict", "required": True},
            "expected": {"type": "list", "elements": "dict", "default": []},
            "host_groups": {"type": "dict", "default": {}},
            "waivers": {"type": "list", "elements": "dict", "default": []},
            "dest": {"type": "path", "required": True},
            "name": {"type": "str", "default": "audit"},
            "formats": {
                "type": "list",
                "elements": "str",
                "choices": list(EXTENSIONS),
                "default": list(EXTENSIONS),
            },
            "inventory": {"type": "str", "default": "inventory"},
            "today": {"type": "str"},
            "fail_on_findings": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        report_utils.check_waivers(p["waivers"])
        today = dt.date.fromisoformat(p["today"]) if p["today"] else dt.date.today()
    except ValueError as e:
        module.fail_json(msg=str(e), findings=[])
    for i, r in enumerate(p["results"]):
        missing = [k for k in ("host", "control", "status", "reason") if not r.get(k)]
        if missing or r["status"] not in STATUSES or r["control"] not in CATALOGUE:
            module.fail_json(
                msg=f"audit result {i + 1}: needs host, control (of the catalogue), reason and a known "
                f"status (got {json.dumps(r, default=str)[:300]})",
                findings=[],
            )
    base = os.path.join(p["dest"], p["name"])
    previous = []
    if os.path.exists(base + ".json"):
        try:
            with open(base + ".json") as f:
                previous = json.load(f).get("results", [])
        except (OSError, ValueError):
            previous = []  # an unreadable old report is replaced; the diff then lists every entry as new
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = report_utils.build(p["results"], p["expected"], p["waivers"], today, previous, p["host_groups"], generated)
    files = [base + EXTENSIONS[f] for f in p["formats"]]
    if not module.check_mode:
        os.makedirs(p["dest"], exist_ok=True)
        if os.path.exists(base + ".json"):
            os.replace(base + ".json", base + ".previous.json")
        writers = {
            "json": lambda: json.dumps(report, indent=2, sort_keys=True, default=str),
            "junit": lambda: report_utils.junit(report),
            "sarif": lambda: json.dumps(report_utils.sarif(report, p["inventory"]), indent=2, default=str),
            "html": lambda: report_utils.page(report),
        }
        for fmt in p["formats"]:
            with open(base + EXTENSIONS[fmt], "w", encoding="utf-8") as f:
                f.write(writers[fmt]())
    findings = [
        {k: r[k] for k in ("host", "control", "target", "reason")}
        for r in report["results"]
        if r["status"] in ("fail", "error")
    ]
    out = {
        "changed": not module.check_mode,
        "summary": report["summary"],
        "findings": findings,
        "files": files,
        "diff": report["diff"],
    }
    if findings and p["fail_on_findings"]:
        first = "; ".join(f"{f['control']} on {f['host']} ({f['target']}): {f['reason']}" for f in findings[:3])
        module.fail_json(msg=f"audit: {len(findings)} finding(s) (report: {files[-1]}): {first}", **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
