"""playbooks/loadtest.yml on the running lab (make drills): a short run has every request answered 202 and every
accepted event stored once in both stores, with freshness measured from every probe; the same run with the
PostgreSQL sinks stopped fails, naming what PostgreSQL lost."""

from __future__ import annotations

import json
import re
import time

from conftest import INVENTORY, ROOT, hosts, pg_counts, record, run, sh


def loadtest(*extra: str) -> tuple[int, str, dict]:
    """A load test of 500 events/s for 20 s (or what extra says): its exit code, output and report."""
    r = run(
        [
            "ansible-playbook",
            "-i",
            str(INVENTORY),
            str(ROOT / "playbooks" / "loadtest.yml"),
            "-e",
            "loadtest_rate=500",
            "-e",
            "loadtest_seconds=20",
            *extra,
        ],
        timeout=1200,
        check=False,
    )
    output = r.stdout + r.stderr
    found = re.search(r"(loadtest-[0-9]{8}T[0-9]{6}-[0-9]+)", output)
    assert found, output[-3000:]
    path = ROOT / "reports" / "loadtest" / f"{found.group(1)}.json"
    return r.returncode, output, json.loads(path.read_text()) if path.exists() else {}


def test_a_short_load_test_answers_everything_and_stores_each_accepted_event_once():
    rc, output, report = loadtest()
    assert rc == 0, output[-3000:]
    client, pg, delta = report["client"], report["postgresql"], report["delta"]
    sent = client["events_sent"] + client["probes_sent"]
    assert client["accepted"] == sent and client["events_sent"] == 500 * 20, client
    assert client["statuses"] == {"202": client["requests"]} and not client["connection_errors"], client
    assert pg["rows"] == pg["distinct"] == sent and delta["rows"] == delta["distinct"] == sent, report
    for store in (pg, delta):
        seen = store["freshness"]
        assert seen["probes_seen"] == client["probes_accepted"] >= 90, report
        assert 0 < seen["p50_ms"] <= seen["p99_ms"] <= seen["max_ms"], report
    record("loadtest-short", report)


def test_the_load_test_fails_naming_what_postgresql_lost_when_the_sinks_are_stopped():
    sinks = hosts("pg_sink")
    for host in sinks:
        sh(host, "systemctl stop pg-sink")
    try:
        rc, output, report = loadtest("-e", "loadtest_seconds=10", "-e", "loadtest_settle_seconds=10")
    finally:
        for host in sinks:
            sh(host, "systemctl start pg-sink")
    assert rc != 0, output[-3000:]
    accepted = report["client"]["accepted"]
    assert f"PostgreSQL lost {accepted} accepted events" in output, output[-3000:]
    assert "Delta lost" not in output and report["delta"]["rows"] == accepted, report
    assert report["postgresql"]["freshness"]["probes_seen"] == 0, report
    # The sinks catch up from Kafka once started: the run's events arrive, once each. (pg_counts looks for sessions
    # named "<prefix>-...": the run's session without its random suffix covers the session and its probes.)
    prefix = report["session"].rsplit("-", 1)[0]
    deadline = time.monotonic() + 300
    while len(counts := pg_counts(report["postgresql"]["member"], prefix)) < accepted and time.monotonic() < deadline:
        time.sleep(5)
    assert len(counts) == accepted and set(counts.values()) == {1}, len(counts)
