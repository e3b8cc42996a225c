"""Every module documents its attributes the way the ecosystem expects: the action_common_attributes fragment, and
check mode, diff mode and platform declared; check mode as the module really supports it."""

import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted((ROOT / "plugins" / "modules").glob("*.py"))


def documentation(path: Path, section: str = "DOCUMENTATION") -> dict:
    return yaml.safe_load(re.search(rf'{section} = r"""\n(.*?)\n"""', path.read_text(), re.S).group(1))


def attributes_of(doc: dict) -> dict:
    """The module's attributes with those of this collection's doc fragments it extends (as ansible-doc merges them)."""
    merged = {}
    for fragment in doc.get("extends_documentation_fragment", []):
        if fragment.startswith("analytics.platform."):
            name, _dot, section = fragment.removeprefix("analytics.platform.").partition(".")
            path = ROOT / "plugins" / "doc_fragments" / (name + ".py")
            merged |= (documentation(path, section.upper() or "DOCUMENTATION") or {}).get("attributes", {})
    return merged | doc.get("attributes", {})


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_module_declares_its_attributes(path):
    doc = documentation(path)
    assert "ansible.builtin.action_common_attributes" in doc.get("extends_documentation_fragment", [])
    attributes = attributes_of(doc)
    assert set(attributes) >= {"check_mode", "diff_mode", "platform"}
    for name in ("check_mode", "diff_mode"):
        assert attributes[name]["support"] in {"full", "partial", "none"}, name
    assert attributes["platform"]["platforms"]
    source = path.read_text()
    if "supports_check_mode=True" in source:
        assert attributes["check_mode"]["support"] in {"full", "partial"}
    elif "AnsibleModule(" in source:
        assert attributes["check_mode"]["support"] == "none"
    # diff_mode only where the module returns a before/after diff for --diff
    if attributes["diff_mode"]["support"] != "none":
        assert re.search(r"diff=\{|diff = \{", source), "diff_mode declared but the module returns no diff"


def descriptions(doc: dict, where: str = ""):
    """Every description in the document (the module's, its options' and their suboptions'), with where it is."""
    yield where or "module", doc.get("description")
    for name, option in (doc.get("options") or doc.get("suboptions") or {}).items():
        yield from descriptions(option, f"{where}.{name}" if where else name)


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_every_description_is_text(path):
    """A "key: value" line inside a description parses as a mapping: ansible-doc then refuses the whole page."""
    for where, text in descriptions(documentation(path)):
        lines = text if isinstance(text, list) else [text]
        assert all(isinstance(line, str) for line in lines), f"{path.stem} {where}: {lines}"


def test_action_groups_match_the_modules_membership():
    """meta/runtime.yml's action_groups (module_defaults groups) and the modules' action_group attribute agree."""
    groups = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]
    declared = {}
    for path in MODULES:
        for group in attributes_of(documentation(path)).get("action_group", {}).get("membership", []):
            declared.setdefault(group.removeprefix("analytics.platform."), []).append(path.stem)
    assert {g: sorted(m) for g, m in groups.items()} == declared
    assert set(groups) == {"kafka", "s3"}


def _filters() -> list[tuple[str, str]]:
    """(plugin file, filter name) of every filter the collection's filter plugins export."""
    out = []
    for path in sorted((ROOT / "plugins" / "filter").glob("*.py")):
        module = importlib.import_module(f"ansible_collections.analytics.platform.plugins.filter.{path.stem}")
        out.extend((path.stem, name) for name in sorted(module.FilterModule().filters()))
    return out


@pytest.mark.parametrize(("plugin", "name"), _filters(), ids=[n for _p, n in _filters()])
def test_every_filter_has_documentation_ansible_doc_can_read(plugin, name):
    """ansible-doc reads a filter's documentation from plugins/filter/<name>.yml: a YAML error there is found here."""
    doc = yaml.safe_load((ROOT / "plugins" / "filter" / f"{name}.yml").read_text())
    assert doc["DOCUMENTATION"]["name"] == name, plugin
    assert doc["DOCUMENTATION"]["short_description"] and "_input" in doc["DOCUMENTATION"]["options"]
    assert "_value" in doc["RETURN"]
