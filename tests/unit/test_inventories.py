"""The shipped inventories: each one's placement survives the loss of a zone, and nothing secret is in plain text."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.analytics.platform.plugins.module_utils.placement import check_placement

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = ["lab", "staging", "production"]
# Variables whose values are secrets: they must come from the vault (vault_*) or the environment.
SECRET = re.compile(r"(password|passphrase|secret|_key$|_keys$|token)")
NOT_SECRET = re.compile(r"(access_key|_key_url|_key_checksum|ssh_private_key_file)$")


def inventory(name: str) -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    vault_pass = ROOT / ".lab" / name / "vault-pass"  # the lab's generated vault, once `make lab-secrets` ran
    if vault_pass.is_file():
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(vault_pass)
    out = subprocess.run(
        ["ansible-inventory", "-i", str(ROOT / "inventories" / name), "--list"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return json.loads(out)


@pytest.mark.parametrize("name", INVENTORIES)
def test_placement_survives_the_loss_of_any_zone(name):
    inv = inventory(name)
    groups = {g: v.get("hosts", []) for g, v in inv.items() if g != "_meta"}

    # ansible-inventory lists hosts under their deepest group only: expand the parents.
    def hosts_of(group):
        found = set(inv.get(group, {}).get("hosts", []))
        for child in inv.get(group, {}).get("children", []):
            found |= hosts_of(child)
        return found

    groups = {g: sorted(hosts_of(g)) for g in groups}
    zone_of = {h: v.get("zone") for h, v in inv["_meta"]["hostvars"].items()}
    report = check_placement(groups, zone_of)
    assert report.ok, report.errors


def _vars_files(name: str):
    for path in sorted((ROOT / "inventories" / name).rglob("*.yml")):
        if path.name == "vault.yml":  # the lab's generated, encrypted vault
            continue
        yield path


def _walk(data, prefix=""):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, str(k))
            yield str(k), v
    elif isinstance(data, list):
        for v in data:
            yield from _walk(v, prefix)


@pytest.mark.parametrize("name", INVENTORIES)
def test_no_secret_in_plain_text(name):
    for path in _vars_files(name):
        for key, value in _walk(yaml.safe_load(path.read_text()) or {}):
            if not SECRET.search(key) or NOT_SECRET.search(key) or isinstance(value, (dict, list)):
                continue
            assert isinstance(value, str) and re.search(r"\{\{.*(vault_|lookup\(.ansible\.builtin\.env)", value), (
                f"{path.relative_to(ROOT)}: {key} must come from the vault or the environment"
            )


@pytest.mark.parametrize("name", ["staging", "production"])
def test_vault_example_names_every_vault_variable_used(name):
    used = set()
    for path in _vars_files(name):
        used |= set(re.findall(r"\b(vault_[a-z0-9_]+)", path.read_text()))
    example = yaml.safe_load((ROOT / "inventories" / name / "group_vars" / "all" / "vault.yml.example").read_text())
    assert used - {"vault_yml"} <= set(example), sorted(used - set(example))
