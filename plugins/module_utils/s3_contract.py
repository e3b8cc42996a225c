# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The S3 security contract both object stores (SeaweedFS, MinIO) must meet, written once: used by the roles' tests
(through the s3_contract module) and by the audit (the s3_audit module).

Each check returns {"check", "passed", "evidence"}: passed is True, False, or None when the check could not decide
(a refusal is only what the store answers as one: 403 AccessDenied and its kin; a timeout, a TLS failure or an
unexpected code is undecided, never a pass). Everything a check writes goes through a `Tracker`, which removes every
version of it afterwards: the audit leaves the store as it found it.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import time
import uuid
from urllib.parse import urlparse

DEFAULT_CREDENTIALS = [("minioadmin", "minioadmin"), ("admin", "admin"), ("admin", "password"), ("any", "any")]
REFUSALS = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "Forbidden", "403"}


def read_body(response) -> bytes:
    """The bytes of a get_object answer (read inside the call classify() times)."""
    return response["Body"].read()


def result(check, passed, evidence):
    return {"check": check, "passed": passed, "evidence": evidence}


def classify(fn) -> tuple[str, str]:
    """('allowed', '') when the call succeeds, ('denied', code) when the store refuses it, ('unknown', what) else."""
    try:
        fn()
        return "allowed", ""
    except Exception as e:  # the answer decides; anything that is not a refusal is undecided
        resp = getattr(e, "response", None) or {}
        code = (resp.get("Error") or {}).get("Code") or ""
        status = (resp.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if code in REFUSALS or (status == 403 and not code):
            return "denied", code or "403"
        return "unknown", f"{code or type(e).__name__}: {str(e)[:150]}"


class Tracker:
    """Remembers every object and bucket the checks create, and removes all of it (every version, every delete
    marker) at the end, with the admin identity."""

    def __init__(self, admin, bucket: str):
        self.admin = admin
        self.bucket = bucket
        self.run = uuid.uuid4().hex[:12]
        self.prefix = f"_audit/{self.run}/"
        self.keys: set[tuple[str, str]] = set()
        self.buckets: list[str] = []

    def key(self, name: str) -> str:
        k = f"{self.prefix}{name}"
        self.keys.add((self.bucket, k))
        return k

    def new_bucket(self, label: str) -> str:
        name = f"audit-{label}-{self.run}"
        self.buckets.append(name)
        return name

    def _purge(self, bucket: str, prefix: str, rounds: int = 5) -> None:
        """Delete every version and delete marker under prefix, then every object a plain listing still shows (a
        store without versioning lists objects only). On a versioned bucket that second delete adds a delete marker
        when the listing still showed an object whose versions were just removed (SeaweedFS under load), so rounds
        repeat until one finds nothing."""
        for n in range(rounds):
            found = False
            for page in self.admin.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
                for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    self.admin.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
                    found = True
            for page in self.admin.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    self.admin.delete_object(Bucket=bucket, Key=o["Key"])
                    found = True
            if not found:
                return
            time.sleep(0.2 * (n + 1))

    def cleanup(self) -> list[str]:
        """Remove everything; returns what could not be removed (empty when the store is as it was)."""
        left = []
        for bucket, key in sorted(self.keys):
            try:
                self._purge(bucket, key)
            except Exception as e:  # reported: the audit must say when it left something behind
                left.append(f"{bucket}/{key}: {type(e).__name__}")
        for bucket in self.buckets:
            try:
                exists = any(b["Name"] == bucket for b in self.admin.list_buckets().get("Buckets", []))
                if exists:
                    self._purge(bucket, "")
                    self.admin.delete_bucket(Bucket=bucket)
            except Exception as e:  # reported as above
                left.append(f"bucket {bucket}: {type(e).__name__}")
        return left

    def leftovers(self) -> list[str]:
        """What is still there of what the checks wrote (after cleanup: nothing)."""
        left = []
        for bucket, key in sorted(self.keys):
            page = self.admin.list_object_versions(Bucket=bucket, Prefix=key)
            left += [f"{bucket}/{v['Key']}" for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        names = {b["Name"] for b in self.admin.list_buckets().get("Buckets", [])}
        return left + [f"bucket {b}" for b in self.buckets if b in names]


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
    except ssl.SSLError as e:
        return result("tls", False, f"handshake with {u.hostname}:{u.port} failed: {e}")
    except OSError as e:
        return result("tls", None, f"{u.hostname}:{u.port} did not answer: {e}")


def _verdict(answers: dict[str, tuple[str, str]], must_be_denied: list[str]) -> bool | None:
    if any(answers[k][0] == "allowed" for k in must_be_denied):
        return False
    if any(answers[k][0] == "unknown" for k in must_be_denied):
        return None
    return True


def check_anonymous(make_client, tracker: Tracker):
    """Anonymous list, get and put on the data bucket. The get reads an object that exists: the admin identity
    writes it first, so a store that lets anyone read cannot hide behind 'no such key'."""
    bucket = tracker.bucket
    readable = tracker.key("anonymous-read")
    tracker.admin.put_object(Bucket=bucket, Key=readable, Body=b"audit probe: anonymous read")
    anon = make_client(anonymous=True)
    answers = {
        "list": classify(lambda: anon.list_objects_v2(Bucket=bucket, MaxKeys=1)),
        "get": classify(lambda: read_body(anon.get_object(Bucket=bucket, Key=readable))),
        "put": classify(lambda: anon.put_object(Bucket=bucket, Key=tracker.key("anonymous-put"), Body=b"x")),
    }
    passed = _verdict(answers, ["list", "get", "put"])
    said = ", ".join(f"{k}: {v[0]}{' (' + v[1] + ')' if v[1] else ''}" for k, v in answers.items())
    return result("anonymous_denied", passed, f"anonymous {said}")


def check_default_credentials(make_client):
    answers = {}
    for key, secret in DEFAULT_CREDENTIALS:
        answers[f"{key}/{secret}"] = classify(
            lambda k=key, s=secret: make_client(access_key=k, secret_key=s).list_buckets()
        )
    accepted = [k for k, v in answers.items() if v[0] == "allowed"]
    unknown = [f"{k}: {v[1]}" for k, v in answers.items() if v[0] == "unknown"]
    if accepted:
        return result("default_credentials_rejected", False, f"accepted: {', '.join(accepted)}")
    if unknown:
        return result("default_credentials_rejected", None, f"undecided: {'; '.join(unknown)}")
    return result(
        "default_credentials_rejected", True, f"refused: {', '.join(k for k, _secret in DEFAULT_CREDENTIALS)}"
    )


def check_identity(make_client, tracker: Tracker, other_bucket, name, creds, expect):
    """Exactly what the policy allows: read, write, list on the bucket as expected, and nothing on another bucket,
    no bucket of its own."""
    c = make_client(access_key=creds["access_key"], secret_key=creds["secret_key"])
    bucket = tracker.bucket
    seed = tracker.key(f"{name}-seed")
    tracker.admin.put_object(Bucket=bucket, Key=seed, Body=b"audit probe: identity read")
    answers = {
        "write": classify(lambda: c.put_object(Bucket=bucket, Key=tracker.key(f"{name}-write"), Body=b"contract")),
        "read": classify(lambda: read_body(c.get_object(Bucket=bucket, Key=seed))),
        "list": classify(lambda: c.list_objects_v2(Bucket=bucket, Prefix=tracker.prefix, MaxKeys=5)),
        "other_bucket": classify(lambda: c.list_objects_v2(Bucket=other_bucket, MaxKeys=1)),
        "create_bucket": classify(lambda: c.create_bucket(Bucket=tracker.new_bucket(name.replace("_", "-")))),
    }
    want = {"read": False, "write": False, "list": False, "other_bucket": False, "create_bucket": False, **expect}
    unknown = {k: v[1] for k, v in answers.items() if v[0] == "unknown"}
    wrong = {k: v[0] for k, v in answers.items() if v[0] != "unknown" and (v[0] == "allowed") != bool(want[k])}
    said = ", ".join(f"{k}={v[0]}" for k, v in answers.items())
    if wrong:
        return result(
            f"identity_{name}", False, "differs from the policy: " + ", ".join(f"{k} {v}" for k, v in wrong.items())
        )
    if unknown:
        return result(f"identity_{name}", None, "undecided: " + "; ".join(f"{k}: {v}" for k, v in unknown.items()))
    return result(f"identity_{name}", True, f"as the policy says: {said}")


def check_versioning(admin, bucket):
    status = admin.get_bucket_versioning(Bucket=bucket).get("Status", "off")
    return result("versioning", status == "Enabled", f"bucket {bucket}: versioning {status}")


def check_bucket_policy(admin, bucket):
    """No statement of the bucket's policy may allow everyone (Principal '*')."""
    state, detail = classify(lambda: admin.get_bucket_policy(Bucket=bucket))
    if state == "unknown" and detail.startswith("NoSuchBucketPolicy"):
        return result("bucket_policy", True, f"bucket {bucket} has no bucket policy")
    if state == "unknown" and detail.split(":")[0] in ("NotImplemented", "MethodNotAllowed", "XNotImplemented"):
        return result(
            "bucket_policy",
            True,
            f"the store has no bucket policies ({detail.split(':')[0]}); its identities alone decide",
        )
    if state != "allowed":
        return result("bucket_policy", None, f"the policy of {bucket} could not be read: {detail}")
    policy = json.loads(admin.get_bucket_policy(Bucket=bucket)["Policy"])
    public = []
    for st in policy.get("Statement", []):
        principal = st.get("Principal")
        everyone = principal == "*" or (
            isinstance(principal, dict)
            and "*" in [principal.get("AWS"), *(principal.get("AWS") if isinstance(principal.get("AWS"), list) else [])]
        )
        if st.get("Effect") == "Allow" and everyone:
            public.append(str(st.get("Action")))
    if public:
        return result("bucket_policy", False, f"bucket {bucket}'s policy allows everyone: {', '.join(public)}")
    return result("bucket_policy", True, f"bucket {bucket}'s policy allows no one anonymously")


def check_delta_roundtrip(endpoint, tracker: Tracker, creds, region, ca_path):
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
    uri = f"s3://{tracker.bucket}/{tracker.key('delta')}"
    try:
        write_deltalake(uri, pa.table({"n": [1, 2, 3]}), mode="append", storage_options=opts)
        write_deltalake(uri, pa.table({"n": [4]}), mode="append", storage_options=opts)
        t = DeltaTable(uri, storage_options=opts)
        rows = t.to_pyarrow_table().num_rows
        return result("delta_roundtrip", rows == 4 and t.version() == 1, f"{uri}: version {t.version()}, {rows} rows")
    except Exception as e:
        return result("delta_roundtrip", False, f"{uri}: {type(e).__name__}: {str(e)[:200]}")
