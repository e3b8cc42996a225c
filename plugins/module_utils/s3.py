# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Connection options and a client for the S3-compatible object store (SeaweedFS or MinIO), shared by s3_bucket and
s3_contract."""

from __future__ import annotations

import traceback

BOTO_IMPORT_ERROR = None
try:
    import boto3
    from botocore.config import Config

    HAS_BOTO3 = True
except ImportError:  # pragma: no cover - reported through missing_required_lib
    HAS_BOTO3 = False
    BOTO_IMPORT_ERROR = traceback.format_exc()


def s3_common_argument_spec() -> dict:
    return {
        "endpoint": {"type": "str", "required": True},
        "access_key": {"type": "str", "no_log": False},
        "secret_key": {"type": "str", "no_log": True},
        "region": {"type": "str", "default": "us-east-1"},
        "ca_path": {"type": "path"},
    }


def identities_argument_spec() -> dict:
    """Service identities and what each may do (s3_contract, s3_audit)."""
    return {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "name": {"type": "str", "required": True},
            "access_key": {"type": "str", "required": True, "no_log": False},
            "secret_key": {"type": "str", "required": True, "no_log": True},
            "expect": {"type": "dict", "default": {}},
        },
    }


def client(module, access_key=None, secret_key=None, anonymous=False, verify=None):
    if not HAS_BOTO3:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("boto3"), exception=BOTO_IMPORT_ERROR)
    p = module.params
    cfg = {
        "s3": {"addressing_style": "path"},
        "retries": {"max_attempts": 2},
        "connect_timeout": 10,
        "read_timeout": 30,
    }
    kwargs = {
        "endpoint_url": p["endpoint"],
        "region_name": p["region"],
        "verify": verify if verify is not None else (p.get("ca_path") or True),
    }
    if anonymous:
        from botocore import UNSIGNED

        cfg["signature_version"] = UNSIGNED
    else:
        kwargs["aws_access_key_id"] = access_key if access_key is not None else p.get("access_key")
        kwargs["aws_secret_access_key"] = secret_key if secret_key is not None else p.get("secret_key")
    return boto3.client("s3", config=Config(**cfg), **kwargs)


def error_code(exc) -> str:
    resp = getattr(exc, "response", None) or {}
    return (resp.get("Error") or {}).get("Code") or type(exc).__name__
