"""Kafka across three zones, verified against the running cluster from the controller (as a client would)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import os
import re
import shlex
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from conftest import (
    address,
    ansible_module,
    ansible_playbook,
    assert_passes,
    assert_refused,
    dashboard_metric_names,
    exposition_names,
    http,
    lab_ca,
    lab_host,
    lab_secret,
    run_audit,
    samples,
    tcp_open,
)

NODES = ["kafka-1", "kafka-2", "kafka-3"]
ZONES = {"kafka-1": "zone-a", "kafka-2": "zone-b", "kafka-3": "zone-c"}
TOPIC = "analytics-events"


def bootstrap():
    return ",".join(f"{address(n)}:9092" for n in NODES)


def conf(user, password, **extra):
    c = {
        "bootstrap.servers": bootstrap(),
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
        "ssl.ca.location": lab_ca(),
    }
    c.update(extra)
    return c


def admin_conf():
    return conf("admin", lab_secret("kafka_admin"))


def api_conf(**extra):
    return conf("analytics-api", lab_secret("kafka_analytics_api"), **extra)


def produce(cfg, messages, topic=TOPIC):
    """Produce and wait; returns the delivery errors."""
    errors = []
    p = Producer(cfg)
    for key, value in messages:
        p.produce(topic, key=key, value=value, on_delivery=lambda err, _msg: errors.append(err) if err else None)
        p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} messages were never delivered"
    return errors


def consume_all(cfg, marker, expected, timeout=90):
    """Read the topic from the start until `expected` messages carrying `marker` are seen (or the time is up)."""
    c = Consumer(dict(cfg, **{"group.id": f"verify-{uuid.uuid4()}", "auto.offset.reset": "earliest"}))
    c.subscribe([TOPIC])
    seen = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and len(seen) < expected:
            msg = c.poll(1.0)
            if msg is None or msg.error():
                continue
            body = json.loads(msg.value())
            if body.get("run") == marker:
                seen.append(body["seq"])
    finally:
        c.close()
    return seen


def under_replicated(admin):
    md = admin.list_topics(timeout=15)
    return sum(1 for t in md.topics.values() for p in t.partitions.values() if len(p.isrs) < len(p.replicas))


# --- the cluster ----------------------------------------------------------------------------------------------------
def test_brokers_carry_their_zone_as_rack():
    admin = AdminClient(admin_conf())
    cluster = admin.describe_cluster().result(timeout=30)
    racks = {n.host: n.rack for n in cluster.nodes}
    assert racks == {address(n): ZONES[n] for n in NODES}


def test_events_topic_settings():
    admin = AdminClient(admin_conf())
    md = admin.list_topics(TOPIC, timeout=15).topics[TOPIC]
    assert len(md.partitions) == 10
    assert {len(p.replicas) for p in md.partitions.values()} == {3}
    # Every partition's replicas span the three zones (rack-aware placement).
    broker_zone = {n.id: n.rack for n in admin.describe_cluster().result(timeout=30).nodes}
    assert all({broker_zone[r] for r in p.replicas} == set(ZONES.values()) for p in md.partitions.values())
    from confluent_kafka.admin import ConfigResource, ResourceType

    res = ConfigResource(ResourceType.TOPIC, TOPIC)
    cfg = {k: v.value for k, v in admin.describe_configs([res])[res].result(timeout=15).items()}
    assert cfg["min.insync.replicas"] == "2"
    assert cfg["retention.ms"] == str(168 * 3600 * 1000)
    assert cfg["segment.bytes"] == str(1024**3)
    assert cfg["compression.type"] == "lz4"
    assert cfg["unclean.leader.election.enable"] == "false"


@pytest.mark.parametrize("name", NODES)
def test_node_runs_hardened_without_secrets_in_arguments(name):
    host = lab_host(name)
    svc = host.run("systemctl show kafka -p NoNewPrivileges -p ProtectSystem -p LimitNOFILE -p User").stdout
    assert "NoNewPrivileges=yes" in svc
    assert "ProtectSystem=strict" in svc
    assert "LimitNOFILE=100000" in svc
    assert "User=kafka" in svc
    cmdline = host.run("cat /proc/$(systemctl show -p MainPID --value kafka)/cmdline | tr '\\0' ' '").stdout
    assert "kafka.Kafka" in cmdline
    assert lab_secret("kafka_admin") not in cmdline
    # Only SSH, the SASL_SSL client port and the controller port listen; nothing in plain text.
    listening = host.run("ss -Hltn | awk '$4 !~ /^127\\./ {print $4}' | sed 's/.*://' | sort -u").stdout.split()
    # (9404: the JMX exporter agent's metrics, over TLS: test_nodes_export_their_metrics_over_tls_only)
    assert sorted(listening) == ["22", "9092", "9093", "9404"]
    props = host.file("/etc/kafka/server.properties")
    assert props.mode == 0o640 and props.group == "kafka"
    assert "PLAINTEXT://" not in props.content_string
    assert "allow.everyone.if.no.acl.found=false" in props.content_string


def metrics_of(name: str) -> dict[str, float]:
    """The JMX exporter agent's samples on a node, read on the node itself over HTTPS (verified against the platform
    CA): {"name{labels}": value}."""
    code, body = http(lab_host(name), f"https://{address(name)}:9404/metrics")
    assert code == 200, f"{name}: the metrics endpoint answered {code}"
    return samples(body)


def test_nodes_export_their_metrics_over_tls_only():
    per_node = {n: metrics_of(n) for n in NODES}
    for name, m in per_node.items():
        # Healthy cluster: nothing under-replicated, below min.insync.replicas or offline.
        assert m["kafka_server_replicamanager_underreplicatedpartitions"] == 0
        assert m["kafka_server_replicamanager_underminisrpartitioncount"] == 0
        assert m["kafka_log_logmanager_offlinelogdirectorycount"] == 0
        # Every node holds a replica of each of the events topic's 10 partitions (RF 3 on 3 nodes).
        sizes = [k for k in m if k.startswith("kafka_log_size_bytes{") and f'topic="{TOPIC}"' in k]
        assert len(sizes) == 10, f"{name}: {len(sizes)} partition sizes of {TOPIC}"
        assert any(k.startswith("kafka_network_requests_total{") for k in m)
        assert any(k.startswith("jvm_memory_used_bytes{") for k in m)
        # The catch-all is not exported (thousands of series per node).
        assert len(m) < 2000, f"{name} exports {len(m)} samples"
    # Exactly one active controller in the quorum; offline partitions as the controllers see them: none.
    assert sum(m["kafka_controller_kafkacontroller_activecontrollercount"] for m in per_node.values()) == 1
    assert max(m["kafka_controller_kafkacontroller_offlinepartitionscount"] for m in per_node.values()) == 0
    # Plain HTTP gets no metrics; the agent's keystore and configuration are the group's only.
    host = lab_host("kafka-1")
    plain = host.run(
        f"timeout 5 python3 -c \"import urllib.request as u; u.urlopen('http://{address('kafka-1')}:9404/metrics')\""
    )
    assert plain.rc != 0
    for path in ("/etc/kafka/metrics-keystore.p12", "/etc/kafka/jmx-exporter.yml"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "kafka", 0o640), path
    # The keystore password is in no process's arguments.
    cmdline = host.run("cat /proc/$(systemctl show -p MainPID --value kafka)/cmdline | tr '\\0' ' '").stdout
    assert "-javaagent:" in cmdline and "keyStore" not in cmdline and "Password" not in cmdline


def test_the_kafka_dashboard_reads_only_metrics_the_nodes_export():
    """Grafana never runs here: the Kafka dashboard's queries must name metrics the agent really serves (its node_*
    names are the node exporter's, checked by the monitoring scenario with the hosts dashboard)."""
    served = set()
    for name in NODES:
        code, body = http(lab_host(name), f"https://{address(name)}:9404/metrics")
        assert code == 200
        served |= exposition_names(body)
    wanted = dashboard_metric_names("kafka") - dashboard_metric_names("hosts")
    assert len(wanted) > 10 and "kafka_no_such_metric" not in served
    assert wanted <= served, f"the Kafka dashboard reads metrics no node serves: {sorted(wanted - served)}"


