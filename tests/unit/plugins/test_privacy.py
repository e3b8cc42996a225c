"""The record of processing activities (module_utils/privacy.py, the privacy_record filter and
playbooks/privacy_record.yml): the catalogue's defaults are the owning roles' defaults, the record follows the
inventory, and the play writes it without contacting a host."""

import json
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.filter.privacy import privacy_erasure, privacy_record, privacy_vars
from ansible_collections.analytics.platform.plugins.module_utils.privacy import (
    DEFAULT_BUCKET_READERS,
    DEFAULT_TOPIC_READERS,
    DEFAULT_TOPIC_RETENTION_MS,
    SETTINGS,
)

ROOT = Path(__file__).resolve().parents[3]


def role_defaults(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}


@pytest.mark.parametrize("var", sorted(v for v, s in SETTINGS.items() if s.default is not None))
def test_every_default_is_the_owning_roles_default(var):
    setting = SETTINGS[var]
    assert role_defaults(setting.role)[var] == setting.default


def test_the_list_defaults_are_the_roles_lists():
    kafka = role_defaults("kafka")
    assert {t["name"]: int(t["config"]["retention.ms"]) for t in kafka["kafka_topics"]} == DEFAULT_TOPIC_RETENTION_MS
    for topic, readers in DEFAULT_TOPIC_READERS.items():
        assert [c["name"] for c in kafka["kafka_clients"] if topic in c.get("consume", [])] == readers
    weed = role_defaults("seaweedfs")
    bucket = weed["seaweedfs_bucket"]
    readable = [
        i["name"]
        for i in weed["seaweedfs_s3_identities"]
        if {"Admin", "Read", f"Read:{bucket}"} & {a.replace("{{ seaweedfs_bucket }}", bucket) for a in i["actions"]}
    ]
    assert readable == DEFAULT_BUCKET_READERS


GROUPS = {
    "all": ["k1", "k2", "db1", "db2", "w1", "s1", "e1", "m1"],
    "kafka": ["k1", "k2"],
    "postgresql": ["db1", "db2"],
    "delta_writer": ["w1"],
    "seaweedfs": ["s1"],
    "nginx": ["e1"],
    "monitoring": ["m1"],
    "grafana": ["m1"],
}


def hosts(**overrides) -> dict:
    out = {h: {"zone": f"zone-{h[-1]}"} for h in GROUPS["all"]}
    for host, values in overrides.items():
        out[host].update(values)
    return out


def by_store(rows) -> dict:
    return {r["store"]: r for r in rows}


def test_the_record_names_every_store_with_the_roles_defaults():
    rows = by_store(privacy_record(hosts(), GROUPS))
    assert list(rows) == [
        "Kafka topic `analytics-events`",
        "Kafka topic `analytics-events-dlq`",
        "PostgreSQL `analytics.analytics_events` (every member)",
        "PostgreSQL backups (pgBackRest)",
        "Delta table `s3://analytics/delta/analytics-events`",
        "nginx access logs",
        "Central logs (`/var/log/platform`)",
    ]
    assert rows["Kafka topic `analytics-events`"]["retention"] == "7 days"
    assert rows["Kafka topic `analytics-events`"]["where"] == ["k1 (zone-1)", "k2 (zone-2)"]
    assert rows["Kafka topic `analytics-events-dlq`"]["retention"] == "30 days"
    pg = rows["PostgreSQL `analytics.analytics_events` (every member)"]
    assert pg["retention"].startswith("90 days") and pg["anonymisation"].endswith("after 30 days")
    assert pg["readers"][0] == "analytics_reader (read only: Grafana, on m1)"
    assert rows["PostgreSQL backups (pgBackRest)"]["where"] == ["`/var/lib/pgbackrest` on the members"]
    delta = rows["Delta table `s3://analytics/delta/analytics-events`"]
    assert delta["readers"] == ["admin", "delta-writer", "delta-dashboard", "backup"]
    assert delta["retention"].startswith("90 days")


def test_the_record_follows_the_inventory():
    rows = by_store(
        privacy_record(
            hosts(
                k1={
                    "kafka_topics": [{"name": "analytics-events", "config": {"retention.ms": "86400000"}}],
                    "kafka_clients": [{"name": "only-reader", "consume": ["analytics-events"]}],
                },
                db1={
                    "postgresql_retention": "45 days",
                    "postgresql_backup_s3_endpoint": "https://s1:8333",
                    "postgresql_database": "events",
                },
                w1={"delta_writer_retention_days": 60, "delta_writer_anonymize_after_days": 7},
                s1={"seaweedfs_s3_identities": [{"name": "reader", "actions": ["Read:analytics"]}, {"name": "w"}]},
                m1={"monitoring_logs_enabled": False},
            ),
            GROUPS,
        )
    )
    assert rows["Kafka topic `analytics-events`"]["retention"] == "1 day"
    assert rows["Kafka topic `analytics-events`"]["readers"] == ["only-reader", "admin (Kafka's super user)"]
    assert rows["Kafka topic `analytics-events-dlq`"]["retention"].startswith("Kafka's broker default")
    assert rows["PostgreSQL `events.analytics_events` (every member)"]["retention"].startswith("45 days")
    assert rows["PostgreSQL backups (pgBackRest)"]["where"] == ["bucket `pgbackrest` at https://s1:8333"]
    delta = rows["Delta table `s3://analytics/delta/analytics-events`"]
    assert delta["retention"].startswith("60 days") and delta["anonymisation"].endswith("after 7 days")
    assert delta["readers"] == ["reader"]
    assert not any(s.startswith("Central logs") for s in rows)


