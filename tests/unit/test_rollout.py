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
        (["-e", "rollout_all=maybe"], "rollout_all and rollout_allow_outage true or false"),
        (["-e", "rollout_allow_outage=yes please"], "rollout_all and rollout_allow_outage true or false"),
    ],
)
def test_a_bad_setting_stops_the_rollout_on_the_controller(playbook, extra, message):
    r = playbook(ROOT / "inventories" / "staging", ROOT / "playbooks" / "rollout.yml", *extra)
    assert r.returncode != 0, r.output[-2000:]
    assert message in " ".join(r.output.split()), r.output[-2000:]
    assert "Find the services marked for the rollout" not in r.output


# Hosts on this machine (connection local): rollout_all marks every catalogue service of a host, so the check sees
# the API restarting on both API hosts, and a batch that holds both is refused before the second play (no restart).
OUTAGE_INVENTORY = """
all:
  vars: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
  children:
    nginx: {hosts: {edge-a: {zone: zone-a}}}
    analytics_api: {hosts: {api-a: {zone: zone-a}, api-b: {zone: ZONE}}}
"""


@pytest.mark.parametrize(("batch", "zone_b"), [("2", "zone-b"), ("100%", "zone-b"), ("zone", "zone-a")])
def test_a_batch_of_every_api_host_is_refused_before_anything_restarts(playbook, tmp_path, batch, zone_b):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(OUTAGE_INVENTORY.replace("ZONE", zone_b))
    settings = ("-e", "rollout_all=true", "-e", f"rollout_batch={batch}")
    r = playbook(inventory, ROOT / "playbooks" / "rollout.yml", *settings)
    assert r.returncode != 0, r.output[-2000:]
    out = " ".join(r.output.split())
    assert f"rollout_batch={batch} would restart the API on api-a, api-b in one batch" in out, r.output[-2000:]
    assert "Restart them, a batch of hosts at a time" not in r.output
