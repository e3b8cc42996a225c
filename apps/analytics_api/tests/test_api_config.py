"""Configuration errors stop the service with one line naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest
from analytics_api.config import load_config
from analytics_common.config import ConfigError


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"API_KAFKA_BOOTSTRAP": ""}, "API_KAFKA_BOOTSTRAP is required but not set"),
        ({"API_PORT": "70000"}, "API_PORT is malformed ('70000'): must be at most 65535"),
        ({"API_RATE_LIMIT": "many"}, "API_RATE_LIMIT is malformed"),
        ({"API_KEYS_FILE": "/nonexistent.json"}, "API_KEYS_FILE is malformed ('/nonexistent.json'): file"),
        ({"API_TLS_CERT_FILE": __file__}, "API_TLS_CERT_FILE and API_TLS_KEY_FILE must be set together"),
        ({"API_TRUSTED_PROXIES": "10.0.0.0/33"}, "API_TRUSTED_PROXIES is malformed ('10.0.0.0/33')"),
    ],
)
def test_bad_settings_are_named(api_env, change, message):
    with pytest.raises(ConfigError) as e:
        load_config({**api_env, **change})
    assert message in str(e.value)


def test_secret_values_are_never_echoed(api_env):
    from analytics_common.config import Setting, load

    with pytest.raises(ConfigError) as e:
        load([Setting("X_SECRET", int, secret=True)], "X_", {"X_SECRET": "hunter2"})
    assert "hunter2" not in str(e.value)


def test_service_exits_2_with_one_line(api_env):
    env = {**api_env, "API_KAFKA_BOOTSTRAP": "", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "analytics_api.main"], env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "analytics-api: configuration error: API_KAFKA_BOOTSTRAP is required but not set"
