"""SeaweedFS across three zones, verified against the running cluster: the S3 contract, survival of a zone loss,
healing, and bad input refused in preflight."""

from __future__ import annotations

import json
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import (
    address,
    ansible_module,
    ansible_playbook,
    assert_passes,
    assert_refused,
    dashboard_metric_names,
    ephemeral_dir,
    exposition_names,
    hostvars,
    http,
    lab_ca,
    lab_host,
    lab_secret,
    run_audit,
    samples,
)

NODES = ["weed-a", "weed-b", "weed-c"]
COMPONENTS = ["master", "volume", "filer", "s3"]
METRICS_PORTS = {"master": 9324, "volume": 9325, "filer": 9326, "s3": 9327}


def s3(node, identity="delta-writer", secret_name="s3_delta_writer"):
    return boto3.client(
        "s3",
        endpoint_url=f"https://{address(node)}:8333",
        aws_access_key_id=identity,
        aws_secret_access_key=lab_secret(secret_name),
        region_name="us-east-1",
        verify=lab_ca(),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}, connect_timeout=5, read_timeout=30),
    )


def contract_args(node):
    return {
        "endpoint": f"https://{address(node)}:8333",
        "access_key": "admin",
        "secret_key": lab_secret("s3_admin"),
        "ca_path": lab_ca(),
        "bucket": "analytics",
        "identities": [
            {
                "name": "delta-writer",
                "access_key": "delta-writer",
                "secret_key": lab_secret("s3_delta_writer"),
                "expect": {"read": True, "write": True, "list": True},
            },
            {
                "name": "delta-dashboard",
                "access_key": "delta-dashboard",
                "secret_key": lab_secret("s3_delta_dashboard"),
                "expect": {"read": True, "list": True},
            },
            {
                "name": "backup",
                "access_key": "backup",
                "secret_key": lab_secret("s3_backup"),
                "expect": {"read": True, "list": True},
            },
            {  # PostgreSQL's backups: its own bucket, nothing on the data bucket
                "name": "pgbackrest",
                "access_key": "pgbackrest",
                "secret_key": lab_secret("s3_pgbackrest"),
                "expect": {},
            },
        ],
        "delta_identity": "delta-writer",
    }


@pytest.mark.parametrize("node", ["weed-a", "weed-c"])
def test_the_s3_contract_holds(node):
    out = ansible_module("analytics.platform.s3_contract", contract_args(node))
    checks = {c["check"]: c for c in out["checks"]}
    assert out["passed"] is True, out.get("msg")
    assert set(checks) == {
        "tls",
        "anonymous_denied",
        "default_credentials_rejected",
        "identity_backup",
        "identity_delta-dashboard",
        "identity_delta-writer",
        "identity_pgbackrest",
        "versioning",
        "bucket_policy",
        "delta_roundtrip",
    }
    assert all(c["passed"] is True for c in checks.values()), checks


def test_pgbackrests_bucket_is_its_own_and_unversioned():
    """PostgreSQL's backup identity writes, reads and lists its own bucket, which keeps no noncurrent versions
    (pgBackRest expires its own files); the data bucket's writer cannot see into it."""
    mine = s3("weed-b", "pgbackrest", "s3_pgbackrest")
    key = f"probe/{uuid.uuid4()}"
    mine.put_object(Bucket="pgbackrest", Key=key, Body=b"backup")
    try:
        assert mine.get_object(Bucket="pgbackrest", Key=key)["Body"].read() == b"backup"
        assert any(o["Key"] == key for o in mine.list_objects_v2(Bucket="pgbackrest", Prefix="probe/")["Contents"])
        admin = s3("weed-b", "admin", "s3_admin")
        assert admin.get_bucket_versioning(Bucket="pgbackrest").get("Status", "off") != "Enabled"
        with pytest.raises(ClientError) as denied:
            s3("weed-b").list_objects_v2(Bucket="pgbackrest")
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
    finally:
        mine.delete_object(Bucket="pgbackrest", Key=key)


def test_the_contract_fails_when_a_policy_is_wrong():
    """The contract can fail: claim the dashboard may write, and its identity check must fail with evidence."""
    args = contract_args("weed-b")
    args["identities"][1]["expect"]["write"] = True
    args["fail_on_violation"] = False
    out = ansible_module("analytics.platform.s3_contract", args)
    dash = next(c for c in out["checks"] if c["check"] == "identity_delta-dashboard")
    assert out["passed"] is False and dash["passed"] is False
    assert "write denied" in dash["evidence"]


