"""The audit's proof both ways, per control: where `make test` saw it FAIL (the insecure twin, molecule/insecure) and
where it saw it PASS (the hardened scenarios), from the reports the scenarios keep in reports/molecule/audit-*.json.

A control that never failed on the insecure twin, or never passed anywhere without a failure or error beside it,
makes this exit 1: an audit control that cannot fail, or cannot pass, proves nothing.
    python scripts/audit_matrix.py [reports/molecule]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.analytics.platform.plugins.module_utils.audit import CATALOGUE  # noqa: E402

INSECURE = "insecure"


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "reports" / "molecule"
    reports = {
        p.stem.removeprefix("audit-"): json.loads(p.read_text())["results"] for p in sorted(folder.glob("audit-*.json"))
    }
    if INSECURE not in reports:
        print(f"audit matrix: no report of the {INSECURE} scenario in {folder}", file=sys.stderr)
        return 1
    rows, missing = [], []
    for control, c in CATALOGUE.items():
        fails = sorted(
            {
                f"{r['host']}: {r['target'] or '-'}"
                for r in reports[INSECURE]
                if r["control"] == control and r["status"] == "fail"
            }
        )
        passes = []
        for scenario, results in reports.items():
            mine = [r for r in results if r["control"] == control]
            if (
                scenario != INSECURE
                and mine
                and all(r["status"] in ("pass", "not_applicable") for r in mine)
                and any(r["status"] == "pass" for r in mine)
            ):
                passes.append(f"{scenario} ({sum(r['status'] == 'pass' for r in mine)})")
        rows.append((control, c["title"], len(fails), ", ".join(passes) or "-"))
        if not fails or not passes:
            missing.append(control)
    width = max(len(r[0]) for r in rows)
    print(f"{'control':<{width}}  fails on the insecure twin  passes on (entries)")
    for control, _title, fails, passes in rows:
        print(f"{control:<{width}}  {fails:>4} entries               {passes}")
    if missing:
        print(f"audit matrix: no proof both ways for: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"audit matrix: all {len(rows)} controls fail on the insecure twin and pass on a hardened scenario")
    return 0


if __name__ == "__main__":
    sys.exit(main())
