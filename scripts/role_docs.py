#!/usr/bin/env python3
"""Keep each role's README in step with its meta/argument_specs.yml.

The variables table between the markers <!-- BEGIN VARIABLES --> and <!-- END VARIABLES --> in roles/<role>/README.md
is generated from the role's main entry point. `python scripts/role_docs.py` rewrites the tables;
`--check` exits non-zero naming every README that is out of date (the unit tests run it).
"""

from __future__ import annotations

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
            default = f"`{yaml.safe_dump(value, default_flow_style=True, width=1000).strip()}`"
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
    _, tail = rest.split(END, 1)
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
    for role in sorted((ROOT / "roles").iterdir()):
        if (role / "tasks" / "main.yml").is_file():
            problems += process(role, check)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