def test_metrics_port_is_closed_to_hosts_outside_the_monitoring_group():
    # The scenario has no monitoring host: nobody else may connect (the outside host, and another Kafka node).
    for vantage in ("kafka-x", "kafka-2"):
        assert not tcp_open(lab_host(vantage), address("kafka-1"), 9404), vantage


# --- security -------------------------------------------------------------------------------------------------------
def test_produce_and_consume_over_sasl_ssl_with_service_users():
    marker = str(uuid.uuid4())
    msgs = [(str(i).encode(), json.dumps({"run": marker, "seq": i}).encode()) for i in range(50)]
    assert produce(api_conf(**{"acks": "all", "enable.idempotence": True}), msgs) == []
    sink = conf("pg-sink", lab_secret("kafka_pg_sink"), **{"group.id": "pg-sink", "auto.offset.reset": "earliest"})
    c = Consumer(dict(sink, **{"enable.auto.commit": False}))
    c.subscribe([TOPIC])
    seen = set()
    deadline = time.time() + 60
    while time.time() < deadline and len(seen) < 50:
        msg = c.poll(1.0)
        if msg is not None and not msg.error():
            body = json.loads(msg.value())
            if body.get("run") == marker:
                seen.add(body["seq"])
    c.close()
    assert seen == set(range(50))


