"""Shared testinfra helpers for every scenario (pytest loads this conftest for molecule/*/tests).

Tests address lab hosts by name, so a test can act from one host on another (vantage points), and can run
ansible-playbook against the scenario's inventory (bad-input checks).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from functools import cache
from pathlib import Path

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[1]


def inventory_dir() -> str:
    return str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)


@cache
def inventory() -> dict:
    out = subprocess.run(
        ["ansible-inventory", "-i", inventory_dir(), "--list"], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def hostvars(name: str) -> dict:
    return inventory()["_meta"]["hostvars"][name]


def address(name: str) -> str:
    return hostvars(name)["ansible_host"]


@cache
def lab_host(name: str):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory_dir())


def tcp_open(vantage, ip: str, port: int, timeout: int = 3) -> bool:
    """Whether a TCP connection from `vantage` (a testinfra host) to ip:port is accepted."""
    r = vantage.run(f"timeout {timeout} bash -c '</dev/tcp/{ip}/{port}'")
    return r.rc == 0


def ansible_playbook(
    playbook: str | Path,
    *args: str,
    check: bool = False,
    preflight_only: bool = False,
    skip_roles: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """Run ansible-playbook against the scenario's inventory, as molecule's converge does. With preflight_only, only
    the tasks tagged preflight run (bad-input checks whose messages come from the roles' preflight), without those of
    skip_roles (each role tags its tasks with its name)."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / "collections"))
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"  # one line per result: messages are not folded
    cmd = ["ansible-playbook", "-i", inventory_dir(), str(playbook), *args]
    if preflight_only:
        cmd += ["--tags", "preflight"]
        # The checks read the hosts' facts, which their own runs do not change: gathered by the first of them, once per
        # host (as `make site` gathers them, smart), and kept for the others (a sixth of each run's time).
        env["ANSIBLE_GATHERING"] = "smart"
        env["ANSIBLE_CACHE_PLUGIN"] = "ansible.builtin.jsonfile"
        env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(ephemeral_dir() / "preflight-facts")
        env["ANSIBLE_CACHE_PLUGIN_TIMEOUT"] = "7200"
        if skip_roles:
            cmd += ["--skip-tags", ",".join(skip_roles)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=check, timeout=900)
    r.output = " ".join((r.stdout + r.stderr).split())  # whitespace-normalised, for message checks
    return r


def changed_per_host(output: str) -> dict[str, int]:
    """host -> changed=, from the play recap of ansible_playbook's (whitespace-normalised) output."""
    return {h: int(c) for h, c in re.findall(r"(\S+) : ok=\d+ changed=(\d+)", output)}


def assert_check_mode_changes_nothing(scenario_dir: Path, hosts: set[str]) -> None:
    """What an operator runs before a change (`--check --diff` on the running estate): the scenario's converge in check
    mode finishes and reports changed=0 on every host, `hosts` among them (an empty recap is no pass)."""
    r = ansible_playbook(scenario_dir / "converge.yml", "--check", "--diff")
    assert r.returncode == 0, r.output[-3000:]
    changed = changed_per_host(r.output)
    assert set(changed) >= hosts, r.output[-1500:]
    assert all(n == 0 for n in changed.values()), f"check mode would change {changed}: {r.output[-3000:]}"


def assert_refused(
    scenario_dir: Path,
    extra: str,
    message: str,
    watch: tuple[str, str] | None = None,
    preflight_only: bool | None = None,
    skip_roles: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """Bad input: the scenario's converge with `extra` fails, its output names `message`, and what the command
    `watch` = (host, command) prints on that host is the same before and after (nothing was half-applied). With
    preflight_only, only the roles' preflight tasks run; a check made later in the run needs False. By default it is
    True, except for an artifact's checksum (base: artifact checks the file on the controller before the copy).
    skip_roles: roles whose preflight cannot refuse `extra` (the scenario's other plays), left out to save time."""
    if preflight_only is None:
        preflight_only = "_checksum" not in extra

    def snapshot():
        return lab_host(watch[0]).run(watch[1]).stdout if watch else None

    before = snapshot()
    r = ansible_playbook(
        scenario_dir / "converge.yml", "-e", extra, preflight_only=preflight_only, skip_roles=skip_roles
    )
    assert r.returncode != 0, f"the converge accepted {extra}"
    assert message in r.output, f"{message!r} not in the output: {r.output[-1500:]}"
    assert snapshot() == before, f"{watch[1]} on {watch[0]} changed"
    return r


@pytest.fixture(scope="session")
def scenario_dir() -> Path:
    return Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])


