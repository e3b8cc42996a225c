#!/usr/bin/python
# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: audit_report
short_description: Write the security audit's report (JSON, JUnit XML, Markdown) with waivers and a diff
description:
  - Takes the results of the audit's probes (one per control and host), applies the inventory's waivers, compares with
    the previous report in O(dest), and writes C(<name>.json), C(<name>.xml) (JUnit) and C(<name>.md) there. The
    report it replaces is kept as C(<name>.previous.json).
  - A waiver needs a known control, a reason and an expiry date; a waived finding is reported as C(waived), never as
    passed, and an expired waiver no longer applies. An unknown control in a waiver fails the task before anything is
    written.
  - Fails (after writing the report) when a control fails or errors and O(fail_on_findings) is true.
version_added: 0.1.0
author: analytics.platform contributors
options:
  results:
    description: Probe results, each with C(host), C(control), C(status), C(reason) and C(evidence).
    type: list
    elements: dict
    required: true
  controls:
    description: The checklist's controls, each C(name) and C(title); waivers must name one of them.
    type: list
    elements: dict
    required: true
  waivers:
    description: Accepted findings, each with C(control), C(reason), C(expires) (YYYY-MM-DD) and optionally C(host).
    type: list
    elements: dict
    default: []
  dest:
    description: Folder on the controller for the report files.
    type: path
    required: true
  name:
    description: Base name of the report files.
    type: str
    default: audit
  today:
    description: The date waivers are checked against (YYYY-MM-DD); defaults to today.
    type: str
  fail_on_findings:
    description: Fail when any control fails or errors (the report is written first).
    type: bool
    default: true
  require_every_control:
    description:
      - A control of O(controls) that no result reports on is added as an C(error) ("no probe reported on this
        control"), so a probe that was skipped or lost never disappears from the report silently.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Write the report
  analytics.platform.audit_report:
    results: "{{ audit_results }}"
    controls: "{{ audit_controls }}"
    waivers: "{{ audit_waivers }}"
    dest: "{{ playbook_dir }}/../reports/audit"
  delegate_to: localhost
"""

RETURN = r"""
summary:
  description: How many results have each status.
  returned: success
  type: dict
  sample: {pass: 41, fail: 1, waived: 1, error: 0, not_applicable: 2}
findings:
  description: The failed and errored results (host, control, reason).
  returned: always
  type: list
files:
  description: The files written.
  returned: success
  type: list
diff:
  description: Results whose status changed since the previous report (host, control, before, after).
  returned: success
  type: list
"""

import datetime as dt
import json
import os
import xml.etree.ElementTree as ET

from ansible.module_utils.basic import AnsibleModule

STATUSES = ("pass", "fail", "error", "waived", "not_applicable")


def check_waivers(waivers, controls):
    known = {c["name"] for c in controls}
    for i, w in enumerate(waivers):
        where = f"audit waiver {i + 1} ({w.get('control', '?')})"
        if w.get("control") not in known:
            raise ValueError(f"{where}: unknown control '{w.get('control')}' (known: {', '.join(sorted(known))})")
        if not str(w.get("reason", "")).strip():
            raise ValueError(f"{where}: a waiver needs a reason")
        try:
            dt.date.fromisoformat(str(w.get("expires", "")))
        except ValueError:
            raise ValueError(f"{where}: expires must be a date YYYY-MM-DD (got '{w.get('expires', '')}')") from None


def apply_waivers(results, waivers, today):
    out = []
    for r in results:
        r = dict(r)
        if r["status"] in ("fail", "error"):
            for w in waivers:
                if w["control"] != r["control"] or w.get("host", "*") not in ("*", r["host"]):
                    continue
                expires = dt.date.fromisoformat(str(w["expires"]))
                if expires >= today:
                    r.update(waived_status=r["status"], status="waived",
                             reason=f"{r['reason']} [waived until {expires}: {w['reason']}]")  # fmt: skip
                else:
                    r["reason"] = f"{r['reason']} [waiver expired on {expires}]"
                break
        out.append(r)
    return out


def diff(previous, results):
    before = {(r["host"], r["control"]): r["status"] for r in previous}
    after = {(r["host"], r["control"]): r["status"] for r in results}
    changes = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            changes.append({"host": key[0], "control": key[1], "before": before.get(key), "after": after.get(key)})
    return changes


def junit(results, controls):
    suites = ET.Element("testsuites", name="analytics.platform audit")
    titles = {c["name"]: c.get("title", c["name"]) for c in controls}
    for control in sorted({r["control"] for r in results}):
        rs = [r for r in results if r["control"] == control]
        suite = ET.SubElement(
            suites, "testsuite", name=control, tests=str(len(rs)),
            failures=str(sum(r["status"] == "fail" for r in rs)), errors=str(sum(r["status"] == "error" for r in rs)),
            skipped=str(sum(r["status"] in ("waived", "not_applicable") for r in rs)),
        )  # fmt: skip
        for r in rs:
            case = ET.SubElement(
                suite, "testcase", classname=f"{control}: {titles.get(control, control)}", name=r["host"]
            )
            if r["status"] == "fail":
                ET.SubElement(case, "failure", message=r["reason"]).text = json.dumps(r["evidence"], indent=1)
            elif r["status"] == "error":
                ET.SubElement(case, "error", message=r["reason"]).text = json.dumps(r["evidence"], indent=1)
            elif r["status"] in ("waived", "not_applicable"):
                ET.SubElement(case, "skipped", message=f"{r['status']}: {r['reason']}")
    return ET.tostring(suites, encoding="unicode")


MARK = {"pass": "pass", "fail": "**FAIL**", "error": "**ERROR**", "waived": "waived", "not_applicable": "n/a"}


def markdown(results, controls, summary, changes, when):
    hosts = sorted({r["host"] for r in results})
    by = {(r["control"], r["host"]): r for r in results}
    lines = [f"# Security audit, {when}", "",
             " · ".join(f"{s}: {summary[s]}" for s in STATUSES), "",
             "| Control | " + " | ".join(hosts) + " |", "|---|" + "---|" * len(hosts)]  # fmt: skip
    for c in controls:
        if not any((c["name"], h) in by for h in hosts):
            continue
        cells = [MARK[by[(c["name"], h)]["status"]] if (c["name"], h) in by else "" for h in hosts]
        lines.append(f"| {c['name']}: {c.get('title', '')} | " + " | ".join(cells) + " |")
    findings = [r for r in results if r["status"] != "pass"]
    if findings:
        lines += ["", "## Findings", ""]
        for r in sorted(findings, key=lambda r: (STATUSES.index(r["status"]), r["control"], r["host"])):
            lines.append(f"- **{r['status']}** `{r['control']}` on {r['host']}: {r['reason']}")
    if changes:
        lines += ["", "## Changes since the previous report", ""]
        lines += [
            f"- `{c['control']}` on {c['host']}: {c['before'] or 'absent'} -> {c['after'] or 'absent'}" for c in changes
        ]
    return "\n".join(lines) + "\n"


def main():
    module = AnsibleModule(
        argument_spec={
            "results": {"type": "list", "elements": "dict", "required": True},
            "controls": {"type": "list", "elements": "dict", "required": True},
            "waivers": {"type": "list", "elements": "dict", "default": []},
            "dest": {"type": "path", "required": True},
            "name": {"type": "str", "default": "audit"},
            "today": {"type": "str"},
            "fail_on_findings": {"type": "bool", "default": True},
            "require_every_control": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        check_waivers(p["waivers"], p["controls"])
        today = dt.date.fromisoformat(p["today"]) if p["today"] else dt.date.today()
    except ValueError as e:
        module.fail_json(msg=str(e), findings=[])
    for i, r in enumerate(p["results"]):
        missing = [k for k in ("host", "control", "status", "reason") if k not in r]
        if missing or r["status"] not in STATUSES:
            module.fail_json(msg=f"audit result {i + 1}: needs host, control, reason and a known status (got {r!r})",
                             findings=[])  # fmt: skip
        r.setdefault("evidence", {})
    if p["require_every_control"]:
        reported = {r["control"] for r in p["results"]}
        p["results"] += [
            {"host": "-", "control": c["name"], "status": "error", "reason": "no probe reported on this control",
             "evidence": {}}
            for c in p["controls"] if c["name"] not in reported
        ]  # fmt: skip

    results = apply_waivers(p["results"], p["waivers"], today)
    summary = {s: sum(r["status"] == s for r in results) for s in STATUSES}
    findings = [{k: r[k] for k in ("host", "control", "reason")} for r in results if r["status"] in ("fail", "error")]
    base = os.path.join(p["dest"], p["name"])
    previous = []
    if os.path.exists(base + ".json"):
        with open(base + ".json") as f:
            previous = json.load(f).get("results", [])
    changes = diff(previous, results)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    files = [base + ext for ext in (".json", ".xml", ".md")]
    if not module.check_mode:
        os.makedirs(p["dest"], exist_ok=True)
        if os.path.exists(base + ".json"):
            os.replace(base + ".json", base + ".previous.json")
        report = {"generated": when, "summary": summary, "results": results, "diff": changes, "waivers": p["waivers"]}
        with open(base + ".json", "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
        with open(base + ".xml", "w") as f:
            f.write(junit(results, p["controls"]))
        with open(base + ".md", "w") as f:
            f.write(markdown(results, p["controls"], summary, changes, when))
    out = {"changed": not module.check_mode, "summary": summary, "findings": findings, "files": files, "diff": changes}
    if findings and p["fail_on_findings"]:
        first = "; ".join(f"{f['control']} on {f['host']}: {f['reason']}" for f in findings[:3])
        module.fail_json(msg=f"audit: {len(findings)} finding(s) (report: {base}.md): {first}", **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