def test_plaintext_connection_fails():
    admin = AdminClient({"bootstrap.servers": bootstrap(), "security.protocol": "PLAINTEXT", "socket.timeout.ms": 5000})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=10)


class LogLines:
    def __init__(self):
        self.lines = []

    def log(self, _level, fmt, *args):
        self.lines.append(fmt % args if args else fmt)


def test_wrong_password_fails():
    logs = LogLines()
    admin = AdminClient(conf("analytics-api", "not-the-password", logger=logs))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=10)
    admin.poll(1)  # serves the queued log lines
    assert any("Authentication failed" in line for line in logs.lines), logs.lines


def test_user_without_acl_cannot_write():
    """pg-sink may read analytics-events but not write it."""
    errors = produce(conf("pg-sink", lab_secret("kafka_pg_sink")), [(b"k", b"{}")])
    assert errors and errors[0].name() == "TOPIC_AUTHORIZATION_FAILED"


def test_transactions_only_for_each_service_and_its_prefix():
    ok = Producer(api_conf(**{"transactional.id": f"analytics-api-verify-{uuid.uuid4()}"}))
    ok.init_transactions(30)
    ok.begin_transaction()
    ok.produce(TOPIC, json.dumps({"run": "tx", "seq": 0}).encode())
    ok.commit_transaction(30)
    sink = Producer(
        conf("pg-sink", lab_secret("kafka_pg_sink"), **{"transactional.id": f"pg-sink-verify-{uuid.uuid4()}"})
    )
    sink.init_transactions(30)  # the sinks park dead letters and commit offsets in one transaction
    for user, secret, tx_id in [
        ("analytics-api", "kafka_analytics_api", "someone-else-1"),
        ("pg-sink", "kafka_pg_sink", "analytics-api-sneaky"),
    ]:
        denied = Producer(conf(user, lab_secret(secret), **{"transactional.id": tx_id}))
        with pytest.raises(KafkaException) as e:
            denied.init_transactions(30)
        assert "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in str(e.value)


def test_service_user_cannot_read_another_services_group():
    c = Consumer(conf("pg-sink", lab_secret("kafka_pg_sink"), **{"group.id": "delta-writer"}))
    c.subscribe([TOPIC])
    error = None
    deadline = time.time() + 30
    while time.time() < deadline and error is None:
        msg = c.poll(1.0)
        if msg is not None and msg.error():
            error = msg.error()
    c.close()
    assert error is not None and error.name() == "GROUP_AUTHORIZATION_FAILED"


