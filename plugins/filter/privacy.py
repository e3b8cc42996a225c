# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The record of processing activities from the inventory (module_utils/privacy.py): per store of personal data,
where it is, what it holds, how long, how it is anonymised and who can read it."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.module_utils.privacy import (
    EVENT_FIELDS,
    SETTINGS,
    bucket_readers,
    topic_readers,
    topic_retention,
    value,
)

# playbooks/object_store_backup.yml's settings: its target (read without its secret_key) and how long a copy of a
# version the source removed for good stays there (the play's default).
MIRROR_VARS = ("object_store_backup_target", "object_store_backup_prune_after_hours")
MIRROR_PRUNE_AFTER_HOURS = 168


def _vars(hostvars, host):
    try:
        return hostvars[host] or {}
    except KeyError:
        raise AnsibleFilterError(f"host '{host}' is not in the inventory") from None


def _where(groups, hostvars, names):
    out = []
    for h in dict.fromkeys(h for name in names for h in groups.get(name) or []):
        zone = _vars(hostvars, h).get("zone")
        out.append(f"{h} ({zone})" if zone else h)
    return out


def _on(setting) -> bool:
    return setting in (True, "true", "True", "yes", 1)


def _first(groups, hostvars, names):
    for name in names:
        for h in groups.get(name) or []:
            return _vars(hostvars, h)
    return {}


def privacy_vars(_unused=None):
    """The variables the record reads from the inventory (with `zone`), for the play to collect per host: a value
    the inventory derives from `hostvars` cannot be templated from inside a filter, so the play passes them resolved."""
    return ["zone", *SETTINGS, *MIRROR_VARS]


