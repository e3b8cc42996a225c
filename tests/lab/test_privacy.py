"""The privacy plays on the whole platform (the lab): a data subject's events posted through nginx reach PostgreSQL
(leader and replica) and Delta; playbooks/privacy_export.yml exports the same events from both stores; then
playbooks/privacy_erase.yml removes them from both, the Delta files that held them and every version of those files
in the versioned bucket, while another subject's events in the same sessions stay; a second erase removes nothing and
the dead-letter replay reads the erasure list. Part of `make drills`."""

from __future__ import annotations

import http.client
import io
import json
import os
import ssl
import subprocess
import uuid
from pathlib import Path

import boto3
import pyarrow.parquet as pq
from botocore.config import Config
from conftest import INVENTORY, ROOT, hosts, inventory, lab_var, pg_counts, record, sh, verify

SUBJECT_EVENTS, OTHER_EVENTS = 12, 8


def post_batch(events: list[dict]) -> None:
    edge = inventory()["_meta"]["hostvars"][hosts("nginx")[0]]["ansible_host"]
    ctx = ssl.create_default_context(cafile=str(Path(lab_var("pki_ca_dir")) / "ca.crt"))
    conn = http.client.HTTPSConnection(edge, 443, context=ctx, timeout=30)
    body = json.dumps({"events": events})
    conn.request(
        "POST",
        "/analytics/batch",
        body=body,
        headers={"content-type": "application/json", "x-api-key": lab_var("vault_api_key_lab")},
    )
    r = conn.getresponse()
    assert r.status == 202, (r.status, r.read()[:300])


def play(name: str, subject: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AP_PRIVACY_SUBJECT": subject}
    argv = ["ansible-playbook", "-i", str(INVENTORY), str(ROOT / "playbooks" / name), *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, env=env)
    r.output = " ".join((r.stdout + r.stderr).split())
    r.failure = r.output[r.output.find("fatal:") :][:3000] if "fatal:" in r.output else r.output[-3000:]
    return r


def s3():
    """The store through a SeaweedFS gateway's address, as the writer's identity (its keys from its host's env file)."""
    store = hosts("seaweedfs")[0]
    address = inventory()["_meta"]["hostvars"][store]["ansible_host"]
    env = dict(
        line.split("=", 1)
        for line in sh(hosts("delta_writer")[0], "cat /etc/analytics-platform/delta-writer.env").splitlines()
        if "=" in line and not line.startswith("#")
    )
    return boto3.client(
        "s3",
        endpoint_url=f"https://{address}:8333",
        aws_access_key_id=env["DELTA_S3_ACCESS_KEY"].strip("'\""),
        aws_secret_access_key=env["DELTA_S3_SECRET_KEY"].strip("'\""),
        region_name="us-east-1",
        verify=str(Path(lab_var("pki_ca_dir")) / "ca.crt"),
        config=Config(s3={"addressing_style": "path"}),
    )


def users_in_every_version(bucket: str, prefix: str) -> set:
    """user_id values in every version of every data file under the table's folder (current, deleted or old)."""
    client, found = s3(), set()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            if v["Key"].endswith(".parquet"):
                body = client.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
                found |= set(pq.read_table(io.BytesIO(body), columns=["user_id"]).column("user_id").to_pylist())
    return found


def test_a_subject_is_exported_then_erased_from_every_store(session, tmp_path):
    subject, other = f"{session}-subject", f"{session}-other"
    events = [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "privacy_drill",
            "session_id": f"{session}-{n % 3}",
            "user_id": subject if n < SUBJECT_EVENTS else other,
            "properties": {"n": n},
        }
        for n in range(SUBJECT_EVENTS + OTHER_EVENTS)
    ]
    post_batch(events)
    counts = verify(session, [e["event_id"] for e in events])
    mine = {e["event_id"] for e in events if e["user_id"] == subject}

    request = f"DSAR-{session}".replace("_", "-")
    r = play(
        "privacy_export.yml",
        subject,
        "-e",
        f"privacy_request={request}",
        "-e",
        f"privacy_export_dir={tmp_path}",
        "-e",
        "privacy_export_parquet=true",
    )
    assert r.returncode == 0, r.failure
    folder = tmp_path / request
    exported = {}
    for store in ("postgresql", "delta"):
        lines = [json.loads(x) for x in (folder / f"{store}.jsonl").read_text().splitlines()]
        exported[store] = lines
        assert {x["event_id"] for x in lines} == mine, store
    assert exported["postgresql"] == exported["delta"]  # the same shape, the same values, from both stores
    tables = {store: pq.read_table(folder / f"{store}.parquet") for store in ("postgresql", "delta")}
    assert tables["postgresql"].num_rows == SUBJECT_EVENTS and tables["postgresql"].equals(tables["delta"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f["name"]: f["rows"] for f in manifest["files"]} == {
        f"{store}.{kind}": SUBJECT_EVENTS for store in ("postgresql", "delta") for kind in ("jsonl", "parquet")
    }

    erase_request = f"ERASE-{session}".replace("_", "-")
    erase = [
        "-e",
        f"privacy_request={erase_request}",
        "-e",
        "privacy_requested_by=drill",
        "-e",
        f"privacy_record_dir={tmp_path}",
        "-e",
        "privacy_erase_purge_after_minutes=0",
    ]
    r = play("privacy_erase.yml", subject, *erase)
    assert r.returncode == 0, r.failure
    assert subject not in r.output
    [path] = list((tmp_path / "erasures").glob(f"*/{erase_request}.json"))
    erasure = json.loads(path.read_text())
    assert subject not in path.read_text()
    # Every sink's group had stored what Kafka received before the erasure (nothing of the subject arrives after it).
    assert set(erasure["sinks_caught_up"]) >= {"pg-sink", "delta-writer"}, erasure
    assert erasure["removed"]["postgresql"]["rows"] == SUBJECT_EVENTS
    assert set(erasure["removed"]["postgresql"]["left_on_replicas"].values()) == {0}
    delta = erasure["removed"]["delta"]
    assert delta["rows"] == SUBJECT_EVENTS and delta["files_left_for_vacuum"] == 0, delta
    assert delta["purged_files"] > 0 and delta["object_versions_removed"] >= delta["purged_files"], delta

    for host in hosts("postgresql"):
        left = pg_counts(host, session)
        assert mine.isdisjoint(left) and len(left) == OTHER_EVENTS, (host, len(left))
    # The table as the writer has it (its role's default unless the inventory sets one).
    env = sh(hosts("delta_writer")[0], "grep '^DELTA_TABLE_URI=' /etc/analytics-platform/delta-writer.env")
    table = env.strip().split("=", 1)[1].strip("'\"").removeprefix("s3://")
    bucket, prefix = table.split("/", 1)
    held = users_in_every_version(bucket, prefix + "/")
    assert subject not in held and other in held  # in no version of any data file; the other subject's rows stay

    again = play("privacy_erase.yml", subject, *erase)
    assert again.returncode == 0 and "nothing left to remove" in again.output, again.output[-2000:]
    replay = play("dlq_replay.yml", "", "--check")
    assert replay.returncode == 0 and "of erased data subjects left out" in replay.output, replay.output[-2000:]
    # The maintenance counts the old versions the bucket keeps of removed files (the dry run removes nothing).
    maint = play("delta_maintenance.yml", "", "-e", "delta_maintenance_dry_run=true")
    assert maint.returncode == 0 and "old object versions to remove" in maint.output, maint.output[-2000:]
    record("privacy", {"before": counts, "erasure": erasure["removed"], "still_held": erasure["still_held"]})
