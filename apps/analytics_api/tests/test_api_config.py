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
        ({"API_KEY_RATE_LIMITS": '{"load": {"limit": 10}}'}, "key 'load' needs exactly limit, window_seconds, burst"),
        (
            {"API_KEY_RATE_LIMITS": '{"load": {"limit": 10, "window_seconds": 0, "burst": 5}}'},
            "key 'load': limit, window_seconds, burst must be positive numbers",
        ),
        ({"API_KEY_RATE_LIMITS": "[1]"}, "API_KEY_RATE_LIMITS is malformed ('[1]'): must be a JSON object"),
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
    r = subprocess.run(
        [sys.executable, "-m", "analytics_api.main"], env=env, capture_output=True, check=False, text=True
    )
    assert r.returncode == 2
    assert r.stderr.strip() == "analytics-api: configuration error: API_KAFKA_BOOTSTRAP is required but not set"


def _runtime(hint) -> tuple:
    """The classes a value of type `hint` may be an instance of (list[str] -> list; Path | None -> Path)."""
    import types
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) else [hint]
    return tuple(typing.get_origin(a) or a for a in args)


def test_configuration_is_typed_immutable_and_hides_secrets(api_env):
    import dataclasses
    import typing
    from pathlib import Path

    cfg = load_config({**api_env, "API_PORT": "3443", "API_RATE_WINDOW_SECONDS": "60"})
    hints = typing.get_type_hints(type(cfg))
    assert hints["port"] is int and hints["rate_window_seconds"] is float and hints["kafka_bootstrap"] == list[str]
    assert hints["keys_file"] is Path and hints["tls_cert_file"] == Path | None
    for f in dataclasses.fields(cfg):
        value, hint = getattr(cfg, f.name), hints[f.name]
        assert value is None or isinstance(value, _runtime(hint)), (f.name, value, hint)
    assert cfg.port == 3443 and cfg.rate_window_seconds == 60.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.port = 1
    assert cfg.kafka_password not in repr(cfg) and "kafka_password" not in repr(cfg)
