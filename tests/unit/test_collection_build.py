"""The built collection tarball carries the collection and nothing else: no lab, no tests, no service sources (the
roles install the services from wheels), no caches."""

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a user of the collection gets: its content, its docs and what ansible-builder reads.
ALLOWED_TOP = {
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "LICENSE",
    "site.yml",
    "requirements.yml",
    "requirements.txt",
    "bindep.txt",
    "meta",
    "roles",
    "plugins",
    "playbooks",
    "changelogs",
    "docs",
    "inventories",
}
NEVER = ("__pycache__", ".egg-info", ".hypothesis", ".pytest_cache", "inventories/lab")


def test_build_holds_only_collection_content(tmp_path):
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
    for needed in ("plugins/modules/validate_placement.py", "site.yml", "playbooks/site.yml", "meta/runtime.yml"):
        assert needed in names
    assert sorted({n.split("/")[0] for n in names} - ALLOWED_TOP) == []
    assert [n for n in names if any(bad in n for bad in NEVER)] == []