def store_state(node="weed-a"):
    """Every bucket, and every object version and delete marker of the data bucket: what a read-only probe leaves as
    it found it."""
    admin = s3(node, "admin", "s3_admin")
    buckets = sorted(b["Name"] for b in admin.list_buckets()["Buckets"])
    versions = []
    for page in admin.get_paginator("list_object_versions").paginate(Bucket="analytics"):
        versions += [(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    return buckets, sorted(versions)


def test_the_audit_passes_the_object_store_and_leaves_it_as_it_was():
    """The hardened side of the audit's proof for the object store (molecule/insecure fails it): anonymous access
    denied on an object that exists, no public policy, each identity limited to its rights, versioning on. And the
    finding that the audit wrote objects versioning kept for ever: after the audit the store is exactly as before."""
    before = store_state()
    controls = ["object_store", "tls"]
    endpoints = {"audit_tls_endpoints": [{"group": "seaweedfs", "port": 8333, "service": "s3"}]}
    r, results = run_audit(controls, "-e", json.dumps(endpoints))
    assert_passes(results, controls)
    assert r.returncode == 0, r.output[-2000:]
    targets = {(x["host"], x["target"]) for x in results if x["control"] == "object_store"}
    assert {("weed-a", "anonymous access"), ("weed-b", "read-only"), ("weed-c", "identity delta-writer")} <= targets
    assert store_state() == before


def test_backup_mirror_keeps_versions_and_is_idempotent():
    """playbooks/object_store_backup.yml's module: every version of the source, once, into a versioned target."""
    prefix = f"mirror-test/{uuid.uuid4().hex[:8]}/"
    writer = s3("weed-a")
    writer.put_object(Bucket="analytics", Key=prefix + "doc", Body=b"v1")
    writer.put_object(Bucket="analytics", Key=prefix + "doc", Body=b"v2")
    target = {
        "endpoint": f"https://{address('weed-c')}:8333",
        "access_key": "admin",
        "secret_key": lab_secret("s3_admin"),
        "bucket": "analytics-backup",
        "ca_path": lab_ca(),
    }
    made = ansible_module(
        "analytics.platform.s3_bucket",
        {**{k: v for k, v in target.items() if k != "bucket"}, "name": "analytics-backup"},
    )
    assert made.get("failed") is not True, made
    source = {
        "endpoint": f"https://{address('weed-b')}:8333",
        "access_key": "backup",
        "secret_key": lab_secret("s3_backup"),
        "bucket": "analytics",
        "ca_path": lab_ca(),
    }
    source["prefix"] = prefix
    first = ansible_module("analytics.platform.s3_mirror", {"source": source, "target": target})
    assert first["changed"] and first["copied"] == 2, first
    again = ansible_module("analytics.platform.s3_mirror", {"source": source, "target": target})
    assert again["changed"] is False and again["total"] == 2
    admin = s3("weed-c", "admin", "s3_admin")
    versions = admin.list_object_versions(Bucket="analytics-backup", Prefix=prefix + "doc")["Versions"]
    bodies = sorted(
        admin.get_object(Bucket="analytics-backup", Key=prefix + "doc", VersionId=v["VersionId"])["Body"].read()
        for v in versions
    )
    assert bodies == [b"v1", b"v2"]


def metrics_of(node: str, component: str) -> str:
    code, body = http(lab_host(node), f"http://{address(node)}:{METRICS_PORTS[component]}/metrics")
    assert code == 200 and "SeaweedFS_build_info" in body, f"{node} {component}: {code} {body[:200]}"
    return body


def total(body: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples in a /metrics page whose labels include `labels`."""
    return sum(
        value
        for key, value in samples(body).items()
        if key.split("{")[0] == name and all(f'{k}="{v}"' in key for k, v in labels.items())
    )


def test_each_component_serves_its_metrics_on_the_internal_address_only():
    """weed serves no TLS on its metrics: each component listens on the node's internal address (not on every
    address), where the firewall admits the monitoring hosts only. Live: one leader, the volume servers' disk, and an
    S3 request counted."""
    served: set[str] = set()
    for node in NODES:
        local = [line.split()[3] for line in lab_host(node).run("ss -Hltn").stdout.splitlines()]
        for component, port in METRICS_PORTS.items():
            bound = [a for a in local if a.endswith(f":{port}")]
            assert bound == [f"{address(node)}:{port}"], f"{node}: {component}'s metrics listen on {bound}"
            served |= exposition_names(metrics_of(node, component))
    assert sum(total(metrics_of(n, "master"), "SeaweedFS_master_is_leader") for n in NODES) == 1
    for node in NODES:
        volume = metrics_of(node, "volume")
        assert total(volume, "SeaweedFS_volumeServer_resource", type="all") > 0
        # the slots ObjectStoreVolumeSlotsLow divides by: the -max the role set (seaweedfs_volume_max)
        assert total(volume, "SeaweedFS_volumeServer_max_volumes") == int(hostvars(node)["seaweedfs_volume_max"])
    before = total(metrics_of("weed-a", "s3"), "SeaweedFS_s3_request_total", bucket="analytics")
    s3("weed-a").list_objects_v2(Bucket="analytics", MaxKeys=1)
    after = total(metrics_of("weed-a", "s3"), "SeaweedFS_s3_request_total", bucket="analytics")
    assert after == before + 1, (before, after)
    # The object store dashboard reads only what the components serve (its up{} is Prometheus's own, checked with the
    # hosts dashboard by the monitoring scenario).
    wanted = dashboard_metric_names("objectstore") - dashboard_metric_names("hosts")
    assert len(wanted) > 8 and "SeaweedFS_no_such_metric" not in served
    assert wanted <= served, f"the object store dashboard reads metrics no node serves: {sorted(wanted - served)}"


@pytest.mark.parametrize("node", NODES)
def test_components_run_hardened_with_zone_placement(node):
    host = lab_host(node)
    for c in COMPONENTS:
        svc = host.run(f"systemctl show weed-{c} -p ActiveState -p User -p NoNewPrivileges -p ProtectSystem").stdout
        assert "ActiveState=active" in svc and "User=seaweedfs" in svc
        assert "NoNewPrivileges=yes" in svc and "ProtectSystem=strict" in svc
    unit = host.file("/etc/systemd/system/weed-volume.service").content_string
    zone = {"weed-a": "zone-a", "weed-b": "zone-b", "weed-c": "zone-c"}[node]
    assert f"-dataCenter={zone}" in unit
    assert host.file("/etc/seaweedfs/s3.json").mode == 0o640
    assert lab_secret("s3_admin") not in host.run("ps -eo args").stdout


VOL_STATUS = """
import json, ssl, sys, urllib.request
pki = "/etc/analytics-platform/pki/"
ctx = ssl.create_default_context(cafile=pki + "ca.crt")
ctx.load_cert_chain(pki + "host.crt", pki + "host.key")
print(urllib.request.urlopen(f"https://{sys.argv[1]}:9333/vol/status", context=ctx, timeout=15).read().decode())
"""


def volume_zones(status: dict, bucket: str = "analytics") -> dict[str, set[str]]:
    """volume id -> the data centers (zones) holding a copy, from the master's /vol/status: the data bucket's volumes
    only (collection <filer group>_<bucket>, or <bucket> without a filer group)."""
    out: dict[str, set[str]] = {}
    for zone, racks in ((status.get("Volumes") or {}).get("DataCenters") or {}).items():
        for nodes in (racks or {}).values():
            for volumes in (nodes or {}).values():
                for v in volumes or []:
                    if v.get("Collection") == bucket or str(v.get("Collection", "")).endswith(f"_{bucket}"):
                        out.setdefault(str(v["Id"]), set()).add(zone)
    return out


def test_volume_zones_reads_the_masters_status_and_a_single_copy_is_caught():
    """The finding: the old check passed on any '100' in weed shell's output. This one sees a volume held in one
    zone, and leaves other buckets' volumes out."""

    def vol(i, collection):
        return {"Id": i, "Collection": collection}

    status = {
        "Volumes": {
            "DataCenters": {
                "zone-a": {"rack1": {"10.0.1.12:8080": [vol(3, "analytics_analytics"), vol(4, "analytics_analytics")]}},
                "zone-b": {
                    "rack1": {"10.0.2.12:8080": [vol(3, "analytics_analytics"), vol(9, "analytics_analytics-backup")]}
                },
            }
        }
    }
    assert volume_zones(status) == {"3": {"zone-a", "zone-b"}, "4": {"zone-a"}}


def test_volumes_are_replicated_across_zones():
    """Every volume of the data bucket has copies in two different data centers (the master's own view)."""
    client = s3("weed-b")
    for _n in range(5):
        client.put_object(Bucket="analytics", Key=f"replication/{uuid.uuid4()}", Body=b"x" * 1024)
    import shlex

    deadline, zones, status = time.time() + 90, {}, {}
    while time.time() < deadline:
        r = lab_host("weed-a").run(f"python3 -c {shlex.quote(VOL_STATUS)} weed-a")
        if r.rc == 0:
            status = json.loads(r.stdout)
            zones = volume_zones(status)
            if zones and all(len(z) >= 2 for z in zones.values()):
                break
        time.sleep(5)
    assert zones, f"no volume of the data bucket in the master's status: {json.dumps(status)[:2000]}"
    single = {v: z for v, z in zones.items() if len(z) < 2}
    assert not single, f"volumes with a copy in one zone only: {single}"


def retry(fn, timeout=120):
    """Call fn until it succeeds (S3 calls right after a node returns may hit a volume being re-assigned)."""
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(2)


@pytest.mark.drill
def test_zone_loss_keeps_reads_and_writes_then_heals():
    run = uuid.uuid4().hex[:8]
    before = s3("weed-b")
    keys = [f"zone-loss/{run}/before-{i}" for i in range(20)]
    for k in keys:
        before.put_object(Bucket="analytics", Key=k, Body=k.encode())
    host_a = lab_host("weed-a")
    host_a.run("systemctl stop weed-s3 weed-filer weed-volume weed-master")
    try:
        time.sleep(15)  # let the masters notice and re-elect
        for node in ("weed-b", "weed-c"):
            client = s3(node)
            for k in keys:
                assert client.get_object(Bucket="analytics", Key=k)["Body"].read() == k.encode()
            written = []
            for i in range(20):
                k = f"zone-loss/{run}/during-{node}-{i}"
                retry(lambda k=k, c=client: c.put_object(Bucket="analytics", Key=k, Body=b"during"), timeout=90)
                written.append(k)
            for k in written:
                assert client.get_object(Bucket="analytics", Key=k)["Body"].read() == b"during"
    finally:
        host_a.run("systemctl start weed-master weed-volume weed-filer weed-s3")

    # Healed: zone-a serves again, including what was written while it was down, and takes new writes.
    def during_seen_by_a():
        found = s3("weed-a").list_objects_v2(Bucket="analytics", Prefix=f"zone-loss/{run}/during-")["KeyCount"]
        assert found == 40, found
        return found

    assert retry(during_seen_by_a, timeout=180) == 40
    k = f"zone-loss/{run}/after"
    retry(lambda: s3("weed-a").put_object(Bucket="analytics", Key=k, Body=b"after"))
    assert retry(lambda: s3("weed-c").get_object(Bucket="analytics", Key=k))["Body"].read() == b"after"


def s3_pair(node: str, access_key: str, secret_key: str):
    return boto3.client(
        "s3",
        endpoint_url=f"https://{address(node)}:8333",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        verify=lab_ca(),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=5, read_timeout=15),
    )


def refused(client) -> str | None:
    """The S3 error code a ListObjects with this client gets (None: it was accepted)."""
    try:
        client.list_objects_v2(Bucket="analytics", MaxKeys=1)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def converge_with(scenario_dir, extra: dict) -> None:
    path = ephemeral_dir() / "rotation.json"
    path.write_text(json.dumps(extra))
    r = ansible_playbook(scenario_dir / "converge.yml", "-e", f"@{path}")
    assert r.returncode == 0, r.output[-3000:]


def retired_audit(old: tuple[str, str]) -> dict:
    """The default_passwords probe with the old pair listed as retired, from the controller."""
    out = ansible_module(
        "analytics.platform.audit_logins",
        {
            "vantage": "controller",
            "s3": [{"host": n, "endpoint": f"https://{address(n)}:8333"} for n in NODES],
            "retired_s3_credentials": [{"access_key": old[0], "secret_key": old[1]}],
        },
    )
    return {r["host"]: r for r in out["audit"]}


def test_an_s3_key_rotates_with_an_overlap_and_the_old_pair_is_refused_at_the_end(scenario_dir):
    """Rotation of the writer's key (docs/operations.md): the new pair under a new access key while the old one is still
    accepted (a client using it sees no error, the gateways reload without a restart), then the old pair removed and
    refused, which the audit's retired-credential probe confirms; finally back to the scenario's own pair."""
    secrets = {i: lab_secret(f"s3_{i.replace('-', '_')}") for i in ("admin", "delta-dashboard", "backup", "pgbackrest")}
    old = ("delta-writer", lab_secret("s3_delta_writer"))
    new = ("delta-writer-r2", uuid.uuid4().hex)
    pids = {n: lab_host(n).check_output("systemctl show -p MainPID --value weed-s3") for n in NODES}
    errors, stop = [], threading.Event()

    def old_client():  # a writer that has not moved yet, writing all along
        c = s3_pair("weed-a", *old)
        while not stop.is_set():
            try:
                c.put_object(Bucket="analytics", Key=f"rotation/{uuid.uuid4().hex}", Body=b"x")
            except Exception as e:  # any failure counts: the overlap must keep the old pair working
                errors.append(repr(e)[:200])
            time.sleep(0.2)

    t = threading.Thread(target=old_client, daemon=True)
    t.start()
    try:
        converge_with(
            scenario_dir,
            {
                "seaweedfs_s3_access_keys": {"delta-writer": new[0]},
                "seaweedfs_s3_secret_keys": {**secrets, "delta-writer": new[1]},
                "seaweedfs_s3_previous_credentials": {"delta-writer": {"access_key": old[0], "secret_key": old[1]}},
            },
        )
        time.sleep(2)
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors[:3]
    for n in NODES:
        assert refused(s3_pair(n, *new)) is None and refused(s3_pair(n, *old)) is None, n
    assert {n: lab_host(n).check_output("systemctl show -p MainPID --value weed-s3") for n in NODES} == pids
    overlap = retired_audit(old)
    assert {r["status"] for r in overlap.values()} == {"fail"}, overlap
    assert "retired delta-writer" in overlap["weed-a"]["reason"] and old[1] not in json.dumps(overlap)

    try:
        converge_with(
            scenario_dir,
            {
                "seaweedfs_s3_access_keys": {"delta-writer": new[0]},
                "seaweedfs_s3_secret_keys": {**secrets, "delta-writer": new[1]},
            },
        )
        for n in NODES:
            assert refused(s3_pair(n, *old)) == "InvalidAccessKeyId", n
            assert refused(s3_pair(n, *new)) is None, n
        after = retired_audit(old)
        assert {r["status"] for r in after.values()} == {"pass"}, after
        assert "1 retired" in after["weed-a"]["reason"]
    finally:
        converge_with(scenario_dir, {})  # the scenario's own pair again: the rotated one is refused now
    assert refused(s3_pair("weed-b", *new)) == "InvalidAccessKeyId"
    assert refused(s3_pair("weed-b", *old)) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"seaweedfs_replication": "000"}', "keeps every copy in one zone"),
        ('{"zone": "zone-a"}', "all platform hosts are in one zone"),
        ('{"seaweedfs_s3_secret_keys": {"admin": "minioadmin"}}', "seaweedfs_s3_secret_keys must hold a 16+"),
        ('{"seaweedfs_jwt_key": "short"}', "seaweedfs_jwt_key must be 32+ characters"),
        ('{"seaweedfs_s3_access_keys": {"nobody": "nobody-key"}}', "unknown: nobody"),
        (
            '{"seaweedfs_s3_previous_credentials": {"delta-writer": {"access_key": "delta-writer", "secret_key": "'
            + "x" * 32
            + '"}}}',
            "no access key may be used twice, current or previous",
        ),
        (
            '{"seaweedfs_s3_previous_credentials": {"delta-writer": {"secret_key": "' + "x" * 32 + '"}}}',
            "each previous entry needs an access_key",
        ),
        ('{"seaweedfs_binary_checksum": "sha256:' + "0" * 64 + '"}', "is missing or its sha256"),
    ],
)
def test_bad_input_fails_in_preflight(scenario_dir, extra, message):
    watch = ("weed-a", "systemctl show -p ActiveEnterTimestamp weed-master")
    assert_refused(scenario_dir, extra, message, watch)
