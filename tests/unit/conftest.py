"""Make the collection importable as ansible_collections.analytics.platform (the repo root is the collection)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def playbook():
    """Run ansible-playbook with the repository's ansible.cfg and no vault password (the tests' inventories carry no
    vault): playbook(inventory, play, *args, cwd=..., env=..., timeout=...) -> CompletedProcess with .output."""

    def run(inventory, play, *args, cwd=ROOT, env=None, timeout=300) -> subprocess.CompletedProcess:
        environ = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **(env or {}))
        environ.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
        argv = ["ansible-playbook", "-i", str(inventory), str(play), *args]
        r = subprocess.run(argv, capture_output=True, check=False, text=True, env=environ, cwd=cwd, timeout=timeout)
        r.output = r.stdout + r.stderr
        return r

    return run


def write_role_defaults(path, exclude=()):
    """Every role's defaults and vars in one vars file, without the variables in `exclude` (those the test's inventory
    sets: roles' defaults rank below the inventory, a play's vars_files would not). For plays that render what the
    roles derive, on the controller, without running a role."""
    merged = {}
    for f in sorted(ROOT.glob("roles/*/defaults/main.yml")) + sorted(ROOT.glob("roles/*/vars/main.yml")):
        merged.update(yaml.safe_load(f.read_text()) or {})
    for var in exclude:
        merged.pop(var, None)
    merged["pki_cert_path"] = "/etc/analytics-platform/pki/host.crt"  # pki's are paths built from its own defaults
    path.write_text(yaml.safe_dump(merged, width=1000))
