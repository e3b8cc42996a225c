"""Fault drills of the whole platform (the event-contract issue's drills), each during steady ingest from the outside
host through both load balancers. Each asserts: every event answered 202 is in PostgreSQL (primary and replica) and
in the Delta table exactly once; no 5xx other than 503 reached the client; ingest went on while the fault lasted.
The counts and timings of each run go to reports/drills/<drill>.json (docs/operations.md has the last ones)."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from conftest import INVENTORY, ROOT, Load, container, hosts, inventory, record, run, sh, verify, zone_of

pytestmark = pytest.mark.drill
TOTAL = 20_000


# The fault's first seconds are left out of "accepted during the fault": what the platform needs to notice it (a
# broker fenced after its 9 s session, clients' metadata refreshed, nginx's upstream marked failed).
GRACE = 20


def accepted_between(state: dict, start: float, end: float) -> int:
    return sum(n for t, n in state["accepted_at"] if start + GRACE <= t <= end)


def finish(name: str, load: Load, fault: tuple[float, float], extra: dict | None = None) -> None:
    state = load.wait_done()
    stores = verify(load.session, state["accepted"], strict=False)
    data = {
        "accepted": len(state["accepted"]),
        "of": load.total,
        "statuses": state["statuses"],
        "other_5xx": state["other_5xx"],
        "given_up": state["given_up"],
        "accepted_during_fault": accepted_between(state, *fault),
        "fault_seconds": round(fault[1] - fault[0]),
        "grace_seconds": GRACE,
        "stores": stores,
        **(extra or {}),
    }
    record(name, data)
    for store, counts in stores.items():
        assert counts["missing"] == 0, f"{store}: {counts['missing']} of {len(state['accepted'])} accepted missing"
        assert counts["more_than_once"] == 0, f"{store}: {counts['more_than_once']} events more than once"
    assert state["other_5xx"] == 0, f"5xx other than 503 reached the client: {state['statuses']}"
    assert state["given_up"] == 0 and len(state["accepted"]) == load.total, state["statuses"]
    assert data["accepted_during_fault"] > 0, f"no event was accepted while the fault lasted (after {GRACE} s)"


def test_a_zone_stopped_and_started_again(session):
    """Every container of zone-a stopped during ingest (its broker, the PostgreSQL primary, an API, an edge, a
    SeaweedFS node), then started again."""
    zone = "zone-a"
    members = [h for h in hosts("all") if zone_of(h) == zone]
    load = Load(session, TOTAL).start()
    load.wait_accepted(2_000)
    t0 = time.time()
    for h in members:
        run(["docker", "stop", "-t", "10", f"ap-lab-{h}"])
    time.sleep(90)
    for h in members:
        run(["docker", "start", f"ap-lab-{h}"])
    t1 = time.time()
    finish("zone-stopped", load, (t0, t1), {"zone": zone, "stopped": members})


def test_the_consumers_killed_three_times_each_mid_batch(session):
    """kill -9 of pg_sink and of delta_writer, three times each, while events flow."""
    consumers = (("pg_sink", "pg-sink"), ("delta_writer", "delta-writer"))
    units = [(h, unit) for group, unit in consumers for h in hosts(group)]
    restarts = {
        f"{unit}@{h}": lambda h=h, unit=unit: int(sh(h, f"systemctl show -P NRestarts {unit}.service"))
        for h, unit in units
    }
    before = {name: count() for name, count in restarts.items()}
    load = Load(session, TOTAL).start()
    load.wait_accepted(2_000)
    t0 = time.time()
    kills = []
    for round_ in range(3):
        for group, unit in (("pg_sink", "pg-sink"), ("delta_writer", "delta-writer")):
            for h in hosts(group):
                sh(h, f"systemctl kill -s KILL {unit}.service")
                kills.append(f"{unit}@{h}")
            time.sleep(12)  # systemd restarts it; it rejoins, reads and writes again before the next kill
        time.sleep(5 * round_)
    t1 = time.time()
    restarted = {name: count() - before[name] for name, count in restarts.items()}
    finish("consumers-killed", load, (t0, t1), {"kills": kills, "restarted_by_systemd": restarted})
    assert all(n >= 3 for n in restarted.values()), f"a consumer was not killed and restarted three times: {restarted}"


def test_kafka_blackholed_for_a_minute_on_one_zone(session):
    """Every Kafka packet to and from the broker of zone-b dropped (not refused) for 60 seconds: its clients, its
    followers and leaders, and its controller traffic, both ways (with the controller link left up, the broker stays
    in the cluster unreachable, and no leadership moves: Kafka cannot route around that)."""
    broker = next(h for h in hosts("kafka") if zone_of(h) == "zone-b")
    rules = [
        f"nft add rule inet drill {chain} tcp {side} '{{9092, 9093}}' drop"
        for chain in ("in", "out")
        for side in ("dport", "sport")
    ]
    chains = [
        f"nft add chain inet drill {chain} '{{ type filter hook {hook} priority -10; }}'"
        for chain, hook in (("in", "input"), ("out", "output"))
    ]
    drop = " && ".join(["nft add table inet drill", *chains, *rules])
    load = Load(session, TOTAL).start()
    load.wait_accepted(2_000)
    t0 = time.time()
    sh(broker, drop)
    try:
        time.sleep(60)
    finally:
        sh(broker, "nft delete table inet drill", check=False)
    t1 = time.time()
    finish("kafka-blackholed", load, (t0, t1), {"broker": broker})


def patroni_members(via: str) -> dict[str, dict]:
    """`patronictl list` on a member: name -> {Role, State, TL, ...}; {} when the member cannot answer."""
    out = sh(via, "patronictl -c /etc/patroni/config.yml list -f json", check=False, timeout=30)
    try:
        return {m["Member"]: m for m in json.loads(out)}
    except ValueError:
        return {}


def patroni_state(host: str, address: str) -> dict:
    """GET /patroni on the member itself (its REST API, TLS verified; no etcd in the way): {} when it cannot answer."""
    code = (
        "import ssl, urllib.request; c = ssl.create_default_context(cafile='/etc/analytics-platform/pki/ca.crt'); "
        f"print(urllib.request.urlopen('https://{address}:8008/patroni', context=c, timeout=2).read().decode())"
    )
    try:
        return json.loads(sh(host, f'python3 -c "{code}"', check=False, timeout=10) or "{}")
    except ValueError:
        return {}


def leader_of(via: str) -> str | None:
    names = [n for n, m in patroni_members(via).items() if m["Role"] == "Leader" and m["State"] == "running"]
    return names[0] if len(names) == 1 else None


def start_commit_probe(session: str, seconds: int) -> tuple[str, str]:
    """tests/lab/files/pg_commits.py on the first pg_sink host, with the sink's own settings and Python: (host, out)."""
    host = hosts("pg_sink")[0]
    script = ROOT / "tests" / "lab" / "files" / "pg_commits.py"
    run(["docker", "cp", str(script), f"{container(host)}:/tmp/pg_commits.py"])
    # The venv of the sink's ExecStart (its console script or its python): psycopg is there.
    start = sh(host, "systemctl show -p ExecStart --value pg-sink | sed -n 's/.*path=\\([^ ;]*\\).*/\\1/p'")
    python = f"{start.strip().rsplit('/', 1)[0]}/python"
    out = f"/tmp/{session}-commits.json"
    run(
        [
            "docker",
            "exec",
            "-d",
            container(host),
            "bash",
            "-c",
            f"{python} /tmp/pg_commits.py /etc/analytics-platform/pg-sink.env {out} {session} {seconds}"
            f" > /tmp/{session}-commits.log 2>&1",
        ]
    )
    return host, out


