"""A newcomer's first steps, as `make lab` prints them: `make post-event` posts one event through nginx with the lab's
API key (from the vault, never printed) and the PostgreSQL command it prints finds that event; the commands that
`make first-steps` prints run as they are."""

from __future__ import annotations

import re
import subprocess
import time

import yaml
from conftest import ROOT, run


def make(target: str) -> str:
    r = subprocess.run(["make", "-s", target], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, f"make {target} failed: {r.stdout[-1000:]}{r.stderr[-1000:]}"
    return r.stdout + r.stderr


def shell(command: str) -> str:
    r = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, f"{command} failed: {r.stderr[-500:]}"
    return r.stdout


def commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(("echo ", "make "))]


def test_post_event_lands_in_postgresql_and_never_prints_the_key():
    out = make("post-event")
    key = yaml.safe_load(run(["ansible-vault", "view", str(ROOT / "inventories/lab/group_vars/all/vault.yml")]).stdout)
    assert key["vault_api_key_lab"] not in out
    event_id = re.search(r"^event_id=([0-9a-f-]{36})$", out, re.M).group(1)
    (query,) = [c for c in commands(out) if c.startswith("echo ")]
    for _n in range(30):
        rows = shell(query)
        if event_id in rows:
            break
        time.sleep(2)
    assert event_id in rows and "first_steps" in rows and "(1 row)" in rows, rows


def test_first_steps_print_commands_that_run():
    out = make("first-steps")
    assert re.search(r"https://10\.230\.\d+\.\d+:443/analytics", out), out
    assert "make post-event" in out and "make audit" in out
    (recent,) = [c for c in commands(out) if c.startswith("echo ")]
    assert "event_id" in shell(recent)
    dashboard = re.search(r"(https://10\.230\.\d+\.\d+:\d+)/\n", out).group(1)
    ca = ROOT / ".lab" / "lab" / "pki" / "ca.crt"
    assert shell(f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {ca} {dashboard}/health") == "200"