def test_a_sink_may_read_the_other_platform_groups_offsets_and_nothing_more():
    """Each sink exports every platform group's lag (kafka_clients' lag_groups): pg-sink may DESCRIBE delta-writer,
    that is read its committed offsets, but may not commit for it, and may not read a group outside its list."""
    part = [TopicPartition(TOPIC, 0)]
    reader = Consumer(
        conf("pg-sink", lab_secret("kafka_pg_sink"), **{"group.id": "delta-writer", "enable.auto.commit": False})
    )
    try:
        assert [tp.error for tp in reader.committed(part, timeout=30)] == [None]
        with pytest.raises(KafkaException) as e:
            reader.commit(offsets=[TopicPartition(TOPIC, 0, 0)], asynchronous=False)
        assert "GROUP_AUTHORIZATION_FAILED" in str(e.value)
    finally:
        reader.close()
    outsider = Consumer(
        conf("pg-sink", lab_secret("kafka_pg_sink"), **{"group.id": "someone-else", "enable.auto.commit": False})
    )
    try:
        with pytest.raises(KafkaException):
            outsider.committed(part, timeout=15)
    finally:
        outsider.close()


# --- the user module, live: create, rotate only when needed, remove ----------------------------------------------
def admin_args(**kw):
    return dict(
        bootstrap_servers=[f"{address(n)}:9092" for n in NODES],
        login_user="admin",
        login_password=lab_secret("kafka_admin"),
        ca_path=lab_ca(),
        **kw,
    )


def can_log_in(user, password):
    try:
        AdminClient(conf(user, password)).list_topics(timeout=10)
        return True
    except KafkaException:
        return False


def test_audit_probe_kafka_access_passes_here_and_fails_as_a_super_user():
    """The audit's Kafka probe against the hardened cluster: default logins refused and a topic nobody granted denied
    to a service user; the same ACL probe as the admin (a super user, to whom everything is allowed) fails."""
    probe = dict(
        admin_args(), cluster="kafka-1", login_user="analytics-api", login_password=lab_secret("kafka_analytics_api")
    )
    out = ansible_module("analytics.platform.kafka_access", probe)
    results = {r["control"]: r for r in out["audit"]}
    assert results["default_passwords"]["status"] == "pass", results
    assert results["kafka_sasl_ssl"]["status"] == "pass", results
    assert results["kafka_sasl_ssl"]["evidence"]["answer"] == "TOPIC_AUTHORIZATION_FAILED"
    as_admin = ansible_module("analytics.platform.kafka_access", dict(admin_args(), cluster="kafka-1"))
    acl = next(r for r in as_admin["audit"] if r["control"] == "kafka_sasl_ssl")
    assert acl["status"] == "fail" and acl["evidence"]["answer"] == "UNKNOWN_TOPIC_OR_PART", acl


def test_dlq_replay_resubmits_each_parked_record_once():
    """playbooks/dlq_replay.yml's module against the cluster: check mode counts and changes nothing; a record parked by
    both sinks is re-submitted once, with its key and value unchanged; an erased subject's record is never
    re-submitted; a second run re-submits nothing."""
    marker = str(uuid.uuid4())
    contract = json.dumps({"run": marker, "seq": 0}).encode()
    store = json.dumps({"run": marker, "seq": 1}).encode()
    erased = json.dumps({"run": marker, "seq": 2, "user_id": f"erased-{marker}"}).encode()
    key = "erasure-key-" + marker  # as privacy_erase.yml records the subject in analytics_erasures

    def parked(value, consumer, stage, source):
        return (
            value,
            [
                ("dlq-reason", f"why {stage} {marker}".encode()),
                ("dlq-source", source.encode()),
                ("dlq-consumer", consumer.encode()),
                ("dlq-stage", stage.encode()),
            ],
        )

    p = Producer(admin_conf())
    for value, headers in [
        parked(contract, "pg-sink", "contract", f"{TOPIC}/0/{marker}"),
        parked(contract, "delta-writer", "contract", f"{TOPIC}/0/{marker}"),
        parked(store, "pg-sink", "store", f"{TOPIC}/1/{marker}"),
        parked(erased, "pg-sink", "store", f"{TOPIC}/2/{marker}"),
    ]:
        p.produce("analytics-events-dlq", value, key=marker.encode(), headers=headers)
    assert p.flush(60) == 0
    args = dict(
        admin_args(), group=f"dlq-replay-{marker}", transactional_id=f"dlq-replay-{marker}", reason_contains=marker
    )
    digest = hmac.new(key.encode(), f"user_id:erased-{marker}".encode(), hashlib.sha256).hexdigest()
    args.update(erased_subjects=[digest], erasure_key=key)
    dry = ansible_module("analytics.platform.kafka_dlq_replay", args, check=True)
    assert (dry["replayed"], dry["duplicates"], dry["erased"], dry["changed"]) == (2, 1, 1, True), dry
    real = ansible_module("analytics.platform.kafka_dlq_replay", args)
    assert (real["replayed"], real["duplicates"], real["erased"]) == (2, 1, 1), real
    assert sorted(consume_all(admin_conf(), marker, 2, timeout=60)) == [0, 1]
    again = ansible_module("analytics.platform.kafka_dlq_replay", args)
    assert (again["replayed"], again["changed"]) == (0, False), again
    assert sorted(consume_all(admin_conf(), marker, 3, timeout=15)) == [0, 1]  # nothing more arrived