def ephemeral_dir() -> Path:
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def lab_secret(name: str) -> str:
    """A test secret generated by the scenario (ansible.builtin.password lookup files in the ephemeral directory)."""
    return (ephemeral_dir() / "secrets" / name).read_text().split()[0]


def lab_ca() -> str:
    return str(ephemeral_dir() / "pki" / "ca.crt")


def ansible_module(module: str, args: dict, check: bool = False) -> dict:
    """Run one module on the controller (as the roles' admin tasks do) and return its JSON result."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / "collections"))
    env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
    cmd = ["ansible", "localhost", "-i", inventory_dir(), "-m", module, "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    r = subprocess.run(cmd, env=env, capture_output=True, check=False, text=True, timeout=300)
    start = r.stdout.find("\n{")  # other callbacks (task timing) may print before the JSON document
    out, _unused = json.JSONDecoder().raw_decode(r.stdout[start + 1 :] if start >= 0 else r.stdout)
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


HTTP_PROBE = r"""
import json, ssl, sys, urllib.request, urllib.error
url, method, headers, data, ca = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
if len(sys.argv) > 7 and sys.argv[6]:
    ctx.load_cert_chain(sys.argv[6], sys.argv[7])
req = urllib.request.Request(url, data=data.encode() if data else None, headers=headers, method=method)
try:
    r = urllib.request.urlopen(req, context=ctx, timeout=15)
    code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
except Exception as e:
    code, body = 0, repr(e).encode()
print(code)
sys.stdout.write(body.decode("utf-8", "replace"))
"""


def http(
    host,
    url: str,
    method: str = "GET",
    headers: dict | None = None,
    data: str = "",
    ca: str = "/etc/analytics-platform/pki/ca.crt",
    client_cert: bool = False,
) -> tuple[int, str]:
    """A request made from a lab host (with its python3; TLS verified against the platform CA): (status, body).
    client_cert: present the host's own certificate (pki role)."""
    cert = ("/etc/analytics-platform/pki/host.crt", "/etc/analytics-platform/pki/host.key") if client_cert else ()
    args = " ".join(shlex.quote(a) for a in (HTTP_PROBE, url, method, json.dumps(headers or {}), data, ca, *cert))
    out = host.run(f"python3 -c {args}").stdout
    code, _unused, body = out.partition("\n")
    return int(code or 0), body


AUDIT = ROOT / "playbooks" / "audit.yml"


