"""The audit picks its hosts in inventory order, whatever Python's hash seed: Ansible's `difference` filter returns
its items in set order, so the application host the audit probes from changed from run to run and the report's
"changes since" list filled with absent/pass pairs."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = """
[analytics_api]
api-a
api-b
api-c
api-d
[kafka]
kafka-a
kafka-b
kafka-c
[vantage]
out-x
[audit_unreachable]
kafka-b
"""
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_vars: {root}/roles/audit/vars/main.yml
    - ansible.builtin.debug:
        msg: "{{{{ {{'inside': __audit_inside_host, 'platform': __audit_platform,
                   'kafka': __audit_kafka_targets | map(attribute='host') | list}} | to_json }}}}"
"""


def test_hosts_keep_the_inventory_order_under_any_hash_seed(tmp_path, playbook):
    (tmp_path / "hosts.ini").write_text(INVENTORY)
    (tmp_path / "play.yml").write_text(PLAY.format(root=ROOT))
    seen = set()
    for seed in range(6):
        env = {"PYTHONHASHSEED": str(seed), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
        r = playbook(tmp_path / "hosts.ini", tmp_path / "play.yml", cwd=tmp_path, env=env, timeout=120)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        doc, _unused = json.JSONDecoder().raw_decode(r.stdout[r.stdout.index("\n{") + 1 :])
        seen.add(doc["plays"][0]["tasks"][1]["hosts"]["localhost"]["msg"])
    assert len(seen) == 1, f"the audit's hosts depend on the hash seed: {seen}"
    got = json.loads(seen.pop())
    assert got["inside"] == "api-a"
    assert got["platform"] == ["api-a", "api-b", "api-c", "api-d", "kafka-a", "kafka-c"]
    assert got["kafka"] == ["kafka-a", "kafka-c"]
