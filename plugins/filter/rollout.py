# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The batches playbooks/rollout.yml restarts, worked out before any host is restarted, so the play can refuse a
batch that would take every API host out of the load balancers at once."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError


def _size(item, count: int) -> int:
    """One serial entry as Ansible reads it: a number, or a percentage of the hosts (rounded down, at least 1)."""
    text = str(item).strip()
    if text.endswith("%"):
        return int(int(text[:-1]) / 100.0 * count) or 1
    return int(text)


def rollout_batches(hosts, batch=1, hostvars=None):
    """The hosts of each batch, in order, as the rollout's second play runs them: rollout_batch hosts at a time (a
    number or a percentage of the waiting hosts), or with 'zone' the waiting hosts of one zone at a time (zones, then
    hosts, in name order)."""
    hosts = list(hosts or [])
    text = str(batch).strip()
    if text == "zone":
        if hostvars is None:
            raise AnsibleFilterError("rollout_batches: batch 'zone' needs hostvars (the hosts' zone variables)")
        zoned = []
        for h in hosts:
            try:
                zoned.append((str(hostvars[h]["zone"]), h))
            except KeyError:
                raise AnsibleFilterError(f"host '{h}' has no zone: rollout_batch=zone needs one on each host") from None
        batches = {}
        for zone, h in sorted(zoned):
            batches.setdefault(zone, []).append(h)
        return list(batches.values())
    if not re.fullmatch(r"[1-9][0-9]*%?", text) or (text.endswith("%") and int(text[:-1]) > 100):
        raise AnsibleFilterError(
            f"rollout_batches: batch must be a number of hosts, a percentage or zone (got '{text}')"
        )
    size = _size(text, len(hosts))
    return [hosts[i : i + size] for i in range(0, len(hosts), size)]


def rollout_outage(batches, restarting, serving):
    """The first batch that restarts every host of `serving` (the API hosts behind the load balancers) at once, or an
    empty list. `restarting` are the hosts whose API restarts. One serving host or none: nothing to choose (a restart
    of a single API host is an outage whatever the batch), so empty."""
    serving = set(serving or [])
    if len(serving) < 2:
        return []
    restarting = set(restarting or [])
    for b in batches:
        if serving <= (set(b) & restarting):
            return list(b)
    return []


class FilterModule:
    def filters(self):
        return {"rollout_batches": rollout_batches, "rollout_outage": rollout_outage}