def test_the_object_store_mirror_is_a_store_of_its_own_with_its_prune_delay():
    target = {"endpoint": "https://backup.example.com", "bucket": "analytics-dr"}
    rows = by_store(privacy_record(hosts(w1={"object_store_backup_target": target}), GROUPS))
    mirror = rows["Object store mirror `s3://analytics-dr` (playbooks/object_store_backup.yml)"]
    assert mirror["where"] == ["https://backup.example.com"]
    assert mirror["retention"].endswith("then 168 hours after a mirror run finds a version removed")
    kept = privacy_record(
        hosts(w1={"object_store_backup_target": target, "object_store_backup_prune_after_hours": -1}), GROUPS
    )
    assert by_store(kept)[mirror["store"]]["retention"].startswith("for ever")
    assert not any(s.startswith("Object store mirror") for s in by_store(privacy_record(hosts(), GROUPS)))
    erased = privacy_erasure(erasure_data(), privacy_record(hosts(w1={"object_store_backup_target": target}), GROUPS))
    assert any(h["store"] == mirror["store"] and "next run" in h["note"] for h in erased["still_held"])


def test_a_platform_without_a_store_leaves_it_out():
    groups = {"all": ["k1"], "kafka": ["k1"]}
    assert [r["store"] for r in privacy_record({"k1": {}}, groups)] == [
        "Kafka topic `analytics-events`",
        "Kafka topic `analytics-events-dlq`",
    ]


def test_a_host_missing_from_the_inventory_is_named():
    with pytest.raises(AnsibleFilterError, match="host 'ghost' is not in the inventory"):
        privacy_record({}, {"all": [], "kafka": ["ghost"]})
    assert privacy_vars()[0] == "zone"


def test_the_play_writes_the_record_without_contacting_a_host(playbook, tmp_path):
    """The staging example's hosts are documentation addresses nobody answers on: a task that connected would fail."""
    r = playbook(
        ROOT / "inventories" / "staging",
        ROOT / "playbooks" / "privacy_record.yml",
        "-e",
        f"privacy_record_dir={tmp_path}",
        "-e",
        "postgresql_retention='45 days'",
    )
    assert r.returncode == 0, r.output[-3000:]
    text = (tmp_path / "record-of-processing-staging.md").read_text()
    assert "# Record of processing activities: staging" in text
    pg = next(line for line in text.splitlines() if line.startswith("| PostgreSQL `analytics.analytics_events`"))
    assert "| 45 days (daily partitions dropped) |" in pg and "store-1.stg.example.com (zone-a)" in pg
    backups = next(line for line in text.splitlines() if line.startswith("| PostgreSQL backups"))
    assert "bucket `pgbackrest` at https://store-1.stg.example.com:" in backups  # derived from hostvars in staging

    # The mirror's target is read without its secret key, which reaches neither the output nor the record.
    secret = "mirror-secret-" + "x7Qp" * 6
    target = {"endpoint": "https://dr.example.com", "bucket": "dr", "access_key": "mirror", "secret_key": secret}
    r = playbook(
        ROOT / "inventories" / "staging",
        ROOT / "playbooks" / "privacy_record.yml",
        "-v",
        "-e",
        f"privacy_record_dir={tmp_path}",
        "-e",
        json.dumps({"object_store_backup_target": target}),
    )
    assert r.returncode == 0, r.output[-3000:]
    text = (tmp_path / "record-of-processing-staging.md").read_text()
    assert "| Object store mirror `s3://dr`" in text and secret not in text and secret not in r.output


def erasure_data(**kw):
    data = {
        "request": "DPO-1",
        "requested_by": "dpo",
        "by": "user_id",
        "environment": "lab",
        "started": "2026-12-04T15:00:00+00:00",
        "finished": "2026-12-04T15:00:09+00:00",
        "check_mode": False,
        "postgresql": {
            "pg-a": {"standby": False, "rows": 3, "partitions": {"p1": 2, "p2": 1}, "recorded": True},
            "pg-b": {"standby": True, "rows": 3},
        },
        "postgresql_left": {"pg-a": {"skipped": True, "changed": False}, "pg-b": {"rows": 0, "standby": True}},
        "delta": {
            "rows": 2,
            "version": 7,
            "purged_files": 2,
            "files_left_for_vacuum": 0,
            "vacuum_retention_hours": 168,
        },
    }
    data.update(kw)
    return data


