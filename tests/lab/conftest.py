"""Fault drills of the whole platform on the running lab (make drills, part of make test-heavy, after make lab).

The lab's containers are driven from this machine with `docker`: a load generator on the outside host posts through
both load balancers, faults are injected into the containers (stopped, killed, blackholed), and the stores are
counted per event_id afterwards. Needs the lab's vault password (ANSIBLE_VAULT_PASSWORD_FILE, set by make).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "lab"
RESULTS = ROOT / "reports" / "drills"


def run(argv: list[str], timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check)


@cache
def inventory() -> dict:
    return json.loads(run(["ansible-inventory", "-i", str(INVENTORY), "--list"]).stdout)


def hosts(group: str) -> list[str]:
    inv = inventory()
    out, todo = [], [group]
    while todo:
        g = inv.get(todo.pop(), {})
        out += [h for h in g.get("hosts", []) if h not in out]
        todo += g.get("children", [])
    return out


def zone_of(host: str) -> str:
    return inventory()["_meta"]["hostvars"][host]["zone"]


def container(host: str) -> str:
    return f"ap-lab-{host}"


def sh(host: str, cmd: str, timeout: float = 300, check: bool = True) -> str:
    """Run a shell command in a lab host's container (as root); its stdout."""
    r = run(["docker", "exec", container(host), "bash", "-c", cmd], timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"{host}: {cmd[:120]} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return r.stdout


@cache
def lab_var(name: str) -> str:
    """A variable as the play sees it (templated, vault decrypted), through the json stdout callback."""
    env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    argv = ["ansible", "-i", str(INVENTORY), "localhost", "-m", "ansible.builtin.debug", "-a", f"var={name}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True, env=env)
    # The timer callbacks print before and after the JSON document.
    out, _unused = json.JSONDecoder().raw_decode(r.stdout[r.stdout.index("\n{") + 1 :])
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"][name]


@dataclass
class Load:
    """A load generator running on the outside host (tests/lab/files/drill_load.py)."""

    session: str
    total: int
    out: str = field(init=False)

    def __post_init__(self):
        self.out = f"/tmp/{self.session}.json"

    def start(self, batch: int = 100, rate: float = 1.0) -> Load:
        client = hosts("vantage")[0]
        run(
            [
                "docker",
                "cp",
                str(ROOT / "tests" / "lab" / "files" / "drill_load.py"),
                f"{container(client)}:/tmp/drill_load.py",
            ]
        )
        run(["docker", "cp", str(Path(lab_var("pki_ca_dir")) / "ca.crt"), f"{container(client)}:/tmp/drill-ca.crt"])
        edges = " ".join(hosts("nginx"))
        run(
            [
                "docker",
                "exec",
                "-d",
                "-e",
                f"DRILL_API_KEY={lab_var('vault_api_key_lab')}",
                container(client),
                "bash",
                "-c",
                f"python3 /tmp/drill_load.py {self.out} /tmp/drill-ca.crt {self.session} {self.total} "
                f"{batch} {rate} {edges} > /tmp/{self.session}.log 2>&1",
            ]
        )
        self.client = client
        return self

    def state(self) -> dict:
        text = sh(self.client, f"cat {self.out} 2>/dev/null || echo '{{}}'")
        return json.loads(text or "{}")

    def wait_accepted(self, n: int, timeout: float = 300) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.state()
            if len(s.get("accepted", [])) >= n or s.get("done"):
                return s
            time.sleep(2)
        raise AssertionError(
            f"the load did not reach {n} accepted events in {timeout}s: {self.state().get('statuses')}"
        )

    def wait_done(self, timeout: float = 900) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.state()
            if s.get("done"):
                return s
            time.sleep(3)
        raise AssertionError(f"the load did not finish in {timeout}s: {self.state().get('statuses')}")


PG_COUNT = "SELECT event_id, count(*) FROM analytics_events WHERE session_id LIKE :'pattern' GROUP BY 1;"


def pg_counts(host: str, session: str) -> dict[str, int]:
    """event_id -> rows, for the run's sessions (psql quotes the pattern: it reaches the server as a literal)."""
    cmd = (
        f"cd /tmp && echo {shlex.quote(PG_COUNT)} | runuser -u postgres -- psql -XAtq -F ' ' -d analytics "
        f"-v pattern={shlex.quote(session + '-%')}"
    )
    out = sh(host, cmd)
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.strip()}


DELTA_COUNT = """
import json, os, sys
import pyarrow.compute as pc
import pyarrow.dataset as ds
from delta_writer.config import load_config
from delta_writer.table import storage_options
from deltalake import DeltaTable
cfg = load_config()
t = DeltaTable(cfg.table_uri, storage_options=storage_options(cfg)).to_pyarrow_dataset()
rows = t.to_table(columns=["event_id"], filter=pc.starts_with(ds.field("session_id"), sys.argv[1] + "-"))
out = {}
for e in rows.column("event_id").to_pylist():
    out[e] = out.get(e, 0) + 1
print(json.dumps(out), flush=True)
os._exit(0)  # delta-rs's runtime can abort the interpreter's teardown ("terminate called without an active exception")
"""


def delta_counts(session: str) -> dict[str, int]:
    host = hosts("delta_writer")[0]
    venv = "/opt/analytics-platform/delta-writer/venv/bin/python"
    cmd = (
        "cat > /tmp/drill_delta_count.py <<'PY'\n" + DELTA_COUNT + "PY\n"
        f"set -a && . /etc/analytics-platform/delta-writer.env && set +a && {venv} /tmp/drill_delta_count.py {session}"
    )
    return json.loads(sh(host, cmd, timeout=300))


def verify(session: str, accepted: list[str], timeout: float = 600, strict: bool = True) -> dict:
    """Wait until every accepted event is in PostgreSQL (primary and replica) and in Delta; then every event_id of the
    run is there exactly once. Returns the counts; strict=False leaves the asserting to the caller (who records the
    counts first)."""
    want = set(accepted)
    stores = {f"postgresql {h}": (lambda h=h: pg_counts(h, session)) for h in hosts("postgresql")}
    stores["delta"] = lambda: delta_counts(session)
    deadline = time.time() + timeout
    seen = {}
    while time.time() < deadline:
        seen = {name: count() for name, count in stores.items()}
        if all(want <= set(c) for c in seen.values()):
            break
        time.sleep(10)
    report = {}
    for name, counts in seen.items():
        missing = want - set(counts)
        doubled = {e: n for e, n in counts.items() if n != 1}
        report[name] = {
            "rows": sum(counts.values()),
            "events": len(counts),
            "missing": len(missing),
            "more_than_once": len(doubled),
        }
        if not strict:
            continue
        assert not missing, (
            f"{name}: {len(missing)} of {len(want)} accepted events are missing (e.g. {sorted(missing)[:3]})"
        )
        assert not doubled, f"{name}: {len(doubled)} events more than once (e.g. {list(doubled.items())[:3]})"
    return report


def record(name: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(f"\n{name}: {json.dumps(data)}")


@pytest.fixture
def session(request) -> str:
    return f"drill-{request.node.name.removeprefix('test_')[:20]}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session", autouse=True)
def lab_is_up():
    if not os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE"):
        pytest.fail("run the drills with make drills (the lab's vault password is needed)")
    down = [
        h
        for h in hosts("all")
        if run(["docker", "inspect", "-f", "{{.State.Running}}", container(h)], check=False).stdout.strip() != "true"
    ]
    assert not down, f"lab hosts not running: {down} (make lab first)"