def test_the_audit_passes_kafka_its_logins_tls_firewall_and_secrets():
    """The hardened side of the audit's proof for the controls this scenario deploys (molecule/insecure fails each):
    no PLAINTEXT, SCRAM-SHA-512 only, ACL default deny, no default login from outside or from inside, TLS, only the
    port matrix answering, no secret in arguments, readable files or the journal."""
    controls = ["kafka_sasl_ssl", "default_passwords", "tls", "firewall", "secrets"]
    endpoints = {
        "audit_tls_endpoints": [
            {"group": "kafka", "port": 9092, "service": "kafka"},
            {"group": "kafka", "endpoint": "kafka_metrics", "service": "kafka_metrics"},
        ]
    }
    # A password bento had before a rotation (never valid here): refused, so the control passes, counting it.
    retired = {"audit_retired_credentials": {"kafka": [{"user": "bento", "password": "retired-" + uuid.uuid4().hex}]}}
    r, results = run_audit(controls, "-e", json.dumps(endpoints), "-e", json.dumps(retired))
    assert_passes(results, controls)
    assert r.returncode == 0, r.output[-2000:]
    # The JMX exporter agent's HTTPS (Java's TLS server) was probed on every node, not only the brokers' listener.
    probed = {(e["host"], e["target"]) for e in results if e["control"] == "tls" and e["status"] == "pass"}
    assert {(n, "kafka_metrics:9404") for n in NODES} <= probed, probed
    # Tried from inside (the firewall closes the brokers to the outside host, where no login is possible).
    tried = [e for e in results if e["control"] == "default_passwords" and e["target"].endswith("(inside)")]
    assert len(tried) == len(NODES) and all("and 1 retired ones" in e["reason"] for e in tried), tried


def test_the_audit_fails_a_retired_password_that_still_works_without_showing_it():
    """A rotation whose old password was never revoked (here: bento's current one listed as retired) fails
    default_passwords on every broker (tried from inside: the firewall closes them to the outside host), naming the
    user; the password is in neither the report nor the run's output."""
    password = lab_secret("kafka_bento")
    retired = {"audit_retired_credentials": {"kafka": [{"user": "bento", "password": password}]}}
    r, results = run_audit(["default_passwords"], "-e", json.dumps(retired), name="audit-retired", keep=False)
    tried = [e for e in results if e["target"].startswith("kafka logins") and e["target"].endswith("(inside)")]
    assert len(tried) == len(NODES), results
    assert all(e["status"] == "fail" and "retired bento" in e["reason"] for e in tried), tried
    assert r.returncode != 0
    assert password not in json.dumps(results) and password not in r.output


def test_kafka_user_rotates_only_when_the_password_changed():
    old, new = lab_secret("kafka_bento"), "rotated-" + uuid.uuid4().hex
    try:
        first = ansible_module("analytics.platform.kafka_user", admin_args(name="bento", password=new))
        assert first["changed"] and first["user"]["action"] == "rotated", first
        again = ansible_module("analytics.platform.kafka_user", admin_args(name="bento", password=new))
        assert again["changed"] is False, again
        assert can_log_in("bento", new)
        assert not can_log_in("bento", old)
    finally:
        back = ansible_module("analytics.platform.kafka_user", admin_args(name="bento", password=old))
    assert back["changed"] and can_log_in("bento", old)


