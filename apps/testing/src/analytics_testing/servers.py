"""Start real single-node servers for tests: Kafka (KRaft, SASL_SSL, ACLs), PostgreSQL (TLS, SCRAM), SeaweedFS (S3/TLS).

Each server runs from this repository's artifacts/ (built by scripts/build-artifacts.sh) or Debian's packages, listens
on 127.0.0.1 only, on free ports, in a temporary folder, and is stopped at the end of the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
ARTIFACTS = Path(os.environ.get("AP_ARTIFACTS", ROOT / "artifacts"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# --- Kafka ----------------------------------------------------------------------------------------------------------
KAFKA_USERS = ("admin", "analytics-api", "pg-sink", "delta-writer")


@dataclass
class Kafka:
    folder: Path
    pki: dict
    port: int = 0
    controller_port: int = 0
    passwords: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def conf(self, user: str = "admin", **extra) -> dict:
        c = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": self.passwords[user],
            "ssl.ca.location": str(self.pki["ca"]),
        }
        c.update(extra)
        return c

    def env(self, prefix: str, user: str, topic: str = "analytics-events") -> dict:
        return {
            f"{prefix}KAFKA_BOOTSTRAP": self.bootstrap,
            f"{prefix}KAFKA_USERNAME": user,
            f"{prefix}KAFKA_PASSWORD": self.passwords[user],
            f"{prefix}KAFKA_CA_FILE": str(self.pki["ca"]),
            f"{prefix}KAFKA_TOPIC": topic,
        }

    def home(self) -> Path:
        # The pom's version: artifacts/ may also hold the upgrade drill's (AP_KAFKA_EXTRA_VERSIONS).
        version = re.search(r"<kafka.version>([^<]+)</kafka.version>", (ROOT / "build/kafka/pom.xml").read_text())[1]
        tgz = ARTIFACTS / f"kafka_2.13-{version}.tgz"
        if not tgz.exists():
            raise RuntimeError(f"no {tgz.name} in {ARTIFACTS}: run scripts/build-artifacts.sh")
        target = self.folder / "dist"
        if not target.exists():
            with tarfile.open(tgz) as t:
                t.extractall(target, filter="data")
        (home,) = target.iterdir()
        return home

    def start(self) -> None:
        home = self.home()
        if not self.port:
            self.port, self.controller_port = free_port(), free_port()
            self.passwords = {u: os.urandom(12).hex() for u in KAFKA_USERS}
        keystore = self.folder / "keystore.pem"
        keystore.write_text(self.pki["key"].read_text() + self.pki["cert"].read_text())
        props = self.folder / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    "controller.listener.names=CONTROLLER",
                    f"listeners=SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=SASL_SSL://127.0.0.1:{self.port}",
                    "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
                    "inter.broker.listener.name=SASL_SSL",
                    "sasl.enabled.mechanisms=SCRAM-SHA-512",
                    "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                    "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram."
                    f'ScramLoginModule required username="admin" password="{self.passwords["admin"]}";',
                    "listener.name.controller.ssl.client.auth=required",
                    "ssl.keystore.type=PEM",
                    f"ssl.keystore.location={keystore}",
                    "ssl.truststore.type=PEM",
                    f"ssl.truststore.location={self.pki['ca']}",
                    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                    "allow.everyone.if.no.acl.found=false",
                    "super.users=User:admin;User:CN=localhost",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    f"log.dirs={self.folder / 'data'}",
                    "num.partitions=3",
                ]
            )
            + "\n"
        )
        java = ["java", "-Xms256m", "-Xmx384m", "-cp", f"{home}/libs/*"]
        log = self.folder / "kafka.log"
        if not (self.folder / "data" / "meta.properties").exists():
            args = self.folder / "format.args"
            scram = [f'"SCRAM-SHA-512=[name={u},password={p}]"' for u, p in self.passwords.items()]
            lines = ["kafka.tools.StorageTool", "format", "-t", "test-cluster-000000001", "-c", str(props)]
            for s in scram:
                lines += ["--add-scram", s]
            args.write_text("\n".join(lines) + "\n")
            args.chmod(0o600)
            subprocess.run([*java, f"@{args}"], check=True, capture_output=True, timeout=120)
            args.unlink()
        self.proc = subprocess.Popen(
            [*java, f"-Dlog4j2.configurationFile={home}/config/log4j2.yaml", "kafka.Kafka", str(props)],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_port(self.port, 120, self.proc, log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self.conf())
        deadline = time.time() + 90
        while True:
            try:
                if admin.describe_cluster().result(timeout=10).nodes:
                    return
            except Exception:
                if time.time() > deadline:
                    raise
            time.sleep(1)

    def setup_platform(self) -> None:
        """The platform's topics and ACLs, as the kafka role creates them (one broker: replication factor 1)."""
        from confluent_kafka.admin import AclBinding, AdminClient, NewTopic

        admin = AdminClient(self.conf())
        topics = [NewTopic("analytics-events", 3, 1), NewTopic("analytics-events-dlq", 1, 1)]
        for f in admin.create_topics(topics).values():
            with contextlib.suppress(Exception):
                f.result(30)
        acls = []

        def allow(user, rtype, name, op, pattern="LITERAL"):
            acls.append(AclBinding(rtype, name, pattern, f"User:{user}", "*", op, "ALLOW"))

        for t in ("analytics-events",):
            allow("analytics-api", "TOPIC", t, "WRITE")
            allow("analytics-api", "TOPIC", t, "DESCRIBE")
        allow("analytics-api", "TRANSACTIONAL_ID", "analytics-api", "WRITE", "PREFIXED")
        allow("analytics-api", "TRANSACTIONAL_ID", "analytics-api", "DESCRIBE", "PREFIXED")
        for user in ("pg-sink", "delta-writer"):
            allow(user, "TOPIC", "analytics-events", "READ")
            allow(user, "TOPIC", "analytics-events", "DESCRIBE")
            allow(user, "GROUP", user, "READ", "PREFIXED")  # tests use one group per test: <user>-<id>
            allow(user, "TOPIC", "analytics-events-dlq", "WRITE")
            allow(user, "TOPIC", "analytics-events-dlq", "DESCRIBE")
            allow(user, "TRANSACTIONAL_ID", user, "WRITE", "PREFIXED")  # dead letters and offsets, one transaction
            allow(user, "TRANSACTIONAL_ID", user, "DESCRIBE", "PREFIXED")
        # Each sink reports the lag of the other's groups too (kafka_clients' lag_groups).
        allow("pg-sink", "GROUP", "delta-writer", "DESCRIBE", "PREFIXED")
        allow("delta-writer", "GROUP", "pg-sink", "DESCRIBE", "PREFIXED")
        for f in admin.create_acls(acls).values():
            f.result(30)

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None