def commits_lost(probe: tuple[str, str], leader: str, session: str, timeout: float = 300) -> dict:
    """The probe's acknowledged commits that the leader does not have (the RPO of a client writing directly), and how
    long its writes failed (from its last commit before the first error to its first commit after it)."""
    host, out = probe
    deadline = time.time() + timeout
    while not sh(host, f"cat {out} 2>/dev/null", check=False).strip():
        assert time.time() < deadline, sh(host, f"tail -5 /tmp/{session}-commits.log", check=False)
        time.sleep(3)
    data = json.loads(sh(host, f"cat {out}"))
    query = "SELECT event_id FROM analytics_events WHERE event_type = 'drill-commit' AND properties->>'run' = :'run'"
    psql = f"runuser -u postgres -- psql -XAtq -d analytics -v run={session}"
    stored = set(sh(leader, f'echo "{query}" | {psql}').split())
    outage = data["outage"]
    return {
        "acknowledged": len(data["acked"]),
        "lost": len(set(data["acked"]) - stored),
        "write_errors": data["errors"],
        "seconds_without_commits": round(outage[1] - outage[0], 1) if outage and outage[1] else None,
    }


def test_the_postgresql_leader_killed_and_started_again(session):
    """The PostgreSQL leader's container killed (a host crash: no clean shutdown, the lease must expire) during ingest:
    Patroni promotes the replica, pg_sink follows it by itself, and the old leader, started again, rejoins as a
    replica (rewound if it had diverged). Every event answered 202 is in PostgreSQL (both members) and Delta once."""
    members = hosts("postgresql")
    old = leader_of(members[0]) or leader_of(members[1])
    assert old, patroni_members(members[0])
    other = next(h for h in members if h != old)
    address = inventory()["_meta"]["hostvars"][other]["ansible_host"]
    config = sh(other, "patronictl -c /etc/patroni/config.yml show-config", timeout=60)
    mode = "synchronous" if re.search(r"^synchronous_mode: true$", config, re.M) else "asynchronous"
    load = Load(session, TOTAL).start()
    load.wait_accepted(2_000)
    probe = start_commit_probe(session, 120)
    time.sleep(10)  # the probe commits before the kill
    t0 = time.time()
    run(["docker", "kill", container(old)])
    new_leader_after = None
    while time.time() - t0 < 120:
        state = patroni_state(other, address)
        if state.get("role") in ("master", "primary") and state.get("state") == "running":
            new_leader_after = time.time() - t0
            break
        time.sleep(0.5)
    assert new_leader_after is not None, f"no new leader 120 s after {old} was killed: {patroni_members(other)}"
    time.sleep(max(0, 60 - (time.time() - t0)))
    run(["docker", "start", container(old)])
    t1 = time.time()
    rejoined_after = None
    while time.time() - t1 < 300:
        m = patroni_members(other).get(old, {})
        if m.get("Role") == "Replica" and m.get("State") in ("running", "streaming"):
            rejoined_after = time.time() - t1
            break
        time.sleep(2)
    assert rejoined_after is not None, f"{old} did not rejoin within 300 s: {patroni_members(other)}"
    rewound = "rewind" in sh(old, "journalctl -u patroni --no-pager -b | grep -i rewind | tail -3", check=False)
    commits = commits_lost(probe, other, session)
    finish(
        "postgresql-leader-killed",
        load,
        (t0, t1),
        {
            "killed": old,
            "new_leader": other,
            "seconds_to_new_leader": round(new_leader_after, 1),
            "seconds_to_rejoin": round(rejoined_after, 1),
            "rewound": rewound,
            "replication": mode,
            "direct_commits": commits,
        },
    )
    assert new_leader_after < 30, f"{other} led {new_leader_after:.0f} s after {old} was killed (the bound is 30 s)"
    assert commits["acknowledged"] > 0 and commits["seconds_without_commits"] is not None, commits
    if mode == "synchronous":
        assert commits["lost"] == 0, f"synchronous replication lost {commits['lost']} acknowledged commits"


