"""Keep each role's README and argument_specs in step with its defaults.

The description of each variable in meta/argument_specs.yml is its own comment: after its value on its line
(`name: value  # what it is`), or the comment lines right above it (after a bare `#` that ends its group's comment).
Without one, the comment directly above it in defaults/main.yml (variables listed together under one comment share
it; a unit test allows no shared description). The variables table between the markers
<!-- BEGIN VARIABLES --> and <!-- END VARIABLES --> in roles/<role>/README.md is generated from the role's main entry
point. Every tasks file called with tasks_from gets an entry point of its own name with the main entry point's
options (Ansible looks a spec up by the tasks_from value, so `tasks_from: preflight` is validated by the `preflight`
entry point; callers leave out ".yml"). `python scripts/role_docs.py` rewrites them all; `--check` exits non-zero
naming every file that is out of date (the unit tests run it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- BEGIN VARIABLES -->", "<!-- END VARIABLES -->"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def render(spec: dict, defaults: dict) -> str:
    options = (spec.get("argument_specs", {}).get("main", {}) or {}).get("options", {}) or {}
    lines = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, opt in options.items():
        typ = opt.get("type", "str")
        if typ == "list" and opt.get("elements"):
            typ = f"list of {opt['elements']}"
        if opt.get("required"):
            default = "**required**"
        elif name in defaults:
            value = defaults[name]
            dumped = yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()
            default = f"`{dumped}`"
            if len(default) > 60:
                default = "see defaults/main.yml"
        else:
            default = ""
        desc = opt.get("description", "")
        if isinstance(desc, list):
            desc = " ".join(desc)
        if opt.get("choices"):
            desc += " Choices: " + ", ".join(f"`{c}`" for c in opt["choices"]) + "."
        lines.append(f"| `{name}` | {typ} | {_cell(default)} | {_cell(desc)} |")
    return "\n".join(lines)


def comments(defaults_text: str) -> dict[str, str]:
    """Each top-level variable's description: the comment block above it, or its group's when none."""
    out: dict[str, str] = {}
    pending: list[str] = []
    current = ""
    for line in defaults_text.splitlines():
        if not line.strip() or line == "---":
            pending, current = [], ""
        elif line.startswith("# ---"):
            # A section header describes the variables right under it that have no comment of their own.
            header = line.strip("# -").strip()
            pending, current = ([header[0].upper() + header[1:] + "."] if header else []), ""
        elif line.startswith("#"):
            body = line[1:].strip()
            # Commented-out examples end the prose.
            if re.match(r"^([a-z_][a-z0-9_]*:|-\s|\{)", body) or (pending and pending[-1] is None):
                pending.append(None)
            else:
                pending.append(body)
        else:
            m = re.match(r"^([a-z_][a-z0-9_]*):(.*)$", line)
            if m:
                prose = [p for p in pending if p is not None]
                own = ""
                if "" in prose:
                    # A bare "#" separates the group's comment (for the variables after it that have none of their
                    # own) from this variable's own.
                    cut = len(prose) - 1 - prose[::-1].index("")
                    own = " ".join(prose[cut + 1 :])
                    prose = prose[:cut]
                if prose:
                    # Ansible templates argument specs: a description must not hold Jinja.
                    current = _no_jinja(" ".join(prose))
                    current += "" if current.endswith((".", ")", ":")) else "."
                pending = []
                own = _trailing_comment(m.group(2)) or own
                if own:  # `name: value  # what this one is`: the variable's own description
                    out[m.group(1)] = _no_jinja(own[0].upper() + own[1:] + ("" if own.endswith(".") else "."))
                elif current:
                    out[m.group(1)] = current
    return out


def _no_jinja(text: str) -> str:
    return text.replace("{{", "{ {").replace("}}", "} }")


def _trailing_comment(rest: str) -> str:
    """The comment after a value on its key's line (YAML: a # after whitespace, outside quotes), or ""."""
    quote = ""
    for i, ch in enumerate(rest):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1] in " \t"):
            return rest[i + 1 :].strip()
    return ""


