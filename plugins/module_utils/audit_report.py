# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The audit report, built from the probes' results and the catalogue (module_utils/audit.py), in four formats:
JSON (schema: roles/audit/files/audit-report.schema.json), JUnit XML, SARIF 2.1.0 and one self-contained HTML page.

One entry per (host, control, target): several results for one host and control are never merged, so a failing port
cannot hide behind a passing one, and the diff with the previous report names exactly what changed.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import xml.etree.ElementTree as ET

from ansible_collections.analytics.platform.plugins.module_utils.audit import CATALOGUE, SCHEMA_VERSION, SEVERITY_LEVEL

STATUSES = ("pass", "fail", "error", "waived", "not_applicable")
TOOL = "analytics.platform audit"
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}


def key(r: dict) -> tuple[str, str, str]:
    return r["host"], r["control"], r.get("target") or ""


def check_waivers(waivers: list[dict]) -> None:
    for i, w in enumerate(waivers):
        where = f"audit_waivers[{i}] ({w.get('control', '?')})"
        if w.get("control") not in CATALOGUE:
            raise ValueError(f"{where}: unknown control '{w.get('control')}' (known: {', '.join(sorted(CATALOGUE))})")
        if not str(w.get("reason", "")).strip():
            raise ValueError(f"{where}: a waiver needs a reason")
        try:
            dt.date.fromisoformat(str(w.get("expires", "")))
        except ValueError:
            raise ValueError(f"{where}: expires must be a date YYYY-MM-DD (got '{w.get('expires', '')}')") from None


def complete(results: list[dict], expected: list[dict]) -> list[dict]:
    """Every expected (host, control) has at least one entry, and every expected (host, control, target) its own:
    a missing one becomes an error (with the expectation's `reason` when it gives one)."""
    pairs = {(r["host"], r["control"]) for r in results}
    triples = {key(r) for r in results}
    out = list(results)
    for e in expected:
        target = e.get("target") or ""
        missing = (e["host"], e["control"], target) not in triples if target else (e["host"], e["control"]) not in pairs
        if missing:
            pairs.add((e["host"], e["control"]))
            triples.add((e["host"], e["control"], target))
            reason = e.get("reason") or "no probe reported on this control for this host"
            out.append(
                {
                    "host": e["host"],
                    "control": e["control"],
                    "target": target,
                    "status": "error",
                    "reason": reason,
                    "evidence": {"expected": True},
                }
            )
    return out


def apply_waivers(results: list[dict], waivers: list[dict], today: dt.date) -> list[dict]:
    out = []
    for r in results:
        r = dict(r)
        if r["status"] in ("fail", "error"):
            for w in waivers:
                if w["control"] != r["control"] or w.get("host", "*") not in ("*", r["host"]):
                    continue
                if w.get("target") not in (None, "", "*", r.get("target")):
                    continue
                expires = dt.date.fromisoformat(str(w["expires"]))
                if expires >= today:
                    r.update(
                        waived_status=r["status"],
                        status="waived",
                        waiver=w["reason"],
                        reason=f"{r['reason']} [waived until {expires}: {w['reason']}]",
                    )
                else:
                    r["reason"] = f"{r['reason']} [waiver expired on {expires}]"
                break
        out.append(r)
    return out


def diff(previous: list[dict], results: list[dict]) -> list[dict]:
    before = {key(r): r["status"] for r in previous if {"host", "control", "status"} <= set(r)}
    after = {key(r): r["status"] for r in results}
    changes = []
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            changes.append(
                {"host": k[0], "control": k[1], "target": k[2], "before": before.get(k), "after": after.get(k)}
            )
    return changes


def control_status(rs: list[dict]) -> str:
    statuses = {r["status"] for r in rs}
    for s in ("error", "fail", "waived", "pass"):
        if s in statuses:
            return s
    return "not_applicable"


