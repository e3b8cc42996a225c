# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Connection options and helpers shared by the Kafka modules (kafka_topic, kafka_user, kafka_acl, kafka_info)."""

from __future__ import annotations

import traceback
from contextlib import contextmanager

CONFLUENT_IMPORT_ERROR = None
try:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    HAS_CONFLUENT = True
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    HAS_CONFLUENT = False
    CONFLUENT_IMPORT_ERROR = traceback.format_exc()

    class KafkaException(Exception):  # never raised: admin_client() fails first without the library
        pass


def kafka_common_argument_spec() -> dict:
    """Options every Kafka module takes (documented once in the analytics.platform.kafka doc fragment)."""
    return {
        "bootstrap_servers": {"type": "list", "elements": "str", "required": True},
        "security_protocol": {"type": "str", "default": "SASL_SSL", "choices": ["SASL_SSL", "SSL", "PLAINTEXT"]},
        "sasl_mechanism": {"type": "str", "default": "SCRAM-SHA-512", "choices": ["SCRAM-SHA-512", "SCRAM-SHA-256"]},
        "login_user": {"type": "str", "aliases": ["sasl_username"]},
        "login_password": {"type": "str", "no_log": True, "aliases": ["sasl_password"]},
        "ca_path": {"type": "path"},
        "request_timeout": {"type": "int", "default": 30},
    }


def client_config(params: dict, user: str | None = None, password: str | None = None, error_cb=None) -> dict:
    """librdkafka configuration from the module's connection options (optionally as another user)."""
    conf = {
        "bootstrap.servers": ",".join(params["bootstrap_servers"]),
        "security.protocol": params["security_protocol"],
        "socket.timeout.ms": params["request_timeout"] * 1000,
        "logger": _CapturingLogger(),
    }
    if error_cb is not None:
        conf["error_cb"] = error_cb
    if params["security_protocol"] in ("SASL_SSL", "SSL") and params.get("ca_path"):
        conf["ssl.ca.location"] = params["ca_path"]
    if params["security_protocol"].startswith("SASL"):
        conf["sasl.mechanism"] = params["sasl_mechanism"]
        conf["sasl.username"] = user if user is not None else params.get("login_user")
        conf["sasl.password"] = password if password is not None else params.get("login_password")
    return conf


class _CapturingLogger:
    """librdkafka logs to stderr by default, which would corrupt the module's JSON output: keep its lines instead."""

    def __init__(self):
        self.lines = []

    def log(self, _level, fmt, *args, **_kwargs):
        try:
            self.lines.append(fmt % args if args else str(fmt))
        except (TypeError, ValueError):
            self.lines.append(str(fmt))


def auth_failed(conf: dict) -> bool:
    """Whether librdkafka logged a SASL authentication failure for a client built from `conf`."""
    return any("Authentication failed" in line or "SASL authentication error" in line for line in conf["logger"].lines)


def admin_client(module, user=None, password=None, error_cb=None):
    """An AdminClient, or fail_json with a clear message when the library is missing or the options are incomplete."""
    if not HAS_CONFLUENT:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("confluent-kafka"), exception=CONFLUENT_IMPORT_ERROR)
    p = module.params
    if p["security_protocol"].startswith("SASL") and not (p.get("login_user") and p.get("login_password")):
        protocol = p["security_protocol"]
        module.fail_json(msg=f"login_user and login_password are required with security_protocol {protocol}")
    return AdminClient(client_config(p, user, password, error_cb))


def can_authenticate(params: dict, name: str, password: str) -> bool:
    """Whether `name` can log in with `password` over the module's connection options (an authorisation failure
    still means the login worked). Other failures (unreachable, TLS) raise."""
    conf = client_config(params, user=name, password=password)
    probe = AdminClient(conf)
    try:
        probe.list_topics(timeout=min(params["request_timeout"], 15))
        return True
    except KafkaException as e:
        probe.poll(1)  # serves the queued librdkafka log lines that say why the connection failed
        if auth_failed(conf) or "AUTHENTICATION" in error_text(e).upper():
            return False
        if "AUTHORIZATION" in error_text(e).upper():
            return True
        raise


def wait(future_or_dict, timeout):
    """Resolve one future, or a dict of futures, raising the first exception."""
    if isinstance(future_or_dict, dict):
        return {k: f.result(timeout=timeout) for k, f in future_or_dict.items()}
    return future_or_dict.result(timeout=timeout)


def error_text(exc) -> str:
    """A one-line description of a Kafka error."""
    arg = exc.args[0] if getattr(exc, "args", None) else exc
    name = getattr(arg, "name", None)
    text = arg.str() if hasattr(arg, "str") else str(arg)
    return f"{name()}: {text}" if callable(name) else text


def unreachable(params: dict, exc: Exception) -> str:
    """The message for a cluster that did not answer (timeouts, TLS or network failures)."""
    return f"cannot reach the cluster at {', '.join(params['bootstrap_servers'])}: {type(exc).__name__} {exc}".strip()


@contextmanager
def reported_errors(module, subject: str):
    """Turn what the cluster raises into one fail_json line: '<subject>: <Kafka error>' for errors the cluster
    answered with, '<subject>: cannot reach the cluster at ...' for timeouts, TLS and network failures.
    exit_json and fail_json raise SystemExit, which passes through."""
    try:
        yield
    except KafkaException as e:
        module.fail_json(msg=f"{subject}: {error_text(e)}")
    except Exception as e:  # timeouts and connection errors
        module.fail_json(msg=f"{subject}: {unreachable(module.params, e)}")