def privacy_record(hostvars, groups):
    """One entry per store of personal data the inventory deploys: {store, where (hosts), data, retention,
    anonymisation, readers}. `hostvars`: per host, the variables of privacy_vars that the inventory sets."""
    if not isinstance(groups, dict):
        raise AnsibleFilterError("privacy_record: groups must be the inventory's groups (a mapping)")
    rows = []
    kafka = _first(groups, hostvars, ["kafka"])
    if groups.get("kafka"):
        for topic, what in (
            ("analytics-events", f"every accepted event: {EVENT_FIELDS}"),
            ("analytics-events-dlq", "events a store could not hold (as received), with the reason"),
        ):
            rows.append(
                {
                    "store": f"Kafka topic `{topic}`",
                    "where": _where(groups, hostvars, ["kafka"]),
                    "data": what,
                    "retention": topic_retention(kafka, topic),
                    "anonymisation": "none: kept as received until the retention deletes it",
                    "readers": topic_readers(kafka, topic),
                }
            )
    pg = _first(groups, hostvars, ["postgresql_primary", "postgresql", "postgresql_replica"])
    pg_hosts = _where(groups, hostvars, ["postgresql_primary", "postgresql", "postgresql_replica"])
    if pg_hosts:
        rows.append(
            {
                "store": f"PostgreSQL `{value(pg, 'postgresql_database')}.analytics_events` (every member)",
                "where": pg_hosts,
                "data": EVENT_FIELDS,
                "retention": f"{value(pg, 'postgresql_retention')} (daily partitions dropped)",
                "anonymisation": f"client address loses its last part after {value(pg, 'postgresql_anonymize_after')}",
                "readers": [
                    f"{value(pg, 'postgresql_reader_user')} (read only: Grafana"
                    + (", on " + ", ".join(groups.get("grafana") or []) if groups.get("grafana") else "")
                    + ")",
                    f"{value(pg, 'postgresql_sink_user')} (writes; reads event ids and times only)",
                    "postgres (the database's super user, on the members)",
                ],
            }
        )
        if _on(value(pg, "postgresql_backup_enabled")):
            endpoint = value(pg, "postgresql_backup_s3_endpoint")
            repo = (
                f"bucket `{value(pg, 'postgresql_backup_s3_bucket')}` at {endpoint}"
                if endpoint
                else f"`{value(pg, 'postgresql_backup_repo_path')}` on the members"
            )
            rows.append(
                {
                    "store": "PostgreSQL backups (pgBackRest)",
                    "where": [repo],
                    "data": "copies of the events table (everything above, as of each backup) and its WAL",
                    "retention": f"{value(pg, 'postgresql_backup_retention_days')} days of full backups and their WAL",
                    "anonymisation": "as the table was when backed up: rows erased or anonymised later stay in the"
                    " backups until they expire",
                    "readers": ["postgres on the members (pgBackRest)", "the backup repository's administrators"],
                }
            )
    if groups.get("delta_writer"):
        dw = _first(groups, hostvars, ["delta_writer"])
        uri = str(value(dw, "delta_writer_table_uri"))
        bucket = uri.removeprefix("s3://").split("/", 1)[0]
        store_groups = ["seaweedfs"] if groups.get("seaweedfs") else ["minio"]
        readers = bucket_readers(_first(groups, hostvars, store_groups), bucket) if groups.get("seaweedfs") else []
        if groups.get("delta_dashboard"):
            readers.append("the Delta dashboard's users (" + ", ".join(groups["delta_dashboard"]) + ")")
        rows.append(
            {
                "store": f"Delta table `{uri}`",
                "where": _where(groups, hostvars, store_groups),
                "data": EVENT_FIELDS,
                "retention": f"{value(dw, 'delta_writer_retention_days')} days (rows deleted daily), then their files"
                f" after {value(dw, 'delta_writer_vacuum_retention_hours')} hours (vacuum), their old versions in the"
                f" versioned bucket {value(dw, 'delta_writer_noncurrent_version_hours')} hours after that",
                "anonymisation": "client address loses its last part after"
                f" {value(dw, 'delta_writer_anonymize_after_days')} days",
                "readers": readers or ["the object store's identities with read access to the bucket"],
            }
        )
        mirror = dw.get("object_store_backup_target")
        if isinstance(mirror, dict) and mirror.get("bucket"):
            hours = int(dw.get("object_store_backup_prune_after_hours", MIRROR_PRUNE_AFTER_HOURS))
            rows.append(
                {
                    "store": f"Object store mirror `s3://{mirror['bucket']}` (playbooks/object_store_backup.yml)",
                    "where": [str(mirror.get("endpoint", ""))],
                    "data": f"copies of every version of the `{bucket}` bucket (the Delta table above) as of each"
                    " mirror run",
                    "retention": "for ever (object_store_backup_prune_after_hours=-1)"
                    if hours < 0
                    else f"as the bucket's versions, then {hours} hours after a mirror run finds a version removed",
                    "anonymisation": "as the versions were when copied",
                    "readers": ["the mirror target's identities"],
                }
            )
    if groups.get("nginx"):
        rows.append(
            {
                "store": "nginx access logs",
                "where": _where(groups, hostvars, ["nginx"]),
                "data": "client address, request line, user agent, time of each request",
                "retention": "rotated by logrotate (Debian's nginx policy: daily, 14 files)",
                "anonymisation": "none",
                "readers": ["root and the adm group on the edges"],
            }
        )
    logs = _first(groups, hostvars, ["monitoring"])
    if groups.get("monitoring") and _on(value(logs, "monitoring_logs_enabled")):
        rows.append(
            {
                "store": f"Central logs (`{value(logs, 'monitoring_log_dir')}`)",
                "where": _where(groups, hostvars, ["monitoring"]),
                "data": "every host's journal and logs, the edges' access logs with client addresses among them",
                "retention": f"{value(logs, 'monitoring_log_retention_days')} days",
                "anonymisation": "none",
                "readers": ["root on the log hosts"],
            }
        )
    return rows


def _leader(results: dict) -> tuple[str | None, dict]:
    leaders = [(h, r) for h, r in results.items() if r and not r.get("standby")]
    if results and not leaders:
        raise AnsibleFilterError(f"privacy_erasure: no PostgreSQL leader among {', '.join(results)}")
    return leaders[0] if leaders else (None, {})