SERVICES = (
    ("analytics_api", "analytics-api", "analytics_api_log_level"),
    ("pg_sink", "pg-sink", "pg_sink_log_level"),
    ("delta_writer", "delta-writer", "delta_writer_log_level"),
    ("delta_dashboard", "delta-dashboard", "delta_dashboard_log_level"),
)


def site_services(*extra: str) -> subprocess.CompletedProcess:
    """site.yml for the services only (their plays, then the rollout), as an operator deploys a change of them."""
    tags = ",".join(group for group, _unit, _var in SERVICES)
    argv = ["ansible-playbook", "-i", str(INVENTORY), str(ROOT / "site.yml"), "--tags", tags, *extra]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    r.output = " ".join((r.stdout + r.stderr).split())
    return r


def main_pids() -> dict[str, str]:
    return {
        f"{unit}@{h}": sh(h, f"systemctl show -P MainPID {unit}.service").strip()
        for group, unit, _var in SERVICES
        for h in hosts(group)
    }


def test_a_change_of_every_service_rolled_out_by_site_yml_under_load(session):
    """site.yml deploys a changed setting of every Python service while events flow: each host's services restart in
    turn, each API host out of both load balancers until it is ready again. The client sees nothing but 202s (not even
    a 503 it had to retry), and every event is stored exactly once. Then the setting goes back the same way."""
    changed = [arg for _group, _unit, var in SERVICES for arg in ("-e", f"{var}=warning")]
    before = main_pids()
    load = Load(session, 50_000).start()  # 500 s: through the services' plays and the whole rollout
    load.wait_accepted(2_000)
    t0 = time.time()
    r = site_services(*changed)
    t1 = time.time()
    assert r.returncode == 0, r.output[-3000:]
    after = main_pids()
    not_restarted = [name for name in before if after[name] == before[name]]
    assert not not_restarted, f"not restarted by the rollout: {not_restarted}"
    pending = sh(hosts("analytics_api")[0], "ls /var/lib/analytics-platform/restart-pending/ 2>/dev/null | wc -l")
    state = load.wait_done()
    finish("services-rollout", load, (t0, t1), {"rollout_seconds": round(t1 - t0), "restarted": sorted(after)})
    assert set(state["statuses"]) == {"202"}, f"the client saw more than 202s: {state['statuses']}"
    assert pending.strip() == "0", "a mark is left after the rollout"
    # Back to the inventory's settings, the same way (no load needed); a run after that changes nothing.
    r = site_services()
    assert r.returncode == 0, r.output[-3000:]
    assert all(after[name] != pid for name, pid in main_pids().items()), "the setting was not rolled back"