def test_kafka_user_create_and_remove():
    password = uuid.uuid4().hex * 2
    ansible_module("analytics.platform.kafka_user", admin_args(name="verify-temp", state="absent"))  # a clean start
    created = ansible_module("analytics.platform.kafka_user", admin_args(name="verify-temp", password=password))
    assert created["changed"] and created["user"]["action"] == "created"
    assert can_log_in("verify-temp", password)
    removed = ansible_module("analytics.platform.kafka_user", admin_args(name="verify-temp", state="absent"))
    assert removed["changed"]
    assert not can_log_in("verify-temp", password)


# --- bad input: refused before any broker is touched ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"kafka_default_replication_factor": 4}', "at least kafka_default_replication_factor (4) brokers"),
        ('{"kafka_client_passwords": {}}', "kafka_client_passwords['analytics-api'] is missing"),
        ('{"zone": "zone-a"}', "breaks the KRaft quorum"),
        ('{"kafka_artifact_checksum": "sha256:' + "0" * 64 + '"}', "is missing or its sha256"),
    ],
)
def test_bad_input_fails_in_preflight(scenario_dir, extra, message):
    watch = ("kafka-1", "systemctl show -p ActiveEnterTimestamp kafka")
    assert_refused(scenario_dir, extra, message, watch)


def test_partition_decrease_is_refused_and_changes_nothing(scenario_dir):
    topics = json.dumps({"kafka_topics": [{"name": TOPIC, "partitions": 5, "replication_factor": 3}]})
    r = ansible_playbook(scenario_dir / "converge.yml", "-e", topics)
    assert r.returncode != 0
    assert f"refusing to decrease the partitions of topic '{TOPIC}' from 10 to 5" in r.output
    assert len(AdminClient(admin_conf()).list_topics(TOPIC, timeout=15).topics[TOPIC].partitions) == 10


# --- day 2: the rolling restart keeps the cluster writable and restarts one node at a time --------------------------
ROOT = Path(__file__).resolve().parents[3]


def started_at() -> dict[str, str]:
    return {n: lab_host(n).run("systemctl show -p ActiveEnterTimestampMonotonic --value kafka").stdout for n in NODES}


def under_load(run_play) -> tuple:
    """Run run_play() while a producer writes to the topic (acks=all, idempotent) and a watcher counts the brokers
    twice a second. Fails unless the play passed, every record was delivered without an error and is read back,
    and no two brokers were ever down at once. Returns the play's result."""
    admin = AdminClient(admin_conf())
    fewest, stop = [3], threading.Event()

    def watch():
        while not stop.is_set():
            # A metadata request can time out while a broker goes down: that sample is skipped.
            with contextlib.suppress(Exception):
                fewest[0] = min(fewest[0], len(admin.describe_cluster().result(timeout=10).nodes))
            time.sleep(0.5)

    marker = str(uuid.uuid4())
    producer = Producer(api_conf(**{"acks": "all", "enable.idempotence": True, "message.timeout.ms": 120000}))
    errors, delivered = [], []
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    play = threading.Thread(target=lambda: delivered.append(run_play()), daemon=True)
    play.start()
    seq = 0
    while play.is_alive():
        body = json.dumps({"run": marker, "seq": seq}).encode()
        producer.produce(TOPIC, value=body, on_delivery=lambda err, _m: errors.append(err) if err else None)
        producer.poll(0.05)
        seq += 1
    stop.set()
    result = delivered[0]
    assert result.returncode == 0, result.output[-2000:]
    assert producer.flush(120) == 0
    assert errors == []
    assert fewest[0] >= 2, "more than one broker was down at once"
    assert under_replicated(admin) == 0
    assert len(consume_all(admin_conf(), marker, seq)) == seq
    return result


@pytest.mark.drill
def test_rolling_restart_one_node_at_a_time_under_load():
    before = started_at()
    under_load(lambda: ansible_playbook(ROOT / "playbooks" / "kafka_rolling_restart.yml"))
    after = started_at()
    assert all(after[n] != before[n] for n in NODES), "every node was restarted"


