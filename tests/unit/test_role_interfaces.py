"""Every role's interface is consistent: defaults/main.yml and meta/argument_specs.yml mirror each other key for key,
public variables carry the role's name, and the README's variables table is generated from the specs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())


def load(path):
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def test_there_are_roles():
    assert ROLES, "no roles found"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_and_argument_specs_mirror_each_other(role):
    defaults = load(role / "defaults" / "main.yml")
    spec = load(role / "meta" / "argument_specs.yml")
    options = spec["argument_specs"]["main"]["options"]
    public_defaults = {k for k in defaults if not k.startswith("__")}
    required = {k for k, v in options.items() if v.get("required")}
    assert public_defaults - set(options) == set(), "in defaults/main.yml but not in argument_specs"
    assert set(options) - public_defaults - required == set(), "in argument_specs but not in defaults/main.yml"
    assert required & public_defaults == set(), "required options must not have defaults"
    for name, opt in options.items():
        assert name.startswith(role.name + "_"), f"{name} is not prefixed with {role.name}_"
        assert opt.get("description"), f"{name} has no description"
        assert opt.get("type"), f"{name} has no type"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_default_types_match_specs(role):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    pytypes = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict, "path": str}
    pytypes["raw"] = object
    for name, value in defaults.items():
        if name.startswith("__") or value is None or (isinstance(value, str) and "{{" in value):
            continue
        want = pytypes[options[name]["type"]]
        assert isinstance(value, want), f"{name}: default {value!r} is not a {options[name]['type']}"
        if "choices" in options[name]:  # for a list, as Ansible checks them: each element
            items = value if isinstance(value, list) else [value]
            assert all(v in options[name]["choices"] for v in items), f"{name}: default {value!r} not in choices"


def test_readme_variable_tables_are_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "role_docs.py"), "--check"], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()


def test_every_tasks_from_is_validated_by_an_entry_point():
    """Ansible looks a role's argument spec up by the tasks_from value as written: `tasks_from: preflight.yml` finds
    no entry point named `preflight` and validates nothing. Every call names its entry point without ".yml", and the
    role has a spec for it."""
    import re

    calls = []
    for f in sorted([*(ROOT / "playbooks").glob("*.yml"), *(ROOT / "roles").glob("*/tasks/*.yml")]):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            m = re.search(r"^\s*tasks_from:\s*\"?([^\"\s]+)", line)
            if m:
                calls.append((f"{f.relative_to(ROOT)}:{n}", m.group(1)))
    assert calls, "no tasks_from found"
    for where, value in calls:
        assert not value.endswith((".yml", ".yaml")), f"{where}: tasks_from {value} names no entry point"
    sys.path.insert(0, str(ROOT / "scripts"))
    import role_docs

    uses = role_docs.tasks_from_uses()
    assert len(uses) >= len({v for _w, v in calls}), uses
    for role, stem in uses:
        specs = load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
        assert stem in specs, f"roles/{role}: tasks_from {stem} has no entry point in meta/argument_specs.yml"
        assert specs[stem].get("options"), f"roles/{role}: entry point {stem} validates no option"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_each_option_has_a_description_of_its_own(role):
    """A description copied from a group comment says nothing about the option itself (role_docs.py takes a
    variable's own trailing comment first)."""
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    seen: dict[str, str] = {}
    for name, opt in options.items():
        desc = opt["description"] if isinstance(opt["description"], str) else " ".join(opt["description"])
        assert desc not in seen, f"{name} and {seen[desc]} share one description: {desc!r}"
        seen[desc] = name