# --- PostgreSQL -------------------------------------------------------------------------------------------------------
SCHEMA = ROOT / "roles" / "postgresql" / "files" / "analytics_events.sql"


@dataclass
class Postgres:
    pki: dict
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ap-pg-")))
    port: int = 0
    password: str = field(default_factory=lambda: os.urandom(12).hex())
    proc: subprocess.Popen | None = None

    def _as_postgres(self, *cmd, **kw):
        return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, **kw)

    def start(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError("PostgreSQL 15 is not installed: scripts/test-apps.sh installs postgresql-15")
        self.port = self.port or free_port()
        data = self.folder / "data"
        self.folder.chmod(0o755)
        shutil.chown(self.folder, "postgres", "postgres")
        if not data.exists():
            pwfile = self.folder / "pw"
            pwfile.write_text(self.password)
            shutil.chown(pwfile, "postgres", "postgres")
            self._as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
            )
            pwfile.unlink()
            for name in ("cert", "key"):
                target = data / f"server.{'crt' if name == 'cert' else 'key'}"
                shutil.copy(self.pki[name], target)
                shutil.chown(target, "postgres", "postgres")
                target.chmod(0o600)
            with (data / "postgresql.conf").open("a") as f:
                f.write(
                    f"listen_addresses = '127.0.0.1'\nport = {self.port}\nssl = on\n"
                    f"unix_socket_directories = '{self.folder}'\npassword_encryption = 'scram-sha-256'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                )
            (data / "pg_hba.conf").write_text("local all postgres peer\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
        log = self.folder / "postgres.log"
        shutil.chown(self.folder, "postgres", "postgres")
        self.proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(data)],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_port(self.port, 60, self.proc, log)
        time.sleep(0.5)

    def dsn(self, dbname: str = "analytics", user: str = "postgres", password: str | None = None) -> str:
        pw = self.password if password is None else password
        return (
            f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} password={pw} "
            f"sslmode=verify-full sslrootcert={self.pki['ca']}"
        )

    def create_database(self, name: str = "analytics") -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as c:
            exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                c.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.dsn(name), autocommit=True) as c:
            c.execute(SCHEMA.read_text())
            c.execute("CREATE TABLE IF NOT EXISTS analytics_events_default PARTITION OF analytics_events DEFAULT")

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- SeaweedFS --------------------------------------------------------------------------------------------------------
@dataclass
class SeaweedFS:
    folder: Path
    pki: dict
    port: int = 0
    identities: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    anonymous_read: bool = False  # a misconfigured store (the audit's tests): anyone may read objects
    versioned: bool = True  # the data bucket as the seaweedfs role makes it: versioning on

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, bucket: str = "analytics") -> None:
        weed = ARTIFACTS / "weed"
        if not weed.exists():
            raise RuntimeError(f"no weed binary in {ARTIFACTS}: run scripts/build-artifacts.sh")
        self.port = self.port or free_port()
        self.identities = {
            name: (os.urandom(10).hex(), os.urandom(20).hex()) for name in ("admin", "delta-writer", "delta-dashboard")
        }
        actions = {
            "admin": ["Admin", "Read", "Write", "List", "Tagging"],
            "delta-writer": [f"Read:{bucket}", f"Write:{bucket}", f"List:{bucket}", f"Tagging:{bucket}"],
            "delta-dashboard": [f"Read:{bucket}", f"List:{bucket}"],
        }
        config = {
            "identities": [
                {"name": n, "credentials": [{"accessKey": a, "secretKey": s}], "actions": actions[n]}
                for n, (a, s) in self.identities.items()
            ]
            + ([{"name": "anonymous", "actions": ["Read"]}] if self.anonymous_read else [])
        }
        cfg = self.folder / "s3.json"
        cfg.write_text(json.dumps(config))
        cfg.chmod(0o600)
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        # gRPC ports default to port + 10000, which may not exist: every port is chosen explicitly.
        ports = {
            k: free_port() for k in ("master", "volume", "filer", "master_grpc", "volume_grpc", "filer_grpc", "s3_grpc")
        }
        log = self.folder / "weed.log"
        self.proc = subprocess.Popen(
            [
                str(weed),
                "server",
                f"-dir={data}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={ports['master']}",
                f"-master.port.grpc={ports['master_grpc']}",
                f"-volume.port={ports['volume']}",
                f"-volume.port.grpc={ports['volume_grpc']}",
                "-volume.max=40",  # each bucket is a collection with volumes of its own (the tests make several)
                "-filer",
                f"-filer.port={ports['filer']}",
                f"-filer.port.grpc={ports['filer_grpc']}",
                "-s3",
                f"-s3.port={self.port}",
                f"-s3.port.grpc={ports['s3_grpc']}",
                f"-s3.config={cfg}",
                f"-s3.cert.file={self.pki['cert']}",
                f"-s3.key.file={self.pki['key']}",
                "-master.volumeSizeLimitMB=64",
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_port(self.port, 90, self.proc, log)
        s3 = self.client("admin")
        deadline = time.time() + 60
        while True:
            try:
                s3.create_bucket(Bucket=bucket)
                break
            except s3.exceptions.BucketAlreadyOwnedByYou:
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        if self.versioned:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def client(self, identity: str):
        import boto3
        from botocore.config import Config

        access, secret = self.identities[identity]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            verify=str(self.pki["ca"]),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None


# --- faults -----------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def blackhole(port: int):
    """Drop (not refuse) every packet to and from 127.0.0.1:`port` while the block runs: a server that vanished from
    the network, as a partition or a dead host looks to its clients. Needs root (iptables), as the tests run."""
    rules = [
        ["-p", "tcp", "-d", "127.0.0.1", "--dport", str(port)],
        ["-p", "tcp", "-s", "127.0.0.1", "--sport", str(port)],
    ]
    tag = ["-m", "comment", "--comment", f"analytics-platform-test-blackhole-{port}", "-j", "DROP"]
    for r in rules:
        subprocess.run(["iptables", "-w", "-I", "OUTPUT", *r, *tag], check=True, capture_output=True)
    try:
        yield
    finally:
        for r in rules:
            subprocess.run(["iptables", "-w", "-D", "OUTPUT", *r, *tag], check=False, capture_output=True)