# --- day 2: a Kafka upgrade, node by node under load; back again until metadata.version is raised -------------------
UPGRADE_TO = os.environ.get("AP_KAFKA_UPGRADE_VERSION", "4.2.1")


def process_versions(name: str) -> set[str]:
    """The Kafka versions the running broker process said it runs when it started (its journal since this start:
    what it runs, not what its link says)."""
    h = lab_host(name)
    out = h.run(
        "journalctl -q -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -p InvocationID --value kafka)"
        " | grep -F 'org.apache.kafka.common.utils.AppInfoParser'"
    ).stdout
    return set(re.findall(r"INFO Kafka version: ([0-9][^ ]*) ", out))


def metadata_version() -> str:
    """The cluster's finalized metadata.version (kafka-features describe on kafka-1, as the admin)."""
    h = lab_host("kafka-1")
    props = (
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nssl.truststore.type=PEM\n"
        "ssl.truststore.location=/etc/analytics-platform/pki/ca.crt\nsasl.jaas.config=org.apache.kafka.common.security"
        f'.scram.ScramLoginModule required username="admin" password="{lab_secret("kafka_admin")}";\n'
    )
    try:
        h.run_expect([0], f"umask 077 && printf '%b' {shlex.quote(props)} > /root/features.properties")
        out = h.run(
            "java -cp '/opt/kafka/current/libs/*' org.apache.kafka.tools.FeatureCommand --bootstrap-server kafka-1:9092"
            " --command-config /root/features.properties describe"
        ).stdout
    finally:
        h.run("rm -f /root/features.properties")
    m = re.search(r"Feature: metadata[.]version\s.*FinalizedVersionLevel: ([0-9][^\s]*)", out)
    assert m, f"kafka-features describe printed no metadata.version: {out[:500]}"
    return m.group(1)


def task_statuses(output: str, task: str) -> list[str]:
    """The result lines (ok, changed, skipping, ...) of the task called `task` in a playbook run's output."""
    out, inside = [], False
    for line in output.splitlines():
        if line.startswith("TASK ["):
            inside = line.split(" : ", 1)[-1].rstrip("* ").rstrip("]") == task
        elif inside and re.match(r"^(ok|changed|skipping|fatal|failed): ", line):
            out.append(line.split(":", 1)[0])
    return out


def converge_with(version: str, scenario: Path):
    return ansible_playbook(scenario / "converge.yml", "-e", f"kafka_version={version}")


