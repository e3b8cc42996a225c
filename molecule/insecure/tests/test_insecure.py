"""The audit against its insecure twin (converge.yml): every control of the checklist FAILS with its evidence, on the
host and target where the insecure setting is; an unreachable host is an error for each of its controls (never a
pass, never missing); the report is written in four formats that meet their schemas; an unknown waiver stops the run.
The hardened scenarios show each control passing (scripts/audit_matrix.py sets both sides side by side)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, address, ansible_playbook, ephemeral_dir, run_audit

CONTROLS = [
    "default_passwords",
    "tls",
    "api_auth",
    "api_rate_limit",
    "secrets",
    "kafka_sasl_ssl",
    "firewall",
    "cors",
    "reverse_proxy",
    "db_encryption",
    "db_replication",
    "db_backups",
    "etcd_security",
    "security_updates",
    "audit_logging",
    "object_store",
    "grafana",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One audit run over the scenario's hosts plus `gone-b`, a host that does not exist (its address is unused)."""
    extra = tmp_path_factory.mktemp("inventory") / "gone.yml"
    unused = re.sub(r"\.\d+$", ".250", address("weak-a"))
    extra.write_text(f"all:\n  hosts:\n    gone-b:\n      ansible_host: {unused}\n      zone: zone-b\n")
    r, results = run_audit(None, "-i", str(extra))
    return r, results


def failed(results, control, host, target, text=""):
    hits = [
        x
        for x in results
        if x["control"] == control and x["host"] == host and target in x["target"] and text in x["reason"]
    ]
    assert hits, (
        f"no {control} result on {host} ({target}) mentioning {text!r}: "
        + json.dumps([x for x in results if x["control"] == control], indent=1)[:3000]
    )
    assert all(x["status"] == "fail" for x in hits), hits
    assert all(x["evidence"] for x in hits), hits
    return hits[0]


def test_the_run_fails_and_still_writes_every_report(report):
    r = report[0]
    assert r.returncode != 0
    assert "finding(s)" in r.output
    dest = ephemeral_dir() / "audit"
    assert {p.name for p in dest.iterdir()} >= {"audit.json", "audit.xml", "audit.sarif", "audit.html"}


@pytest.mark.parametrize("control", CONTROLS)
def test_every_control_fails_on_the_insecure_twin(report, control):
    mine = [x for x in report[1] if x["control"] == control and x["host"] != "gone-b"]
    assert any(x["status"] == "fail" for x in mine), json.dumps(mine, indent=1)[:3000]


@pytest.mark.parametrize(
    ("control", "host", "target", "text"),
    [
        ("default_passwords", "weak-a", "postgresql logins from weak-x (outside)", "analytics"),
        ("default_passwords", "weak-a", "postgresql logins from weak-a (inside)", "postgres"),
        ("default_passwords", "weak-a", "s3 logins from weak-x (outside)", "minioadmin"),
        ("default_passwords", "weak-a", "kafka logins from weak-x (outside)", "PLAINTEXT"),
        ("default_passwords", "weak-a", "grafana admin login", "admin/admin"),
        ("tls", "weak-a", "analytics_api:3001", ""),
        ("tls", "weak-a", "postgresql:5432", "refused TLS"),
        ("tls", "weak-a", "kafka:9092", ""),
        ("tls", "weak-a", "pg_sink_metrics:9101", ""),
        ("api_auth", "weak-a", "https://weak-a:443", "without a key: 202"),
        ("api_rate_limit", "weak-a", "https://weak-a:443", "no 429 in a burst"),
        ("cors", "weak-a", "https://weak-a:443", "a foreign Origin is allowed"),
        ("reverse_proxy", "weak-a", "port 3001 from weak-x (outside)", "answers from"),
        ("firewall", "weak-a", "from weak-x (outside)", "postgresql 5432"),
        ("firewall", "weak-a", "listening ports", "6000"),
        ("secrets", "weak-a", "process arguments", "kafka_admin_password"),
        ("secrets", "weak-a", "readable files", "insecure-credentials.env"),
        ("secrets", "weak-a", "journal", "kafka_admin_password in the journal"),
        ("secrets", "inventory", "inventory variables", "grafana_admin_password"),
        ("kafka_sasl_ssl", "weak-a", "listeners", "PLAINTEXT answers on"),
        ("kafka_sasl_ssl", "weak-a", "ACL default deny", "which has no ACL"),
        ("db_encryption", "weak-a", "pg_hba", "ssl is off"),
        ("db_replication", "weak-a", "replication", "no replica: this server holds the only copy"),
        ("db_backups", "weak-a", "backups", "no pgBackRest configuration"),
        ("etcd_security", "weak-a", "client authentication", "no TLS, and keys are read without a user"),
        ("etcd_security", "weak-a", "peer certificates", "peers are not authenticated"),
        ("security_updates", "weak-a", "unattended-upgrades", "are OFF"),
        ("audit_logging", "weak-a", "auditd", "no audit rules installed"),
        ("audit_logging", "weak-a", "pgaudit", "pgaudit is not loaded"),
        ("object_store", "weak-a", "anonymous access", "get: allowed"),
        ("object_store", "weak-a", "versioning", "versioning off"),
        ("grafana", "weak-a", "oauth", "no OAuth sign-in"),
        ("consent", "weak-a", "analytics-api", "are stored as sent (ignore)"),
    ],
)
def test_each_insecure_setting_fails_where_it_is(report, control, host, target, text):
    failed(report[1], control, host, target, text)


