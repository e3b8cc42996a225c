"""audit_report: statuses, waivers (reason, expiry, unknown control), the diff and the three report files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from ansible_collections.analytics.platform.plugins.modules import audit_report

CONTROLS = [{"name": "tls", "title": "TLS for all services"}, {"name": "api_auth", "title": "API authentication"}]


def res(host, control, status, reason="seen"):
    return {"host": host, "control": control, "status": status, "reason": reason, "evidence": {"probe": control}}


def args(tmp_path, results, waivers=(), **kw):
    a = {
        "results": results,
        "controls": CONTROLS,
        "waivers": list(waivers),
        "dest": str(tmp_path),
        "today": "2026-11-29",
        "require_every_control": False,
    }
    a.update(kw)
    return a


def run(run_module, a):
    return run_module(audit_report, a)


def test_all_pass_writes_three_reports(run_module, tmp_path):
    out = run(run_module, args(tmp_path, [res("a", "tls", "pass"), res("b", "api_auth", "pass")]))
    assert not out.failed and out.result["summary"]["pass"] == 2
    report = json.loads((tmp_path / "audit.json").read_text())
    assert {(r["host"], r["control"], r["status"]) for r in report["results"]} == {
        ("a", "tls", "pass"),
        ("b", "api_auth", "pass"),
    }
    suites = ET.parse(tmp_path / "audit.xml").getroot()  # noqa: S314 - our own file
    assert {s.get("name") for s in suites} == {"tls", "api_auth"}
    assert "| tls: TLS for all services | pass |" in (tmp_path / "audit.md").read_text()


def test_a_failure_fails_the_run_after_writing_the_report(run_module, tmp_path):
    out = run(run_module, args(tmp_path, [res("a", "tls", "fail", "accepts TLSv1"), res("b", "tls", "error")]))
    assert out.failed and "2 finding(s)" in out.result["msg"] and "tls on a: accepts TLSv1" in out.result["msg"]
    suite = ET.parse(tmp_path / "audit.xml").getroot().find("testsuite")  # noqa: S314 - our own file
    assert suite.get("failures") == "1" and suite.get("errors") == "1"
    assert "**FAIL**" in (tmp_path / "audit.md").read_text()


def test_a_waiver_reports_waived_not_passed(run_module, tmp_path):
    waiver = {"control": "tls", "host": "a", "reason": "legacy client until Q1", "expires": "2026-12-31"}
    out = run(run_module, args(tmp_path, [res("a", "tls", "fail")], [waiver]))
    assert not out.failed and out.result["summary"] == {
        "pass": 0,
        "fail": 0,
        "error": 0,
        "waived": 1,
        "not_applicable": 0,
    }
    r = json.loads((tmp_path / "audit.json").read_text())["results"][0]
    assert r["status"] == "waived" and r["waived_status"] == "fail" and "legacy client" in r["reason"]


def test_an_expired_waiver_no_longer_applies(run_module, tmp_path):
    waiver = {"control": "tls", "reason": "old", "expires": "2026-11-28"}
    out = run(run_module, args(tmp_path, [res("a", "tls", "fail")], [waiver]))
    assert out.failed and "waiver expired on 2026-11-28" in out.result["findings"][0]["reason"]


def test_a_waiver_for_an_unknown_control_fails_before_writing(run_module, tmp_path):
    waiver = {"control": "tsl", "reason": "typo", "expires": "2027-01-01"}
    out = run(run_module, args(tmp_path, [res("a", "tls", "pass")], [waiver]))
    assert out.failed and "unknown control 'tsl'" in out.result["msg"]
    assert not (tmp_path / "audit.json").exists()


def test_a_waiver_without_reason_or_date_is_refused(run_module, tmp_path):
    for waiver, message in (
        ({"control": "tls", "expires": "2027-01-01"}, "needs a reason"),
        ({"control": "tls", "reason": "x", "expires": "soon"}, "expires must be a date"),
    ):
        out = run(run_module, args(tmp_path, [res("a", "tls", "pass")], [waiver]))
        assert out.failed and message in out.result["msg"]


def test_the_diff_names_what_changed(run_module, tmp_path):
    run(run_module, args(tmp_path, [res("a", "tls", "pass"), res("a", "api_auth", "pass")]))
    out = run(run_module, args(tmp_path, [res("a", "tls", "fail"), res("a", "api_auth", "pass")]))
    assert out.result["diff"] == [{"host": "a", "control": "tls", "before": "pass", "after": "fail"}]
    assert (tmp_path / "audit.previous.json").exists()
    assert "`tls` on a: pass -> fail" in (tmp_path / "audit.md").read_text()


def test_a_malformed_result_is_refused(run_module, tmp_path):
    out = run(run_module, args(tmp_path, [{"host": "a", "control": "tls", "status": "ok", "reason": "?"}]))
    assert out.failed and "audit result 1" in out.result["msg"]


def test_a_control_no_probe_reported_is_an_error(run_module, tmp_path):
    out = run(run_module, args(tmp_path, [res("a", "tls", "pass")], require_every_control=True))
    assert out.failed and out.result["findings"] == [
        {"host": "-", "control": "api_auth", "reason": "no probe reported on this control"}
    ]
