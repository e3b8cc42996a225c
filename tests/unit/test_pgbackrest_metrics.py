"""roles/postgresql/files/ap-pgbackrest-metrics against a stand-in `pgbackrest` (AP_PGBACKREST) printing what
pgBackRest's `info --output=json` prints (the scenario runs it against the real repository in the object store)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles/postgresql/files/ap-pgbackrest-metrics"


def backup(kind: str, start: int, stop: int, delta: int = 100, error: bool = False) -> dict:
    return {
        "type": kind,
        "timestamp": {"start": start, "stop": stop},
        "info": {"repository": {"delta": delta, "size": delta}},
        "error": error,
    }


def run(tmp_path: Path, stanza: str, answer: object, rc: int = 0, stderr: str = "") -> str:
    fake = tmp_path / "pgbackrest"
    fake.write_text(
        "#!/bin/sh\n"
        f"cat <<'EOF'\n{json.dumps(answer) if not isinstance(answer, str) else answer}\nEOF\n"
        f"echo {json.dumps(stderr)} >&2\nexit {rc}\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "out.prom"
    env = {**os.environ, "AP_PGBACKREST": str(fake)}
    subprocess.run([sys.executable, str(SCRIPT), stanza, str(out)], env=env, check=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pgbackrest.")]  # the temporary file renamed
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    return out.read_text()


def value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


def test_a_healthy_repository_exports_each_types_newest_good_backup_and_the_newest_wal(tmp_path):
    info = [
        {
            "name": "analytics",
            "status": {"code": 0, "message": "ok"},
            "backup": [
                backup("full", 1000, 1100, 5000),
                backup("incr", 2000, 2010, 50),
                backup("full", 3000, 3200, 6000),
                backup("incr", 4000, 4005, 70, error=True),  # no restore point
            ],
            "archive": [{"max": "000000020000000300000004", "min": "000000010000000000000001"}],
        }
    ]
    text = run(tmp_path, "analytics", info)
    assert value(text, "ap_pgbackrest_repo_ok", stanza="analytics", reason="ok") == 1
    assert value(text, "ap_pgbackrest_backup_last_completion_timestamp_seconds", type="full") == 3200
    assert value(text, "ap_pgbackrest_backup_last_completion_timestamp_seconds", type="incr") == 2010
    assert value(text, "ap_pgbackrest_backup_last_duration_seconds", type="full") == 200
    assert value(text, "ap_pgbackrest_backup_last_size_bytes", type="full") == 6000
    assert value(text, "ap_pgbackrest_backups", type="incr") == 2
    wal = "000000020000000300000004"
    assert value(text, "ap_pgbackrest_archive_last_segment", timeline="2", wal=wal) == 3 * 256 + 4
    assert value(text, "ap_pgbackrest_info_timestamp_seconds", stanza="analytics") > 0


MISSING = "missing stanza path"


@pytest.mark.parametrize(
    ("answer", "rc", "stderr", "reason"),
    [
        ([{"name": "analytics", "status": {"code": 1, "message": MISSING}}], 0, "", MISSING),
        ("", 28, "ERROR: [028]: unable to connect to pg-x:8333", "ERROR: [028]: unable to connect to pg-x:8333"),
        ("not json", 0, "", "JSONDecodeError"),
        ([{"name": "other", "status": {"code": 0, "message": "ok"}}], 0, "", "StopIteration"),
    ],
)
def test_a_repository_that_cannot_be_read_is_not_ok_and_has_no_backup_time(tmp_path, answer, rc, stderr, reason):
    text = run(tmp_path, "analytics", answer, rc, stderr)
    assert value(text, "ap_pgbackrest_repo_ok", stanza="analytics", reason=reason) == 0, text
    assert value(text, "ap_pgbackrest_backup_last_completion_timestamp_seconds") is None
    assert value(text, "ap_pgbackrest_info_timestamp_seconds", stanza="analytics") > 0
