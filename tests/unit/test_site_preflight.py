"""site.yml refuses a broken inventory before it touches any host: a host without a zone, a missing required group,
a vault that will not decrypt. The example hosts are documentation addresses nobody answers on, so reaching any
host-facing play would show up as an unreachable host instead of the expected message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HOST_PLAY = "PLAY [Preflight - every role's checks"


@pytest.fixture
def run_site(playbook):
    def run(inventory: Path, *args: str) -> subprocess.CompletedProcess:
        return playbook(inventory, ROOT / "site.yml", *args)

    return run


@pytest.fixture
def staging(tmp_path) -> Path:
    """A copy of the staging example inventory to break."""
    inv = tmp_path / "staging"
    shutil.copytree(ROOT / "inventories" / "staging", inv)
    return inv


def edit_hosts(inv: Path, change) -> None:
    path = inv / "hosts.yml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_host_without_zone_is_named_before_any_host_is_touched(staging, run_site):
    def add_zoneless_broker(data):
        data["all"]["children"]["platform"]["children"]["kafka"]["hosts"]["kafka-4.stg.example.com"] = {
            "ansible_host": "192.0.2.119"
        }

    edit_hosts(staging, add_zoneless_broker)
    r = run_site(staging)
    assert r.returncode != 0
    assert "host 'kafka-4.stg.example.com' has no zone: set the variable 'zone' for it" in r.output
    assert HOST_PLAY not in r.output


def test_missing_required_group_is_named_before_any_host_is_touched(staging, run_site):
    edit_hosts(staging, lambda data: data["all"]["children"]["platform"]["children"].pop("kafka"))
    r = run_site(staging)
    assert r.returncode != 0
    assert "group 'kafka' is missing or empty" in r.output
    assert HOST_PLAY not in r.output


def test_vault_that_does_not_decrypt_is_named_before_any_host_is_touched(staging, tmp_path, run_site):
    right, wrong = tmp_path / "right-pass", tmp_path / "wrong-pass"
    right.write_text("the password the vault was encrypted with\n")
    wrong.write_text("some other password entirely\n")
    vault = staging / "group_vars" / "all" / "vault.yml"
    vault.write_text("vault_postgresql_admin_password: not-used-here\n")
    subprocess.run(
        ["ansible-vault", "encrypt", "--vault-password-file", str(right), str(vault)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    r = run_site(staging, "--vault-password-file", str(wrong))
    assert r.returncode != 0
    errors = [line for line in r.output.splitlines() if line.startswith("[ERROR]")]
    assert errors == [
        f"[ERROR]: vault file {vault} does not decrypt with the vault password given (--vault-password-file,"
        " --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE): Decryption failed (no vault secrets were found that could"
        " decrypt)."
    ], r.output[-1500:]
    assert "TASK [" not in r.output  # not even the controller-side preflight ran a task

    ok = run_site(staging, "--vault-password-file", str(right), "--list-hosts")
    assert ok.returncode == 0, ok.output[-1500:]  # the right password passes the check
