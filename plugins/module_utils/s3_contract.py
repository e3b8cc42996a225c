# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The S3 security contract both object stores (SeaweedFS, MinIO) must meet, written once: used by the roles' tests
(through the s3_contract module) and by the audit.

Each check returns {"check", "passed", "evidence"}; a check that cannot run returns passed=None with the reason.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import uuid
from urllib.parse import urlparse

DEFAULT_CREDENTIALS = [("minioadmin", "minioadmin"), ("admin", "admin"), ("admin", "password"), ("any", "any")]


def result(check, passed, evidence):
    return {"check": check, "passed": passed, "evidence": evidence}


def check_tls(endpoint, ca_path):
    u = urlparse(endpoint)
    if u.scheme != "https":
        return result("tls", False, f"{endpoint} is not https")
    ctx = ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        with (
            socket.create_connection((u.hostname, u.port or 443), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=u.hostname) as tls,
        ):
            cert = tls.getpeercert()
            version = tls.version()
        expires = dt.datetime.strptime(cert["notAfter"], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)
        days = (expires - dt.datetime.now(dt.UTC)).days
        return result("tls", days > 0, f"{version}, certificate verified for {u.hostname}, expires in {days} days")
    except (ssl.SSLError, OSError) as e:
        return result("tls", False, f"handshake with {u.hostname}:{u.port} failed: {e}")


def denied(fn):
    """(True, code) when the call is refused, (False, what happened) when it succeeds."""
    try:
        fn()
        return False, "allowed"
    except Exception as e:  # any refusal counts; the code is the evidence
        resp = getattr(e, "response", None) or {}
        return True, (resp.get("Error") or {}).get("Code") or type(e).__name__


def check_anonymous(make_client, bucket):
    anon = make_client(anonymous=True)
    ok_list, code_list = denied(lambda: anon.list_objects_v2(Bucket=bucket, MaxKeys=1))
    ok_get, code_get = denied(lambda: anon.get_object(Bucket=bucket, Key="_contract/probe"))
    ok_put, code_put = denied(lambda: anon.put_object(Bucket=bucket, Key="_contract/anon", Body=b"x"))
    return result(
        "anonymous_denied",
        ok_list and ok_get and ok_put,
        f"anonymous list: {code_list}, get: {code_get}, put: {code_put}",
    )


def check_default_credentials(make_client):
    accepted = []
    for key, secret in DEFAULT_CREDENTIALS:
        ok, _ = denied(lambda k=key, s=secret: make_client(access_key=k, secret_key=s).list_buckets())
        if not ok:
            accepted.append(f"{key}/{secret}")
    return result(
        "default_credentials_rejected",
        not accepted,
        f"accepted: {', '.join(accepted)}" if accepted else f"refused: {', '.join(k for k, _ in DEFAULT_CREDENTIALS)}",
    )


def check_identity(make_client, bucket, other_bucket, name, creds, expect):
    """Exactly what the policy allows: read, write, list on the bucket as expected, and nothing on another bucket."""
    c = make_client(access_key=creds["access_key"], secret_key=creds["secret_key"])
    key = f"_contract/{name}/{uuid.uuid4().hex}"
    seen = {}
    wrote = not denied(lambda: c.put_object(Bucket=bucket, Key=key, Body=b"contract"))[0]
    seen["write"] = wrote
    probe = key if wrote else "_contract/seed"
    seen["read"] = not denied(lambda: c.get_object(Bucket=bucket, Key=probe)["Body"].read())[0]
    seen["list"] = not denied(lambda: c.list_objects_v2(Bucket=bucket, Prefix="_contract/", MaxKeys=5))[0]
    seen["other_bucket"] = not denied(lambda: c.list_objects_v2(Bucket=other_bucket, MaxKeys=1))[0]
    seen["create_bucket"] = not denied(lambda: c.create_bucket(Bucket=f"contract-{uuid.uuid4().hex[:8]}"))[0]
    want = {"read": False, "write": False, "list": False, "other_bucket": False, "create_bucket": False, **expect}
    wrong = {k: v for k, v in seen.items() if v != want[k]}
    return result(
        f"identity_{name}",
        not wrong,
        "as the policy says: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in seen.items())
        if not wrong
        else "differs from the policy: " + ", ".join(f"{k} {'allowed' if v else 'denied'}" for k, v in wrong.items()),
    )


def check_versioning(admin, bucket):
    status = admin.get_bucket_versioning(Bucket=bucket).get("Status", "off")
    return result("versioning", status == "Enabled", f"bucket {bucket}: versioning {status}")


def check_delta_roundtrip(endpoint, bucket, creds, region, ca_path):
    try:
        import os

        import pyarrow as pa
        from deltalake import DeltaTable, write_deltalake
    except ImportError as e:
        return result("delta_roundtrip", None, f"not run: {e.name} is not installed where the check runs")
    if ca_path:
        os.environ["SSL_CERT_FILE"] = ca_path
    opts = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": creds["access_key"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
        "AWS_REGION": region,
        "AWS_S3_ADDRESSING_STYLE": "path",
        "conditional_put": "etag",
    }
    uri = f"s3://{bucket}/_contract/delta-{uuid.uuid4().hex[:8]}"
    try:
        write_deltalake(uri, pa.table({"n": [1, 2, 3]}), mode="append", storage_options=opts)
        write_deltalake(uri, pa.table({"n": [4]}), mode="append", storage_options=opts)
        t = DeltaTable(uri, storage_options=opts)
        rows = t.to_pyarrow_table().num_rows
        return result("delta_roundtrip", rows == 4 and t.version() == 1, f"{uri}: version {t.version()}, {rows} rows")
    except Exception as e:
        return result("delta_roundtrip", False, f"{uri}: {type(e).__name__}: {str(e)[:200]}")
