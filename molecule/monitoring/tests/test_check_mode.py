"""Check mode on the converged scenario. make test leaves molecule's check step out of this scenario, one of the two
longest; this drill replaces it and asks more: the run finishes and would change nothing on any host."""

from __future__ import annotations

import pytest
from conftest import assert_check_mode_changes_nothing


@pytest.mark.drill  # ~150 s under make test's load: make test-heavy runs it
def test_check_mode_on_the_converged_hosts_fails_nothing_and_would_change_nothing(scenario_dir):
    assert_check_mode_changes_nothing(scenario_dir, {"mon-c", "db-a", "db-b", "api-b"})
