"""inventory_secrets: the shipped inventories pass; a plain-text secret is named by file and variable, not value."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ansible_collections.analytics.platform.plugins.modules import inventory_secrets

ROOT = Path(__file__).resolve().parents[3]


def audit(run_module, *paths):
    out = run_module(inventory_secrets, {"paths": [str(p) for p in paths]})
    assert not out.failed, out.result
    [r] = out.result["audit"]
    return r


@pytest.mark.parametrize("name", ["lab", "staging", "production"])
def test_shipped_inventories_pass(run_module, name):
    r = audit(run_module, ROOT / "inventories" / name)
    assert r["status"] == "pass" and r["host"] == "inventory", r
    assert r["evidence"]["files_read"] >= 2


def test_plain_text_secret_fails_naming_file_and_variable_not_value(run_module, tmp_path):
    inv = tmp_path / "staging"
    shutil.copytree(ROOT / "inventories" / "staging", inv)
    (inv / "group_vars" / "kafka.yml").write_text(
        "kafka_admin_password: hunter2-in-plain-text\n"
        "kafka_client_passwords:\n  pg-sink: also-plain\n"
        "kafka_heap_size: 1g\n"
        "delta_writer_s3_access_key: delta-writer\n"
        "grafana_oauth_client_secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n"
    )
    r = audit(run_module, inv)
    assert r["status"] == "fail"
    assert {(Path(f["file"]).name, f["variable"]) for f in r["evidence"]["plain_text"]} == {
        ("kafka.yml", "kafka_admin_password"),
        ("kafka.yml", "kafka_client_passwords.pg-sink"),
    }
    assert "hunter2" not in str(r)


def test_vault_encrypted_files_are_skipped_and_nothing_readable_is_an_error(run_module, tmp_path):
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "group_vars" / "all" / "vault.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    assert audit(run_module, tmp_path)["status"] == "error"


def test_paths_named_like_secrets_are_not_secrets(tmp_path):
    """lab_secret_dir, a *_key_file or *_password_file holds where a secret is, not the secret itself."""
    from ansible_collections.analytics.platform.plugins.modules.inventory_secrets import plain_text_secrets

    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        "lab_secret_dir: /tmp/secrets\nmy_password_file: /etc/x\ntls_key_path: /etc/k\ndb_password: hunter2hunter2\n"
    )
    found, _unused = plain_text_secrets(
        [str(tmp_path)],
        r"(password|passphrase|secret|token|_key$|_keys$)",
        r"(access_key|_key_url|_key_checksum|_key_group|_file|_path|_dir)$",
    )
    assert [f["variable"] for f in found] == ["db_password"]