def run_audit(
    controls: list[str] | None = None, *args: str, name: str = "audit", keep: bool = True
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """playbooks/audit.yml against this scenario's hosts (only `controls` when given), as a user runs it; returns the
    run and the JSON report's results. The report is kept as reports/molecule/audit-<scenario>.json: make test's
    audit matrix (scripts/audit_matrix.py) reads every scenario's to show, per control, where it fails (the insecure
    twin) and where it passes (the hardened scenarios). keep=False for a run made to fail on purpose (a broken
    setting): its report is not the scenario's proof, and would replace it."""
    dest = ephemeral_dir() / name
    extra = {"audit_report_dir": str(dest)}
    if controls is not None:
        extra["audit_controls"] = controls
    r = ansible_playbook(AUDIT, "-e", json.dumps(extra), *args)
    report = dest / "audit.json"
    assert report.is_file(), r.output[-3000:]
    if keep:
        kept = ROOT / "reports" / "molecule" / f"audit-{os.environ.get('MOLECULE_SCENARIO_NAME', 'scenario')}.json"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(report.read_text())
    return r, json.loads(report.read_text())["results"]


def entries(results: list[dict], control: str) -> list[dict]:
    return [r for r in results if r["control"] == control]


def assert_passes(results: list[dict], controls: list[str]) -> None:
    """Each control has entries, and every one of them passes (or does not apply, with its reason)."""
    for control in controls:
        mine = entries(results, control)
        assert mine, f"no entry for {control}"
        bad = [r for r in mine if r["status"] not in ("pass", "not_applicable")]
        assert not bad, json.dumps(bad, indent=1, default=str)[:3000]
        assert any(r["status"] == "pass" for r in mine), f"{control}: nothing passed: {mine}"


def served_fingerprint(vantage, name: str, port: int, postgres: bool = False) -> str:
    """SHA-256 fingerprint (AB:CD:..., as openssl prints it) of the certificate name:port serves, seen from vantage (a
    testinfra host) and verified against the platform CA for that name. postgres: PostgreSQL's SSLRequest first."""
    code = (
        "import hashlib, socket, ssl, struct\n"
        "ctx = ssl.create_default_context(cafile='/etc/analytics-platform/pki/ca.crt')\n"
        f"raw = socket.create_connection(({name!r}, {port}), timeout=10)\n"
        + ("raw.sendall(struct.pack('!ii', 8, 80877103))\nassert raw.recv(1) == b'S'\n" if postgres else "")
        + f"s = ctx.wrap_socket(raw, server_hostname={name!r})\n"
        "print(hashlib.sha256(s.getpeercert(True)).hexdigest())"
    )
    r = py(vantage, code)
    assert r.rc == 0, f"{name}:{port}: {r.stderr}"
    digest = r.stdout.strip().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def installed_fingerprint(name: str) -> str:
    """SHA-256 fingerprint of the host certificate installed on a lab host (the pki role's host.crt)."""
    cmd = "openssl x509 -noout -fingerprint -sha256 -in /etc/analytics-platform/pki/host.crt"
    out = lab_host(name).check_output(cmd)
    return out.split("=", 1)[1].strip()


def wait_for(fn, timeout: float = 150, step: float = 3):
    """Call fn until it returns something truthy or timeout seconds passed; return its last value."""
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value or time.time() > deadline:
            return value
        time.sleep(step)


def dashboards() -> dict[str, dict]:
    """The grafana role's dashboards: {file name: dashboard}."""
    folder = ROOT / "roles" / "grafana" / "files" / "dashboards"
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def dashboard_metric_names(tag: str) -> set[str]:
    """The metric names the PromQL queries of the dashboards tagged `tag` read."""
    model = dashboard_model()
    names: set[str] = set()
    for dash in dashboards().values():
        if tag in dash.get("tags", []):
            for _title, kind, query in model.dashboard_queries(json.dumps(dash)):
                if kind == "prometheus":
                    names |= model.promql_metric_names(query)
    return names


@cache
def dashboard_model():
    """plugins/module_utils/dashboards.py (plain Python), as the grafana role's preflight runs it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dashboards", ROOT / "plugins" / "module_utils" / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def samples(text: str) -> dict[str, float]:
    """The samples of a /metrics page: {"name{labels}": value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _sep, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def exposition_names(text: str) -> set[str]:
    """Metric names a /metrics page declares or samples, with the series names a histogram, summary or counter
    family gives (a labelled family with no sample yet is declared only by its # TYPE line)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
            names |= {family, *(family + s for s in ("_total", "_bucket", "_count", "_sum", "_created"))}
        elif line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


def psql(host, sql: str, db: str = "analytics") -> str:
    """As postgres over the local socket (peer); the rows, unaligned."""
    r = host.run(f"cd /tmp && runuser -u postgres -- psql -XAtq -d {db} -v ON_ERROR_STOP=1 -c {shlex.quote(sql)}")
    assert r.rc == 0, r.stderr
    return r.stdout.strip()


def py(host, code: str):
    """Run a Python snippet on a lab host (python3 is on every host); returns the testinfra result."""
    import shlex

    return host.run(f"python3 -c {shlex.quote(code)}")


def pytest_runtest_logreport(report) -> None:
    """Append each failed test with its error line to reports/molecule/<scenario>.failures, which
    scripts/molecule.sh prints after molecule's recap (so the end of a CI log names what failed)."""
    if not report.failed or "MOLECULE_SCENARIO_NAME" not in os.environ:
        return
    path = ROOT / "reports" / "molecule" / f"{os.environ['MOLECULE_SCENARIO_NAME']}.failures"
    path.parent.mkdir(parents=True, exist_ok=True)
    crash = getattr(report.longrepr, "reprcrash", None)
    lines = (crash.message if crash else str(report.longrepr).strip()).splitlines()
    with path.open("a") as f:
        f.write(f"FAILED ({report.when}) {report.nodeid}\n" + "".join(f"    {line[:300]}\n" for line in lines[:8]))
