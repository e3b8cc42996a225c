"""The built collection tarball carries the collection and nothing lab-only."""

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB_ONLY = (
    "lab/",
    "molecule/",
    "scripts/",
    "tests/",
    "artifacts/",
    "build/",
    ".ci/",
    "inventories/lab/",
    "collections/",
)


def test_build_excludes_lab_only_files(tmp_path):
    galaxy = Path(sys.executable).with_name("ansible-galaxy")
    subprocess.run(
        [str(galaxy), "collection", "build", "--force", "--output-path", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (tarball,) = tmp_path.glob("analytics-platform-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names  # replaced by MANIFEST.json
    assert "MANIFEST.json" in names
    assert "plugins/modules/validate_placement.py" in names
    assert "site.yml" in names
    leaked = [n for n in names if n.startswith(LAB_ONLY) or n in {"Makefile", "pyproject.toml"}]
    assert leaked == []
