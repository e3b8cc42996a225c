"""A secret every deployment must set has no default: its role's argument spec marks it required, and Ansible refuses
to run the role (its main entry point or its preflight) without it, naming it, before the role's first task."""

from __future__ import annotations

import json

import pytest
import yaml

from .conftest import ROOT

REQUIRED = {}
for _f in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
    _opts = yaml.safe_load(_f.read_text())["argument_specs"]["main"]["options"]
    _req = sorted(k for k, v in _opts.items() if v.get("required"))
    if _req:
        REQUIRED[_f.parent.parent.name] = _req

# Ansible's own validation (the task a role's entry point starts with) against each role's spec, with nothing provided.
# Only the validation runs: no role task is executed on this machine.
PLAY = """
- name: Each role's entry point without its required options
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Validate with nothing provided
      ansible.builtin.validate_argument_spec:
        argument_spec: "{{{{ (lookup('ansible.builtin.file', '{root}/roles/' ~ item ~ '/meta/argument_specs.yml')
                           | from_yaml).argument_specs['{entry}'].options }}}}"
        provided_arguments: {{}}
      loop: {roles}
      ignore_errors: true
"""


def test_the_secrets_without_a_default_are_required():
    # The platform's secrets that every host of their role needs and no other variable defines: none of them can
    # silently default to "".
    # (The clients' credentials are not among them: they default to where their server defines them.)
    for role, names in {
        "kafka": ["kafka_admin_password"],
        "grafana": ["grafana_admin_password", "grafana_secret_key"],
        "minio": ["minio_root_user", "minio_root_password"],
        "pki": ["pki_ca_passphrase"],
        "seaweedfs": ["seaweedfs_jwt_key"],
    }.items():
        assert set(names) <= set(REQUIRED.get(role, [])), role


@pytest.mark.parametrize("entry", ["main", "preflight"])
def test_a_role_without_its_required_options_is_refused_naming_them(tmp_path, playbook, entry):
    roles = [r for r in REQUIRED if r != "base"]  # base's required options belong to its helper entry points
    (tmp_path / "play.yml").write_text(PLAY.format(root=ROOT, roles=json.dumps(roles), entry=entry))
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n      ansible_python_interpreter: python3\n")
    r = playbook(tmp_path / "hosts.yml", tmp_path / "play.yml", cwd=tmp_path)
    for role in roles:
        message = f"missing required arguments: {', '.join(REQUIRED[role])}"
        assert message in r.output, f"{role} ({entry}): {message!r} not in the output"
    assert "ok: [localhost] (item=" not in r.output, "a role accepted no arguments at all"
