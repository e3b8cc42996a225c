from __future__ import annotations

import os

import psycopg
import pytest


@pytest.fixture(scope="session")
def sink_db_user(postgres):
    """The sink's own PostgreSQL role with the privileges the postgresql role grants it: INSERT, SELECT on the
    conflict key (ON CONFLICT needs it) and TEMP."""
    password = os.urandom(12).hex()
    with psycopg.connect(postgres.dsn(), autocommit=True) as c:
        c.execute("DROP ROLE IF EXISTS analytics_sink")
        c.execute(f"CREATE ROLE analytics_sink LOGIN PASSWORD '{password}'")
        c.execute("GRANT INSERT, SELECT (event_id, event_time) ON analytics_events TO analytics_sink")
        c.execute("GRANT TEMPORARY ON DATABASE analytics TO analytics_sink")
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