def test_evidence_names_secrets_never_their_values(report):
    text = json.dumps(report[1])
    assert "plain-text-in-the-inventory" not in text  # the inventory variable is named, its value is not
    secret = (ephemeral_dir() / "secrets" / "kafka_admin").read_text().split()[0]
    assert secret not in text
    for path in (ephemeral_dir() / "audit").iterdir():
        assert secret not in path.read_text(errors="replace"), path


def test_an_unreachable_host_is_an_error_for_each_of_its_controls(report):
    gone = [x for x in report[1] if x["host"] == "gone-b"]
    assert {x["control"] for x in gone} == {"tls", "secrets", "security_updates", "audit_logging", "firewall"}
    assert all(x["status"] == "error" and "gone-b is unreachable" in x["reason"] for x in gone), gone


def test_the_reports_meet_their_schemas_and_the_page_shows_the_json_counts(report):
    """JSON and SARIF against their schemas, JUnit parsed, the HTML rendered in headless Chromium with the counts of
    the JSON (scripts/check_audit_report.py, which make audit runs too)."""
    script = ROOT / "scripts" / "check_audit_report.py"
    argv = [sys.executable, str(script), str(ephemeral_dir() / "audit")]
    out = subprocess.run(argv, capture_output=True, check=False, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "fail" in out.stdout


def test_an_unknown_control_in_a_waiver_stops_the_run():
    waiver = {"audit_waivers": [{"control": "firewal", "reason": "typo", "expires": "2099-01-01"}]}
    r = ansible_playbook(ROOT / "playbooks" / "audit.yml", "-e", json.dumps(waiver))
    assert r.returncode != 0
    assert "audit_waivers[0]: unknown control 'firewal'" in r.output


def test_audit_variables_come_from_the_inventory(tmp_path):
    """The finding: the playbook's vars_files outranked the inventory, so no audit variable could be set there. Here
    the inventory limits the controls and names the report; the report lands where audit_report_dir says."""
    extra = tmp_path / "audit-vars.yml"
    extra.write_text("all:\n  vars:\n    audit_controls: [security_updates]\n    audit_report_name: from-inventory\n")
    dest = tmp_path / "reports"
    r = ansible_playbook(
        ROOT / "playbooks" / "audit.yml", "-i", str(extra), "-e", json.dumps({"audit_report_dir": str(dest)})
    )
    report = json.loads((dest / "from-inventory.json").read_text())
    assert {x["control"] for x in report["results"]} == {"security_updates"}, r.output[-1500:]
    assert not (ROOT / "reports" / "audit" / "from-inventory.json").exists()
