"""New connections per second, straight to PostgreSQL (5432) and through pgbouncer (6432), alternating rounds:
    pg_connect_bench.py ENV_FILE HOST N ROUNDS

Runs on a pg_sink host with the sink's settings (its EnvironmentFile: the sink's role and password, the CA). Each
connection is what a short-lived client does: TLS (verify-full) and a SCRAM login, SELECT 1, close. Prints JSON:
{"5432": [connections/s per round, sorted], "6432": [...]}. The lab needs postgresql_pgbouncer: true.
"""

import json
import sys
import time

import psycopg

env = {}
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            env[key] = json.loads(value) if value.startswith('"') else value
host, n, rounds = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def rate(port: int) -> float:
    start = time.perf_counter()
    for _connection in range(n):
        with psycopg.connect(
            host=host,
            port=port,
            dbname=env["PGSINK_PG_DBNAME"],
            user=env["PGSINK_PG_USER"],
            password=env["PGSINK_PG_PASSWORD"],
            sslmode="verify-full",
            sslrootcert=env["PGSINK_PG_CA_FILE"],
        ) as conn:
            conn.execute("SELECT 1").fetchone()
    return n / (time.perf_counter() - start)


results: dict[str, list[float]] = {"5432": [], "6432": []}
for _round in range(rounds):
    for port in (5432, 6432):
        results[str(port)].append(round(rate(port), 1))
print(json.dumps({port: sorted(values) for port, values in results.items()}))
