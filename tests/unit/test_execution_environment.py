"""What an execution environment needs is declared where ansible-builder reads it, and covers what the modules import;
the whole platform playbook is callable by its FQCN."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Import name -> the distribution requirements.txt must list (packages ansible-core itself brings are not listed).
DISTRIBUTION = {"confluent_kafka": "confluent-kafka", "boto3": "boto3", "botocore": "boto3", "psycopg2": "psycopg"}
WITH_ANSIBLE_CORE = {"yaml", "jinja2", "cryptography"}


def third_party_imports() -> set[str]:
    found = set()
    for path in (ROOT / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"ansible", "ansible_collections", "__future__"} - WITH_ANSIBLE_CORE


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The built tarball installed as a user would install it (not the repository's own link)."""
    out = tmp_path_factory.mktemp("build")
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", "--output-path", out], cwd=ROOT, check=True, capture_output=True
    )
    (tarball,) = out.glob("analytics-platform-*.tar.gz")
    dest = tmp_path_factory.mktemp("collections")
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "install", "--no-deps", "--force", "-p", dest, tarball],
        check=True,
        capture_output=True,
        cwd=dest,  # not the repository: its ansible.cfg finds the collection "installed" already
    )
    return dest


def test_every_imported_package_is_a_declared_requirement():
    declared = {
        line.split("#")[0].split(">=")[0].split("==")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    }
    imports = third_party_imports()
    assert {"confluent_kafka", "boto3", "deltalake"} <= imports  # the scan sees the modules' imports
    missing = sorted(i for i in imports if DISTRIBUTION.get(i, i) not in declared)
    assert missing == [], f"imported by plugins/ but not in requirements.txt: {missing}"


def test_ansible_builder_collects_the_requirements_from_the_installed_collection(installed, tmp_path):
    definition = tmp_path / "execution-environment.yml"
    definition.write_text(
        "version: 3\n"
        "images: {base_image: {name: localhost/ee-base:latest}}\n"
        "dependencies:\n"
        "  python_interpreter: {package_system: python3, python_path: /usr/bin/python3}\n"
        "  ansible_core: {package_pip: ansible-core==2.19.14}\n"
        "  ansible_runner: {package_pip: ansible-runner}\n"
        "  galaxy: {collections: [{name: analytics.platform}]}\n"
    )
    context = tmp_path / "context"
    subprocess.run(
        [BIN / "ansible-builder", "create", "-f", definition, "-c", context], check=True, capture_output=True
    )
    assert "analytics.platform" in (context / "_build" / "requirements.yml").read_text()
    # Declared in meta/ (ansible-builder also falls back to these two names at the root, so the file is checked too).
    meta = yaml.safe_load(
        (installed / "ansible_collections/analytics/platform/meta/execution-environment.yml").read_text()
    )
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    # The script the image build runs after installing the collections, run on the installed tarball.
    r = subprocess.run(
        [sys.executable, context / "_build" / "scripts" / "introspect.py", "introspect", installed],
        check=True,
        capture_output=True,
        text=True,
    )
    for requirement in ("confluent-kafka>=", "boto3>=", "deltalake>=", "openssh-client [platform:dpkg]"):
        assert requirement in r.stdout, r.stdout


def test_site_is_callable_by_fqcn(installed):
    env = {"PATH": str(BIN), "ANSIBLE_COLLECTIONS_PATH": str(installed), "HOME": str(installed)}
    r = subprocess.run(
        [
            BIN / "ansible-playbook",
            "-i",
            ROOT / "inventories" / "production",
            "analytics.platform.site",
            "--syntax-check",
        ],
        env=env,
        capture_output=True,
        check=False,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{installed}/ansible_collections/analytics/platform/playbooks/site.yml" in r.stdout
