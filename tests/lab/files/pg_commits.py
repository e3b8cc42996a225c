"""Commits during a PostgreSQL failover, as a client that writes to the leader directly sees them:
    pg_commits.py ENV_FILE OUT RUN SECONDS

Runs on a pg_sink host with the sink's own settings (its EnvironmentFile: every member, target_session_attrs=read-write,
verify-full TLS, the sink's role). One row per transaction (event_type "drill-commit", properties.run = RUN); a row
counts as acknowledged once its COMMIT returned. After an error it reconnects every 0.2 s. Writes OUT (JSON) at the end:
{"acked": [event_ids], "errors": n, "outage": [last acknowledged commit before the first error, first one after it]}.
"""

import json
import sys
import time
import uuid

import psycopg

env_file, out, run, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
env = {}
with open(env_file, encoding="utf-8") as f:
    for line in f:
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            env[key] = json.loads(value) if value.startswith('"') else value

SQL = (
    "INSERT INTO analytics_events (event_id, event_type, event_time, received_at, properties, metadata) "
    "VALUES (%s, 'drill-commit', now(), now(), %s, '{}')"
)
acked, errors, last_ok, outage = [], 0, None, None
end = time.time() + seconds
while time.time() < end:
    try:
        with psycopg.connect(
            host=env["PGSINK_PG_HOST"],
            port=env["PGSINK_PG_PORT"],
            dbname=env["PGSINK_PG_DBNAME"],
            user=env["PGSINK_PG_USER"],
            password=env["PGSINK_PG_PASSWORD"],
            sslmode="verify-full",
            sslrootcert=env["PGSINK_PG_CA_FILE"],
            target_session_attrs="read-write",
            connect_timeout=3,
            application_name="drill-commits",
            autocommit=True,
        ) as conn:
            while time.time() < end:
                event_id = str(uuid.uuid4())
                conn.execute(SQL, (event_id, json.dumps({"run": run})))
                acked.append(event_id)
                now = time.time()
                if outage is not None and outage[1] is None:
                    outage[1] = now
                last_ok = now
                time.sleep(0.02)
    except psycopg.Error:
        errors += 1
        if outage is None and last_ok is not None:
            outage = [last_ok, None]
        time.sleep(0.2)
with open(out, "w", encoding="utf-8") as f:
    json.dump({"acked": acked, "errors": errors, "outage": outage}, f)