STORES = privacy_record(
    {"k1": {}, "pg-a": {}, "dw": {}}, {"kafka": ["k1"], "postgresql_primary": ["pg-a"], "delta_writer": ["dw"]}
)


def test_the_erasure_record_counts_each_store_and_says_what_still_holds_the_data():
    record = privacy_erasure(erasure_data(kafka_drained=["pg-sink", "delta-writer"]), STORES)
    assert record["sinks_caught_up"] == ["delta-writer", "pg-sink"]
    assert record["removed"]["postgresql"] == {
        "leader": "pg-a",
        "rows": 3,
        "partitions": {"p1": 2, "p2": 1},
        "left_on_replicas": {"pg-b": 0},
    }
    assert record["removed"]["delta"] == {"rows": 2, "version": 7, "purged_files": 2, "files_left_for_vacuum": 0}
    assert record["changed"] and record["recorded_for_dead_letter_replay"]
    assert record["summary"] == "removed: PostgreSQL 3, Delta 2 rows, 2 Delta files purged"
    held = {h["store"]: h["for"] for h in record["still_held"]}
    assert held == {
        "Kafka topic `analytics-events`": "7 days",
        "Kafka topic `analytics-events-dlq`": "30 days",
        "PostgreSQL backups (pgBackRest)": "30 days of full backups and their WAL",
    }
    # Files left to vacuum are said, with vacuum's window.
    delta = {"rows": 1, "version": 8, "vacuum_retention_hours": 168, "noncurrent_version_hours": 24}
    left = privacy_erasure(erasure_data(delta=delta), STORES)
    held = {"store": "Delta data files outside the current version", "for": "168 hours, then 24 hours as old versions"}
    assert {**held, "for": held["for"] + " in the data bucket"}.items() <= next(
        h for h in left["still_held"] if h["store"].startswith("Delta")
    ).items()


def test_a_second_erasure_changes_nothing_and_check_mode_only_counts():
    again = erasure_data(
        postgresql={"pg-a": {"standby": False, "rows": 0, "partitions": {}, "recorded": False}},
        delta={"rows": 0, "version": 9, "purged_files": 0, "files_left_for_vacuum": 0},
    )
    record = privacy_erasure(again, STORES)
    assert not record["changed"] and record["summary"].startswith("nothing left to remove")
    check = privacy_erasure(erasure_data(check_mode=True), STORES)
    assert not check["changed"] and check["summary"] == "would remove: PostgreSQL 3, Delta 2 rows"


def test_an_erasure_without_a_leader_is_an_error():
    with pytest.raises(AnsibleFilterError, match="no PostgreSQL leader among pg-b"):
        privacy_erasure(erasure_data(postgresql={"pg-b": {"standby": True, "rows": 1}}), STORES)


KEY = "k3y-" + "Zq8wVt2m" * 5


@pytest.mark.parametrize(
    ("play", "subject", "extra", "message"),
    [
        ("privacy_erase.yml", "alice", {"privacy_by": "email"}, "privacy_by: 'email' is not user_id or session_id"),
        ("privacy_erase.yml", "", {}, "privacy_subject: no data subject given (set AP_PRIVACY_SUBJECT)"),
        ("privacy_erase.yml", "alice", {"privacy_requested_by": ""}, "privacy_requested_by: say who asked"),
        ("privacy_erase.yml", "alice", {"privacy_erase_drain_seconds": "5m"}, "privacy_erase_drain_seconds: whole"),
        ("privacy_erase.yml", "alice", {"privacy_erasure_key": "short"}, "privacy_erasure_key: set it in the vault"),
        ("privacy_export.yml", "alice", {"privacy_export_s3": "s3://b"}, "privacy_export_s3: a mapping {endpoint"),
        (
            "privacy_export.yml",
            "alice",
            {"privacy_export_s3": {"endpoint": "https://s3", "bucket": "b_", "access_key": "a", "secret_key": "s"}},
            "privacy_export_s3.bucket: 'b_' is not a bucket name",
        ),
    ],
)
def test_a_bad_request_stops_on_the_controller_with_one_line_naming_it(playbook, play, subject, extra, message):
    """The staging example's hosts are documentation addresses: a play that went past the checks would fail on them
    with another message."""
    settings = {"privacy_request": "DPO-1", "privacy_requested_by": "dpo", "privacy_erasure_key": KEY, **extra}
    r = playbook(
        ROOT / "inventories" / "staging",
        ROOT / "playbooks" / play,
        "-e",
        json.dumps(settings),
        env={"AP_PRIVACY_SUBJECT": subject},
    )
    assert r.returncode != 0 and message in r.output, r.output[-2000:]
    assert "PLAY [Resolve the stores' retention" not in r.output and "PLAY [Export" not in r.output