def privacy_erasure(data, stores):
    """The erasure record (no personal data) from the erase play's results: `data` holds the request's fields and each
    store's result (postgresql: host -> pg_subject's result; postgresql_left: host -> the wait's result, rows left;
    delta: `delta-writer subject erase`'s JSON or None); `stores`: privacy_record's rows, for what still holds the
    data and for how long. Adds `changed` (something was removed or recorded) and a one-line `summary`."""
    if not isinstance(data, dict):
        raise AnsibleFilterError("privacy_erasure: expected the play's results as a mapping")
    check = bool(data.get("check_mode"))
    record = {k: data.get(k) for k in ("request", "requested_by", "by", "environment", "started", "finished")}
    record["check_mode"] = check
    if data.get("kafka_drained"):
        # The sinks' consumer groups had stored every event Kafka received before the erasure began.
        record["sinks_caught_up"] = sorted(data["kafka_drained"])
    removed, parts = {}, []
    pg = data.get("postgresql") or {}
    leader, result = _leader(pg)
    if leader:
        removed["postgresql"] = {
            "leader": leader,
            "rows": result.get("rows", 0),
            "partitions": result.get("partitions") or {},
        }
        left = {
            h: r["rows"]
            for h, r in (data.get("postgresql_left") or {}).items()
            if h != leader and isinstance(r, dict) and "rows" in r  # the wait's result on each replica (skipped: none)
        }
        if left:
            removed["postgresql"]["left_on_replicas"] = left
        record["recorded_for_dead_letter_replay"] = bool(result.get("recorded"))
        parts.append(f"PostgreSQL {result.get('rows', 0)}")
    delta = data.get("delta")
    if delta:
        removed["delta"] = {
            k: delta[k]
            for k in ("rows", "version", "purged_files", "files_left_for_vacuum", "object_versions_removed")
            if k in delta
        }
        parts.append(f"Delta {delta.get('rows', 0)}")
    record["removed"] = removed
    held = []
    for row in stores or []:
        name = str(row.get("store", ""))
        if name.startswith("Kafka topic"):
            held.append(
                {
                    "store": name,
                    "for": row["retention"],
                    "note": "kept as received until the retention deletes"
                    " it; the sinks do not store an erased event again (PostgreSQL keeps its id's claim, the"
                    " dead-letter replay skips the subject), but a Delta writer re-reading the topic from an"
                    " earlier offset would: erase again after such a reset",
                }
            )
        elif name.startswith("Object store mirror"):
            held.append(
                {
                    "store": name,
                    "for": row["retention"],
                    "note": "the copies of the purged files and their versions leave the mirror that long after its"
                    " next run",
                }
            )
        elif name.startswith("PostgreSQL backups"):
            held.append(
                {
                    "store": name,
                    "for": row["retention"],
                    "note": "backups are not rewritten: a restore from"
                    " one taken before the erasure brings the events back, so erase again after any restore",
                }
            )
    if delta and (delta.get("files_left_for_vacuum") or "purged_files" not in delta):
        hours, versions = delta.get("vacuum_retention_hours"), delta.get("noncurrent_version_hours")
        then = f", then {versions} hours as old versions in the data bucket" if versions is not None else ""
        held.append(
            {
                "store": "Delta data files outside the current version",
                "for": f"{hours} hours{then}",
                "note": "too young to purge (they may have been a commit in flight): vacuum removes them after the"
                " first window, the maintenance their old versions after the second; run the erasure again once"
                " they are older than privacy_erase_purge_after_minutes: it purges them and their versions now",
            }
        )
    record["still_held"] = held
    pg_rows = (removed.get("postgresql") or {}).get("rows", 0)
    delta_rows = (removed.get("delta") or {}).get("rows", 0)
    purged = (removed.get("delta") or {}).get("purged_files", 0)
    record["changed"] = not check and bool(
        pg_rows or delta_rows or purged or record.get("recorded_for_dead_letter_replay")
    )
    if not parts:
        record["summary"] = "this inventory has no store of events (no PostgreSQL, no delta_writer hosts)"
    elif check:
        record["summary"] = "would remove: " + ", ".join(parts) + " rows"
    elif record["changed"]:
        record["summary"] = (
            "removed: " + ", ".join(parts) + " rows" + (f", {purged} Delta files purged" if purged else "")
        )
    else:
        record["summary"] = "nothing left to remove: the subject was already erased (no record written)"
    return record


class FilterModule:
    def filters(self):
        return {"privacy_record": privacy_record, "privacy_vars": privacy_vars, "privacy_erasure": privacy_erasure}
