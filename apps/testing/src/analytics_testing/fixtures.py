"""pytest fixtures (a pytest11 plugin): `test_pki`, `kafka`, `postgres`, `seaweedfs` start once per session."""

from __future__ import annotations

import gc
import shutil
import tempfile
from pathlib import Path

import pytest

from analytics_testing.pki import make_pki
from analytics_testing.servers import Kafka, Postgres, SeaweedFS


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
    pki = {k: v for k, v in test_pki.items()}
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