def build(results, expected, waivers, today, previous, host_groups, generated) -> dict:
    results = apply_waivers(complete(results, expected), waivers, today)
    results.sort(key=lambda r: (list(CATALOGUE).index(r["control"]), r["host"], r.get("target") or ""))
    for r in results:
        r.setdefault("target", "")
        r.setdefault("evidence", {})
    summary = {s: sum(r["status"] == s for r in results) for s in STATUSES}
    controls = []
    for cid, c in CATALOGUE.items():
        rs = [r for r in results if r["control"] == cid]
        controls.append(
            {
                "id": cid,
                "title": c["title"],
                "severity": c["severity"],
                "remediation": c["remediation"],
                "status": control_status(rs) if rs else "not_applicable",
                "counts": {s: sum(r["status"] == s for r in rs) for s in STATUSES},
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": TOOL,
        "generated": generated,
        "summary": summary,
        "controls": controls,
        "hosts": {h: sorted(g) for h, g in sorted(host_groups.items())},
        "results": results,
        "diff": diff(previous, results),
        "waivers": waivers,
    }


def junit(report: dict) -> str:
    suites = ET.Element("testsuites", name=TOOL)
    for c in report["controls"]:
        rs = [r for r in report["results"] if r["control"] == c["id"]]
        if not rs:
            continue
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=c["id"],
            tests=str(len(rs)),
            failures=str(sum(r["status"] == "fail" for r in rs)),
            errors=str(sum(r["status"] == "error" for r in rs)),
            skipped=str(sum(r["status"] in ("waived", "not_applicable") for r in rs)),
        )
        for r in rs:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{c['id']}: {c['title']}",
                name=f"{r['host']}: {r['target']}" if r["target"] else r["host"],
            )
            evidence = json.dumps(r["evidence"], indent=1, default=str)
            if r["status"] == "fail":
                ET.SubElement(case, "failure", message=r["reason"]).text = evidence
            elif r["status"] == "error":
                ET.SubElement(case, "error", message=r["reason"]).text = evidence
            elif r["status"] in ("waived", "not_applicable"):
                ET.SubElement(case, "skipped", message=f"{r['status']}: {r['reason']}")
    return ET.tostring(suites, encoding="unicode")


def sarif(report: dict, inventory: str, version: str = "0.0.0") -> dict:
    """SARIF 2.1.0: one rule per control, one result per entry. A failed or undecided control is a result of kind
    `fail` (level from the control's severity); a waived one carries an accepted suppression."""
    ids = list(CATALOGUE)
    rules = [
        {
            "id": cid,
            "name": "".join(p.capitalize() for p in cid.split("_")),
            "shortDescription": {"text": c["title"]},
            "fullDescription": {"text": f"Production security checklist: {c['title']}"},
            "help": {"text": c["remediation"]},
            "defaultConfiguration": {"level": SEVERITY_LEVEL[c["severity"]]},
            "properties": {
                "security-severity": SECURITY_SEVERITY[c["severity"]],
                "tags": ["security"],
                "severity": c["severity"],
            },
        }
        for cid, c in CATALOGUE.items()
    ]
    results = []
    for r in report["results"]:
        c = CATALOGUE[r["control"]]
        status = r.get("waived_status") or r["status"]
        kind = {"pass": "pass", "not_applicable": "notApplicable"}.get(status, "fail")
        text = r["reason"] if status != "error" else f"Could not be decided (the run fails): {r['reason']}"
        where = f"{r['host']}/{r['target']}" if r["target"] else r["host"]
        entry = {
            "ruleId": r["control"],
            "ruleIndex": ids.index(r["control"]),
            "kind": kind,
            "level": SEVERITY_LEVEL[c["severity"]] if kind == "fail" else "none",
            "message": {"text": text},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": {"uri": inventory}},
                    "logicalLocations": [
                        {"name": r["target"] or r["host"], "fullyQualifiedName": where, "kind": "resource"}
                    ],
                }
            ],
            "partialFingerprints": {"auditEntry/v1": f"{r['host']}|{r['control']}|{r['target']}"},
            "properties": {
                "host": r["host"],
                "target": r["target"],
                "status": r["status"],
                "evidence": r["evidence"],
            },
        }
        if r["status"] == "waived":
            entry["suppressions"] = [{"kind": "external", "status": "accepted", "justification": r.get("waiver", "")}]
        results.append(entry)
    return {
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": TOOL, "semanticVersion": version, "rules": rules}},
                "invocations": [{"executionSuccessful": True, "endTimeUtc": report["generated"]}],
                "results": results,
            }
        ],
    }


BADGE = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#9a6700", "waived": "#6e7781", "not_applicable": "#8c959f"}
LABEL = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "waived": "waived", "not_applicable": "n/a"}


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{BADGE[status]}">{LABEL[status]}</span>'


