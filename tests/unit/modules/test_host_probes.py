"""reachability and secret_exposure against real sockets, processes and files on this machine."""

from __future__ import annotations

import socket
import subprocess
import sys

from ansible_collections.analytics.platform.plugins.modules.reachability import check
from ansible_collections.analytics.platform.plugins.modules.secret_exposure import scan


def closed_port() -> int:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_matrix_as_expected_passes_and_an_open_port_that_should_be_closed_fails():
    listener = socket.create_server(("127.0.0.1", 0))
    open_port, shut = listener.getsockname()[1], closed_port()
    nginx = {"host": "127.0.0.1", "port": open_port, "expect": "open", "service": "nginx"}
    db = {"host": "127.0.0.1", "port": shut, "expect": "closed", "service": "postgresql"}
    try:
        good = check([nginx, db], "test", 1)
        bad = check([dict(nginx, expect="closed", service="postgresql")], "outside", 1)
    finally:
        listener.close()
    assert good["status"] == "pass", good
    assert bad["status"] == "fail" and f"postgresql 127.0.0.1:{open_port}" in bad["reason"], bad


def test_an_expected_service_that_does_not_answer_is_an_error_not_a_pass():
    r = check([{"host": "127.0.0.1", "port": closed_port(), "expect": "open", "service": "nginx"}], "outside", 1)
    assert r["status"] == "error", r


def test_a_secret_in_process_arguments_is_found_by_name_without_its_value(tmp_path):
    secret = "s3cr3t-value-for-the-audit-test"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", secret])
    try:
        r = scan({"kafka_admin_password": secret}, [str(tmp_path)])
    finally:
        proc.kill()
    assert r["status"] == "fail" and "kafka_admin_password in the arguments" in r["reason"], r
    assert secret not in str(r)


def test_a_secret_in_a_world_readable_file_fails_and_in_a_private_one_passes(tmp_path):
    secret = "another-secret-value-1234"
    private = tmp_path / "private.env"
    private.write_text(f"PASSWORD={secret}\n")
    private.chmod(0o600)
    assert scan({"pg_password": secret}, [str(tmp_path)])["status"] == "pass"
    private.chmod(0o644)
    r = scan({"pg_password": secret}, [str(tmp_path)])
    assert r["status"] == "fail" and f"world-readable {private}" in r["reason"], r
