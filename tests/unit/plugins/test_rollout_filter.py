"""The rollout's batches as its second play runs them (Ansible's serial), and the outage check built on them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.filter.rollout import rollout_batches, rollout_outage

HOSTS = ["app-a", "app-b", "app-c", "sink-a", "sink-b"]
ZONES = {"app-a": {"zone": "zone-a"}, "app-b": {"zone": "zone-b"}, "app-c": {"zone": "zone-c"}}
ZONES |= {"sink-a": {"zone": "zone-a"}, "sink-b": {"zone": "zone-b"}}


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (1, [["app-a"], ["app-b"], ["app-c"], ["sink-a"], ["sink-b"]]),
        ("2", [["app-a", "app-b"], ["app-c", "sink-a"], ["sink-b"]]),
        ("34%", [["app-a"], ["app-b"], ["app-c"], ["sink-a"], ["sink-b"]]),  # int(1.7) = 1, as Ansible rounds
        ("40%", [["app-a", "app-b"], ["app-c", "sink-a"], ["sink-b"]]),
        ("10%", [["app-a"], ["app-b"], ["app-c"], ["sink-a"], ["sink-b"]]),  # never below one host
        ("100%", [HOSTS]),
        ("zone", [["app-a", "sink-a"], ["app-b", "sink-b"], ["app-c"]]),
    ],
)
def test_batches_follow_ansible_serial(batch, expected):
    assert rollout_batches(HOSTS, batch, ZONES) == expected


@pytest.mark.parametrize("batch", ["0", "half", "101%", "zones", ""])
def test_a_bad_batch_is_an_error(batch):
    with pytest.raises(AnsibleFilterError, match="batch must be a number of hosts"):
        rollout_batches(HOSTS, batch, ZONES)


def test_zone_batches_need_every_hosts_zone():
    with pytest.raises(AnsibleFilterError, match="host 'app-c' has no zone"):
        rollout_batches(HOSTS, "zone", {h: v for h, v in ZONES.items() if h != "app-c"})


def test_an_outage_is_a_batch_that_restarts_every_serving_api_host():
    api = ["app-a", "app-b", "app-c"]
    assert rollout_outage([["app-a", "app-b"], ["app-c"]], api, api) == []
    assert rollout_outage([HOSTS], api, api) == HOSTS
    # A serving host whose API does not restart keeps ingest going, whatever its batch.
    assert rollout_outage([HOSTS], ["app-a", "app-b"], api) == []
    # One API host: a restart is an outage whatever the batch, so there is nothing to refuse.
    assert rollout_outage([["app-a"]], ["app-a"], ["app-a"]) == []
    assert rollout_outage([["app-a", "app-b"]], ["app-a", "app-b"], []) == []
