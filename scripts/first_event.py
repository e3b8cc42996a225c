"""A newcomer's first steps on the lab (make lab ends with `--show`; make post-event runs it without).

Without options: POST one event to the lab's public endpoint (nginx, TLS verified against the lab's CA) with the lab's
API key, read from the vault into memory (never an argument, never printed), and print its event_id and how to see it
in PostgreSQL and on the dashboard. The last line is machine-readable: `event_id=<uuid>`.
With --show: print the first steps only (the public URL, the command that posts an event, where to see it, the audit).
Needs the lab's vault password (ANSIBLE_VAULT_PASSWORD_FILE, set by make).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import ssl
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.analytics.platform.plugins.module_utils.platform import ports_of  # noqa: E402

INVENTORY = ROOT / "inventories" / "lab"
VAULT = INVENTORY / "group_vars" / "all" / "vault.yml"
CA = ROOT / ".lab" / "lab" / "pki" / "ca.crt"


def run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        sys.exit(
            f"first steps: {argv[0]} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
        )
    return r.stdout


class Lab:
    def __init__(self):
        self.inv = json.loads(run(["ansible-inventory", "-i", str(INVENTORY), "--list"]))

    def hosts(self, group: str) -> list[str]:
        out, todo = [], [group]
        while todo:
            g = self.inv.get(todo.pop(), {})
            out += [h for h in g.get("hosts", []) if h not in out]
            todo += g.get("children", [])
        if not out:
            sys.exit(f"first steps: the lab inventory has no host in group '{group}'")
        return out

    def vars(self, host: str) -> dict:
        return self.inv["_meta"]["hostvars"][host]

    def url(self, group: str, endpoint: str, port_index: int = 0) -> str:
        host = self.hosts(group)[0]
        port = ports_of(endpoint, self.vars(host))[port_index]
        return f"https://{self.vars(host)['ansible_host']}:{port}"

    def psql(self, sql: str, **params: str) -> str:
        """The shell command that runs `sql` on the primary; `params` become psql variables (:'name' in the SQL)."""
        db = self.hosts("postgresql_primary")[0]
        argv = ["docker", "exec", "-i", f"ap-lab-{db}", "runuser", "-u", "postgres", "--", "psql", "-d", "analytics"]
        argv += [f"--set={k}={v}" for k, v in params.items()]
        return f"echo {shlex.quote(sql)} | {shlex.join(argv)}"


def api_key() -> str:
    doc = yaml.safe_load(run(["ansible-vault", "view", str(VAULT)]))
    key = (doc or {}).get("vault_api_key_lab")
    if not key:
        sys.exit(f"first steps: {VAULT.relative_to(ROOT)} holds no vault_api_key_lab (run make lab-secrets)")
    return key


def show(lab: Lab) -> None:
    recent = "SELECT event_id, event_type, received_at FROM analytics_events ORDER BY received_at DESC LIMIT 5"
    print(f"""==> The platform is up. First steps:
  Public endpoint (nginx; the lab's CA is {CA.relative_to(ROOT)}):
      {lab.url("nginx", "nginx", 1)}/analytics
  Post one event with the lab's API key (read from the vault, never printed):
      make post-event
  See the newest events in PostgreSQL:
      {lab.psql(recent)}
  See them on the Delta dashboard (from this machine):
      {lab.url("delta_dashboard", "delta_dashboard")}/
  Audit the lab against the guide's security checklist (report: reports/audit/audit.html):
      make audit""")


def post(lab: Lab) -> None:
    base = lab.url("nginx", "nginx", 1)
    address, port = base.removeprefix("https://").rsplit(":", 1)
    event_id = str(uuid.uuid4())
    event = {
        "event_id": event_id,
        "event_type": "first_steps",
        "session_id": f"first-steps-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        "properties": {"source": "make post-event", "user": os.environ.get("USER", "")},
    }
    conn = http.client.HTTPSConnection(
        address, int(port), context=ssl.create_default_context(cafile=str(CA)), timeout=30
    )
    conn.request(
        "POST",
        "/analytics",
        body=json.dumps(event),
        headers={"content-type": "application/json", "x-api-key": api_key()},
    )
    response = conn.getresponse()
    body = response.read().decode("utf-8", "replace")
    if response.status != 202:
        sys.exit(f"first steps: {base}/analytics answered {response.status}: {body[:300]}")
    one = "SELECT event_id, event_type, session_id, received_at FROM analytics_events WHERE event_id = :'id'"
    print(f"""==> Accepted by {base}/analytics (HTTP 202): event {event_id}
  In PostgreSQL within seconds:
      {lab.psql(one, id=event_id)}
  On the Delta dashboard (the writer commits every few seconds): {lab.url("delta_dashboard", "delta_dashboard")}/
event_id={event_id}""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print the first steps only")
    args = parser.parse_args()
    if not CA.is_file():
        sys.exit(f"first steps: no lab CA at {CA.relative_to(ROOT)}: run make lab first")
    lab = Lab()
    show(lab) if args.show else post(lab)


if __name__ == "__main__":
    main()