@pytest.mark.drill
def test_a_kafka_upgrade_rolls_node_by_node_under_load_and_goes_back_until_metadata_version_is_raised(scenario_dir):
    """site.yml's kafka role with a new kafka_version: each node switches to it at its own restart (one at a time,
    the cluster healed in between) while a producer writes; metadata.version stays, so the old version comes back the
    same way. playbooks/kafka_features.yml then raises metadata.version to the new release (once; again: no change),
    after which the role refuses the old version and changes nothing."""
    tgz = ROOT / "artifacts" / f"kafka_2.13-{UPGRADE_TO}.tgz"
    assert tgz.exists(), f"{tgz} is missing: AP_KAFKA_EXTRA_VERSIONS={UPGRADE_TO} make artifacts (make test-heavy does)"
    (old,) = process_versions("kafka-1")
    assert old != UPGRADE_TO
    release = ".".join(UPGRADE_TO.split(".")[:2])
    metadata_before = metadata_version()
    assert not metadata_before.startswith(release), metadata_before

    for version in (UPGRADE_TO, old):
        before = started_at()
        r = under_load(lambda v=version: converge_with(v, scenario_dir))
        after = started_at()
        assert all(after[n] != before[n] for n in NODES), f"not every node was restarted for {version}"
        for n in NODES:
            assert process_versions(n) == {version}, f"{n} runs {process_versions(n)}, not {version}"
        assert metadata_version() == metadata_before, "a version change moved metadata.version"
        # Node by node: each restart came after the previous node was back (the rolling restart's own gate).
        ordered = sorted(after.values(), key=int)
        assert all(int(b) - int(a) > 5_000_000 for a, b in itertools.pairwise(ordered)), after
        # No link changed under a running broker: each node switched at its own turn, just before its restart.
        assert set(task_statuses(r.stdout, "Point the current version at it")) == {"skipping"}, r.stdout[-3000:]
        for n in NODES:
            assert task_statuses(r.stdout, f"Point at kafka_version the node that restarts next, {n}") == ["changed"]

    r = converge_with(UPGRADE_TO, scenario_dir)
    assert r.returncode == 0, r.output[-2000:]
    features = ROOT / "playbooks" / "kafka_features.yml"
    r = ansible_playbook(features, "-e", f"kafka_release_version={release}", "--check")
    assert r.returncode == 0, r.output[-2000:]
    assert f"would raise metadata.version from {metadata_before} to release {release}" in r.stdout
    assert metadata_version() == metadata_before, "--check raised metadata.version"
    r = ansible_playbook(features, "-e", f"kafka_release_version={release}")
    assert r.returncode == 0, r.output[-2000:]
    raised = metadata_version()
    assert raised.split("-")[0] == release, raised
    r = ansible_playbook(features, "-e", f"kafka_release_version={release}")
    assert r.returncode == 0 and not re.search(r"changed=[1-9]", r.stdout), r.output[-2000:]

    r = converge_with(old, scenario_dir)
    assert r.returncode != 0, "the role installed a version older than the cluster's metadata.version"
    assert (
        f"kafka_version {old} cannot run this cluster: its metadata.version is {raised} (raised by "
        f"playbooks/kafka_features.yml), which needs Kafka {release} or newer" in " ".join(r.output.split())
    ), r.output[-2000:]
    for n in NODES:
        assert process_versions(n) == {UPGRADE_TO}
        assert lab_host(n).run("readlink /opt/kafka/current").stdout.strip().endswith(UPGRADE_TO)
    r = ansible_playbook(features, "-e", f"kafka_release_version={'.'.join(old.split('.')[:2])}")
    assert r.returncode != 0 and "lowering it is refused" in " ".join(r.output.split()), r.output[-2000:]


# --- durability under the loss of a zone (last: it stops and restarts a broker) -------------------------------------
@pytest.mark.drill
def test_zone_loss_loses_and_duplicates_nothing():
    marker = str(uuid.uuid4())
    total = 10_000
    cfg = api_conf(**{"acks": "all", "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 120000})
    producer = Producer(cfg)
    errors, delivered = [], []

    def on_delivery(err, msg):
        (errors if err else delivered).append(err or msg.offset())

    stopped = threading.Event()

    def stop_zone_b():
        while len(delivered) < 3000:
            time.sleep(0.05)
        lab_host("kafka-2").run("systemctl stop kafka")
        stopped.set()

    stopper = threading.Thread(target=stop_zone_b, daemon=True)
    stopper.start()
    try:
        for i in range(total):
            body = json.dumps({"run": marker, "seq": i}).encode()
            while True:
                try:
                    producer.produce(TOPIC, key=str(i).encode(), value=body, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            if i % 500 == 0:
                time.sleep(0.05)  # spread the load so the broker stops mid-stream
        assert producer.flush(120) == 0
        stopper.join(60)
        assert stopped.is_set(), "the broker was never stopped"
        assert errors == []
        assert len(delivered) == total

        # With zone-b down, the cluster still accepts acks=all writes (min.insync.replicas 2 of 3).
        more = [(b"x", json.dumps({"run": marker, "seq": total + i}).encode()) for i in range(100)]
        assert produce(cfg, more) == []

        seen = consume_all(admin_conf(), marker, total + 100)
        assert len(seen) == total + 100, f"{total + 100 - len(seen)} events missing"
        assert len(set(seen)) == len(seen), "duplicates were delivered"
    finally:
        lab_host("kafka-2").run("systemctl start kafka")

    # The broker rejoins and the cluster heals.
    admin = AdminClient(admin_conf())
    deadline = time.time() + 180
    while time.time() < deadline:
        brokers = len(admin.describe_cluster().result(timeout=30).nodes)
        if brokers == 3 and under_replicated(admin) == 0:
            break
        time.sleep(3)
    assert brokers == 3
    assert under_replicated(admin) == 0