def components(report: dict) -> list[tuple[str, list[str]]]:
    """(component, its hosts) for the summary: each platform group, then what belongs to none (the inventory)."""
    hosts = sorted({r["host"] for r in report["results"]})
    by: dict[str, list[str]] = {}
    for h in hosts:
        for g in report["hosts"].get(h) or ["other"]:
            by.setdefault(g, []).append(h)
    return sorted(by.items(), key=lambda kv: (kv[0] == "other", kv[0]))


def page(report: dict) -> str:
    """One HTML page with everything inline (no script, no external file): the summary, the checklist by item, the
    hosts by component, and each finding with its evidence and remediation."""
    e = html.escape
    s = report["summary"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Security audit {e(report['generated'])}</title>",
        "<style>body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1f2328}table{border-collapse:collapse;"
        "margin:.5rem 0 1.5rem}td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}"
        "th{background:#f6f8fa}.badge{color:#fff;border-radius:.8rem;padding:.05rem .55rem;font-size:12px}"
        ".counts span{display:inline-block;margin-right:1.2rem;font-size:18px}pre{background:#f6f8fa;padding:.5rem;"
        "overflow:auto;max-height:18rem;font-size:12px}details{margin:.3rem 0 1rem}</style></head><body>",
        f"<h1>Security audit of the analytics platform</h1><p>Generated {e(report['generated'])}, "
        f"report schema {report['schema_version']}.</p>",
        '<div class="counts" id="summary">'
        + "".join(f'<span>{_badge(k)} <b id="count-{k}">{s[k]}</b></span>' for k in STATUSES)
        + "</div>",
        '<h2>The checklist</h2><table id="controls"><tr><th>Checklist item</th><th>Control</th><th>Severity</th>'
        "<th>Status</th>" + "".join(f"<th>{LABEL[k]}</th>" for k in STATUSES) + "</tr>",
    ]
    for c in report["controls"]:
        parts.append(
            f'<tr data-control="{e(c["id"])}"><td>{e(c["title"])}</td><td><code>{e(c["id"])}</code></td>'
            f"<td>{e(c['severity'])}</td><td>{_badge(c['status'])}</td>"
            + "".join(f'<td class="n-{k}">{c["counts"][k]}</td>' for k in STATUSES)
            + "</tr>"
        )
    parts.append(
        '</table><h2>By component</h2><table id="components"><tr><th>Component</th><th>Hosts</th>'
        + "".join(f"<th>{LABEL[k]}</th>" for k in STATUSES)
        + "</tr>"
    )
    for component, hosts in components(report):
        rs = [r for r in report["results"] if r["host"] in hosts]
        parts.append(
            f'<tr data-component="{e(component)}"><td>{e(component)}</td><td>{e(", ".join(hosts))}</td>'
            + "".join(f"<td>{sum(r['status'] == k for r in rs)}</td>" for k in STATUSES)
            + "</tr>"
        )
    parts.append("</table><h2>Findings</h2>")
    findings = [r for r in report["results"] if r["status"] in ("fail", "error", "waived")]
    if not findings:
        parts.append('<p id="no-findings">No findings: every control passed or does not apply.</p>')
    for r in findings:
        c = CATALOGUE[r["control"]]
        parts.append(
            f'<div class="finding" data-status="{r["status"]}"><h3>{_badge(r["status"])} {e(c["title"])} '
            f"<small>(<code>{e(r['control'])}</code>) on {e(r['host'])}"
            + (f", {e(r['target'])}" if r["target"] else "")
            + f"</small></h3><p>{e(r['reason'])}</p><p><b>Remediation:</b> {e(c['remediation'])}</p>"
            f"<details><summary>Evidence</summary><pre>{e(json.dumps(r['evidence'], indent=2, default=str))}</pre>"
            "</details></div>"
        )
    if report["diff"]:
        parts.append('<h2>Changes since the previous report</h2><ul id="diff">')
        parts += [
            f"<li><code>{e(d['control'])}</code> on {e(d['host'])} {e(d['target'])}: "
            f"{e(str(d['before'] or 'absent'))} &rarr; {e(str(d['after'] or 'absent'))}</li>"
            for d in report["diff"]
        ]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
