"""playbooks/rollout.yml's settings are checked on the controller before any host is asked anything (the staging
example's hosts are documentation addresses: a play that went past the check would fail on them with another line)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["-e", "rollout_batch=0"],
            "rollout_batch a number of hosts, a percentage such as 1 or 34%, or zone (got '0')",
        ),
        (["-e", "rollout_batch=half"], "(got 'half')"),
        (["-e", "rollout_batch=zones"], "a percentage such as 1 or 34%, or zone (got 'zones')"),
        (["-e", "rollout_services=nginx"], "rollout_services must name services of analytics-api"),
        (["-e", "rollout_ready=soon"], "rollout_ready ready or live (got 'soon')"),
        (["-e", "rollout_ready_timeout=1m"], "rollout_ready_timeout whole seconds (got '1m')"),
        (["-e", "rollout_all=maybe"], "rollout_all true or false"),
    ],
)
def test_a_bad_setting_stops_the_rollout_on_the_controller(playbook, extra, message):
    r = playbook(ROOT / "inventories" / "staging", ROOT / "playbooks" / "rollout.yml", *extra)
    assert r.returncode != 0, r.output[-2000:]
    assert message in " ".join(r.output.split()), r.output[-2000:]
    assert "Find the services marked for the rollout" not in r.output