class _IndentDumper(yaml.SafeDumper):
    """Lists indented under their key (yamllint's indentation rule); the main entry point's options, shared by the
    entry points derived from it, written once and referred to by the anchor `main_options`."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)

    def generate_anchor(self, node):
        return "main_options"


def tasks_from_uses() -> set[tuple[str, str]]:
    """(role, tasks file stem) for every include_role/import_role with tasks_from in the playbooks and roles. A role
    named by a template (a loop over roles) stands for every role that has that tasks file."""
    uses: set[tuple[str, str]] = set()
    roles = [r.name for r in (ROOT / "roles").iterdir() if (r / "tasks").is_dir()]
    for f in sorted([*(ROOT / "playbooks").glob("*.yml"), *(ROOT / "roles").glob("*/tasks/*.yml")]):
        name = None
        for line in f.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            m = re.search(r"\bname:\s*\"?([^\"]+?)\"?\s*$", line)
            if m and "analytics.platform." in m.group(1):
                name = m.group(1).split("analytics.platform.", 1)[1]
            m = re.search(r"\btasks_from:\s*(\S+)", line)
            if m and name:
                stem = m.group(1).strip("\"'").removesuffix(".yml")
                uses |= {
                    (r, stem)
                    for r in roles
                    if r == name or ("{{" in name and (ROOT / "roles" / r / "tasks" / f"{stem}.yml").is_file())
                }
                name = None
    return uses


def _first_comment(path: Path) -> str:
    """The opening comment of a tasks file, as one sentence list (its first paragraph)."""
    prose = []
    for line in path.read_text().splitlines()[1:]:
        if not line.startswith("#"):
            break
        body = line[1:].strip()
        if not body or re.match(r"^([a-z_][a-z0-9_]*:|-\s|\{)", body):
            break
        prose.append(body)
    return " ".join(prose).replace("{{", "{ {").replace("}}", "} }")


def derived_entry_points(role: Path, spec: dict, uses: set[tuple[str, str]]) -> None:
    """Every tasks file another play or role calls with tasks_from gets an entry point of that name, so Ansible
    validates the role's variables there too (it looks the spec up by the tasks_from value). Its options are the main
    entry point's; an entry point with options of its own (base: unit_hardening, artifact) is written by hand."""
    specs = spec["argument_specs"]
    main = specs["main"]
    for r, stem in sorted(uses):
        if r != role.name or stem == "main":
            continue
        current = specs.get(stem)
        if current is not None and current.get("options") is not main["options"] and current.get("options"):
            continue  # hand-written
        path = role / "tasks" / f"{stem}.yml"
        summary = _first_comment(path) or f"The role's {stem} tasks (tasks/{stem}.yml)."
        specs[stem] = {
            "short_description": f"tasks_from: {stem}, with the main entry point's variables",
            "description": [summary],
            "options": main["options"],
        }


def _type_of(value) -> str:
    if isinstance(value, str) and "{{" in value:
        return "raw"
    return {bool: "bool", int: "int", float: "float", list: "list", dict: "dict"}.get(type(value), "str")


def sync_specs(role: Path, check: bool, uses: set[tuple[str, str]]) -> list[str]:
    spec_file = role / "meta" / "argument_specs.yml"
    defaults_file = role / "defaults" / "main.yml"
    if not spec_file.is_file() or not defaults_file.is_file():
        return []
    spec = yaml.safe_load(spec_file.read_text()) or {}
    main = spec.setdefault("argument_specs", {}).setdefault("main", {})
    if not main.get("options"):
        main["options"] = {}
    options = main["options"]
    wanted = comments(defaults_file.read_text())
    defaults = yaml.safe_load(defaults_file.read_text()) or {}
    changed = False
    for name, value in defaults.items():
        if name not in options:  # a new variable: add it, typed from its default
            options[name] = {"type": _type_of(value), "description": wanted.get(name, "")}
            if any(w in name for w in ("password", "secret", "passphrase")) or name.endswith(("_pass", "_token")):
                options[name]["no_log"] = True
            changed = True
    for name, opt in options.items():
        if name in wanted and opt.get("description") != wanted[name]:
            opt["description"] = wanted[name]
            changed = True
    derived_entry_points(role, spec, uses)
    text = "---\n" + yaml.dump(spec, Dumper=_IndentDumper, sort_keys=False, width=120, allow_unicode=True)
    if not changed and text == spec_file.read_text():
        return []
    if check:
        rel = spec_file.relative_to(ROOT)
        return [f"{rel}: descriptions differ from defaults/main.yml (run python scripts/role_docs.py)"]
    spec_file.write_text(text)
    return []


def process(role: Path, check: bool) -> list[str]:
    spec_file = role / "meta" / "argument_specs.yml"
    readme = role / "README.md"
    if not spec_file.is_file() or not readme.is_file():
        return [f"{role.name}: missing meta/argument_specs.yml or README.md"]
    spec = yaml.safe_load(spec_file.read_text()) or {}
    defaults_file = role / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.is_file() else {}
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        return [f"{readme.relative_to(ROOT)}: no {BEGIN} ... {END} markers"]
    head, rest = text.split(BEGIN, 1)
    _unused, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{render(spec, defaults)}\n{END}{tail}"
    if new == text:
        return []
    if check:
        return [f"{readme.relative_to(ROOT)}: variables table is out of date (run python scripts/role_docs.py)"]
    readme.write_text(new)
    return []


def main(argv: list[str]) -> int:
    check = "--check" in argv
    problems = []
    uses = tasks_from_uses()
    for role in sorted((ROOT / "roles").iterdir()):
        if (role / "tasks" / "main.yml").is_file():
            problems += sync_specs(role, check, uses)
            problems += process(role, check)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
