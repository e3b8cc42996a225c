"""Check mode on the converged scenario: what an operator runs before a change (`--check --diff` on the running
estate). make test leaves molecule's check step out of this scenario, one of the two longest; this drill replaces it
and asks more: the run finishes and would change nothing on any host."""

from __future__ import annotations

import pytest
from conftest import ansible_playbook, changed_per_host


@pytest.mark.drill  # ~150 s under make test's load: make test-heavy runs it
def test_check_mode_on_the_converged_hosts_fails_nothing_and_would_change_nothing(scenario_dir):
    r = ansible_playbook(scenario_dir / "converge.yml", "--check", "--diff")
    assert r.returncode == 0, r.output[-3000:]
    changed = changed_per_host(r.output)
    assert set(changed) >= {"mon-c", "db-a", "db-b", "api-b"}, r.output[-1500:]
    assert all(n == 0 for n in changed.values()), f"check mode would change {changed}: {r.output[-3000:]}"
