"""The one strong-secret check every role's preflight uses (plugins/test/secrets.py)."""

import re
from pathlib import Path

import pytest
import yaml
from ansible_collections.analytics.platform.plugins.module_utils.secrets import KNOWN_WEAK, weakness
from ansible_collections.analytics.platform.plugins.test.secrets import TestModule as SecretTests

ROOT = Path(__file__).resolve().parents[3]
strong_secret = SecretTests().tests()["strong_secret"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "missing"),
        ("", "missing"),
        (12345678901234567890, "missing"),
        ("short", "shorter than 16 characters"),
        ("MinioAdmin", "shorter than 16 characters"),
        ("PasswordPassword", "a well-known default or weak value"),
        ("1234567890123456", "a well-known default or weak value"),
        ("x" * 40, "one character repeated"),
    ],
)
def test_weak_secrets_are_refused_with_the_reason(value, why):
    assert weakness(value) == why
    assert not strong_secret(value)


def test_a_random_secret_passes_and_length_is_configurable():
    assert strong_secret("Kx9aa7Lm2pQr5tZw")
    assert not strong_secret("Kx9aa7Lm2pQr5tZw", 32)
    assert strong_secret("Kx9aa7Lm2pQr5tZw" * 2, "32")  # as a template passes it


def test_known_defaults_are_refused_whatever_their_length_requirement():
    for value in KNOWN_WEAK:
        assert not strong_secret(value, 1), value


def test_no_role_keeps_its_own_list_of_weak_values():
    """The roles check secrets with the test plugin; a role's private list would drift from the shared one."""
    for path in sorted(ROOT.glob("roles/*/vars/main.yml")):
        names = yaml.safe_load(path.read_text()) or {}
        assert not [n for n in names if "weak" in n], path
    # A secret compared with a list or a length of its own is a check that drifts from the shared one.
    own_check = re.compile(r"(password|secret|passphrase|_key)\S* (\| lower not in|\| length >=|!=)")
    for path in sorted(ROOT.glob("roles/*/tasks/preflight.yml")):
        found = [line.strip() for line in path.read_text().splitlines() if own_check.search(line)]
        assert found == [], f"{path.relative_to(ROOT)}: {found}"
