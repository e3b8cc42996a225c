"""playbooks/kafka_features.yml checks the release it is asked for on the controller before any host is asked anything
(the staging example's hosts are documentation addresses: a play that went past the check would fail on them)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("extra", [[], ["-e", "kafka_release_version=4"], ["-e", "kafka_release_version=4.2.1"]])
def test_a_release_that_is_not_major_minor_is_refused_on_the_controller(playbook, extra):
    r = playbook(ROOT / "inventories" / "staging", ROOT / "playbooks" / "kafka_features.yml", *extra)
    assert r.returncode != 0, r.output[-2000:]
    got = extra[1].split("=")[1] if extra else ""
    assert f"kafka_release_version must be a Kafka release such as 4.2 (major.minor; got '{got}')" in " ".join(
        r.output.split()
    ), r.output[-2000:]
    assert "Load the Kafka role's settings" not in r.output
