"""pytest fixtures (a pytest11 plugin): `test_pki`, `kafka`, `postgres`, `seaweedfs` start once per session;
`sink_db_user`, `sink_env` and `delta_env` configure the sinks against them (shared by every service's tests)."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from analytics_testing.pki import make_pki
from analytics_testing.servers import ROOT, Kafka, Postgres, SeaweedFS


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def kafka(test_pki):
    folder = Path(tempfile.mkdtemp(prefix="ap-kafka-"))
    k = Kafka(folder, test_pki)
    k.start()
    k.setup_platform()
    yield k
    gc.collect()  # clients the tests dropped are destroyed while the broker still answers (no reconnect noise)
    k.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(test_pki):
    pki = dict(test_pki)
    pg = Postgres(pki)
    pg.start()
    pg.create_database()
    yield pg
    pg.cleanup()


@pytest.fixture(scope="session")
def seaweedfs(test_pki):
    folder = Path(tempfile.mkdtemp(prefix="ap-weed-"))
    s = SeaweedFS(folder, test_pki)
    s.start()
    yield s
    s.stop()
    shutil.rmtree(folder, ignore_errors=True)


def sink_grants() -> list[str]:
    """The grants the postgresql role gives the sink alone, from its template (grants.sql.j2)."""
    text = (ROOT / "roles" / "postgresql" / "templates" / "grants.sql.j2").read_text()
    sink = "TO {{ postgresql_sink_user }};"
    lines = [line for line in text.splitlines() if line.startswith("GRANT ") and line.endswith(sink)]
    assert lines, "no grant to the sink in grants.sql.j2"
    return [
        line.replace("{{ postgresql_sink_user }}", "analytics_sink").replace("{{ postgresql_database }}", "analytics")
        for line in lines
    ]


@pytest.fixture(scope="session")
def sink_db_user(postgres):
    """The sink's own PostgreSQL role with the privileges the postgresql role grants it (grants.sql.j2)."""
    import psycopg

    password = os.urandom(12).hex()
    with psycopg.connect(postgres.dsn(), autocommit=True) as c:
        c.execute("DROP ROLE IF EXISTS analytics_sink")
        c.execute(f"CREATE ROLE analytics_sink LOGIN PASSWORD '{password}'")
        for grant in sink_grants():
            c.execute(grant)
    return password


@pytest.fixture
def sink_env(kafka, postgres, sink_db_user):
    return {
        **kafka.env("PGSINK_", "pg-sink"),
        "PGSINK_PG_HOST": "127.0.0.1",
        "PGSINK_PG_PORT": str(postgres.port),
        "PGSINK_PG_USER": "analytics_sink",
        "PGSINK_PG_PASSWORD": sink_db_user,
        "PGSINK_PG_CA_FILE": str(postgres.pki["ca"]),
        "PGSINK_BATCH_SIZE": "200",
        "PGSINK_BATCH_SECONDS": "0.2",
        "PGSINK_METRICS_PORT": "0",
    }


@pytest.fixture
def delta_env(kafka, seaweedfs, tmp_path):
    access, secret = seaweedfs.identities["delta-writer"]
    return {
        **kafka.env("DELTA_", "delta-writer"),
        "DELTA_TABLE_URI": f"s3://analytics/delta/{tmp_path.name}",
        "DELTA_S3_ENDPOINT": seaweedfs.endpoint,
        "DELTA_S3_ACCESS_KEY": access,
        "DELTA_S3_SECRET_KEY": secret,
        "DELTA_S3_CA_FILE": str(seaweedfs.pki["ca"]),
        "DELTA_BATCH_ROWS": "500",
        "DELTA_BATCH_SECONDS": "1",
        "DELTA_METRICS_PORT": "0",
    }
