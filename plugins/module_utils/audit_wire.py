# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""Log in as an attacker would, from any host, with nothing but Python's standard library: PostgreSQL's wire
protocol (cleartext, MD5 and SCRAM-SHA-256), Kafka's SASL (SCRAM-SHA-512/256 over TLS, and whether PLAINTEXT answers
at all) and S3 (a Signature V4 ListBuckets). The audit tries the known default and weak logins with these from the
outside host and from an application host, where clients really connect from.

Each login returns (verdict, detail): verdict `accepted` (the credentials work: a finding), `refused` (the server
checked them and said no) or `no_entry` (the server refuses this user from here before any password: pg_hba has no
line for it). Anything else raises (the caller reports an error, never a pass).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import os
import socket
import ssl
import struct
from urllib.parse import urlparse

# --- SCRAM (RFC 5802, 7677) -------------------------------------------------------------------------------------------


class Scram:
    def __init__(self, user: str, password: str, algorithm: str, send_user: bool = True):
        self.hash = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}[algorithm]
        self.name = self.hash().name
        self.password = password.encode()
        name = user.replace("=", "=3D").replace(",", "=2C") if send_user else ""
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={name},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(part.split("=", 1) for part in text.split(","))
        if not attrs.get("r", "").startswith(self.nonce):
            raise ConnectionError("SCRAM: the server's nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac(self.name, self.password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", self.hash).digest()
        stored_key = self.hash(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", self.hash).digest()
        self.server_signature = hmac.new(server_key, auth_message, self.hash).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def tls_context(ca_path: str | None, verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()
    if not verify:  # an attacker does not care who the server is; the TLS control judges certificates
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _recv_exact(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


# --- PostgreSQL -----------------------------------------------------------------------------------------------------
SSL_REQUEST = struct.pack("!II", 8, 80877103)


def _pg_message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _pg_read(sock) -> tuple[bytes, bytes]:
    head = _recv_exact(sock, 5)
    size = struct.unpack("!I", head[1:])[0]
    if size < 4 or size > 1 << 20:
        raise ConnectionError("not a PostgreSQL server")
    return head[:1], _recv_exact(sock, size - 4)


def _pg_error(payload: bytes) -> dict:
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[part[:1].decode()] = part[1:].decode("utf-8", "replace")
    return fields


def pg_login(
    host: str, port: int, user: str, password: str, database: str, ca_path: str | None = None, timeout: float = 5.0
) -> tuple[str, str]:
    """Log in to PostgreSQL as `user`; TLS when the server offers it (any certificate), else in clear text."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.sendall(SSL_REQUEST)
        answer = _recv_exact(sock, 1)
        transport = "TLS" if answer == b"S" else "plain text"
        if answer == b"S":
            sock = tls_context(ca_path, verify=False).wrap_socket(sock)
        elif answer != b"N":
            raise ConnectionError(f"not a PostgreSQL server (answered {answer!r} to SSLRequest)")
        params = b"user\0" + user.encode() + b"\0database\0" + database.encode() + b"\0\0"
        sock.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
        scram = None
        while True:
            kind, payload = _pg_read(sock)
            if kind == b"E":
                err = _pg_error(payload)
                code, msg = err.get("C", "?"), err.get("M", "")
                if code == "28P01":
                    return "refused", f"{code} {msg} ({transport})"
                if code == "28000":
                    return "no_entry", f"{code} {msg} ({transport})"
                if code == "3D000":  # authenticated, then the database was not found: the login works
                    return "accepted", f"authenticated, then {code} {msg} ({transport})"
                raise ConnectionError(f"PostgreSQL answered {code} {msg}")
            if kind != b"R":
                continue
            (auth,) = struct.unpack("!I", payload[:4])
            if auth == 0:
                return "accepted", f"authenticated as {user} ({transport})"
            if auth == 3:
                sock.sendall(_pg_message(b"p", password.encode() + b"\0"))
            elif auth == 5:
                inner = hashlib.md5(password.encode() + user.encode()).hexdigest()  # noqa: S324 - PostgreSQL's MD5 auth
                outer = hashlib.md5(inner.encode() + payload[4:8]).hexdigest()  # noqa: S324
                sock.sendall(_pg_message(b"p", b"md5" + outer.encode() + b"\0"))
            elif auth == 10:
                mechanisms = [m.decode() for m in payload[4:].split(b"\0") if m]
                if "SCRAM-SHA-256" not in mechanisms:
                    raise ConnectionError(f"PostgreSQL offers only {mechanisms}")
                scram = Scram(user, password, "SCRAM-SHA-256", send_user=False)
                first = scram.first()
                sock.sendall(_pg_message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
            elif auth == 11 and scram is not None:
                sock.sendall(_pg_message(b"p", scram.final(payload[4:])))
            elif auth == 12:
                continue  # server-final: authentication succeeded if AuthenticationOk follows
            else:
                raise ConnectionError(f"PostgreSQL asked for authentication method {auth}")
    finally:
        sock.close()


# --- Kafka ----------------------------------------------------------------------------------------------------------
CLIENT_ID = b"analytics-platform-audit"


def kafka_frame(api_key: int, version: int, correlation: int, body: bytes = b"") -> bytes:
    payload = struct.pack("!hhih", api_key, version, correlation, len(CLIENT_ID)) + CLIENT_ID + body
    return struct.pack("!i", len(payload)) + payload


def kafka_read(sock) -> bytes:
    size = struct.unpack("!i", _recv_exact(sock, 4))[0]
    if size <= 0 or size > 1 << 20:
        raise ConnectionError(f"not a Kafka response (size {size})")
    return _recv_exact(sock, size)


def kafka_plaintext(host: str, port: int, timeout: float) -> bool:
    """Whether a Kafka broker answers ApiVersions in plain text (no TLS, no login) on host:port."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return False
    try:
        sock.sendall(kafka_frame(18, 0, 7))
        return struct.unpack("!i", kafka_read(sock)[:4])[0] == 7
    except (OSError, ConnectionError, struct.error):
        return False
    finally:
        sock.close()


def kafka_login(
    host: str,
    port: int,
    user: str,
    password: str,
    ca_path: str | None = None,
    mechanism: str = "SCRAM-SHA-512",
    timeout: float = 5.0,
) -> tuple[str, str]:
    """Log in to a SASL_SSL listener with SCRAM (any certificate)."""
    raw = socket.create_connection((host, port), timeout=timeout)
    with tls_context(ca_path, verify=False).wrap_socket(raw) as sock:
        mech = mechanism.encode()
        sock.sendall(kafka_frame(17, 1, 1, struct.pack("!h", len(mech)) + mech))
        data = kafka_read(sock)
        (error,) = struct.unpack("!h", data[4:6])
        if error == 33:
            return "refused", f"{mechanism} is not enabled"
        if error:
            raise ConnectionError(f"SaslHandshake answered error {error}")
        scram = Scram(user, password, mechanism)
        error, text, server_first = _sasl_authenticate(sock, 2, scram.first())
        if error == 0:
            error, text, _server_final = _sasl_authenticate(sock, 3, scram.final(server_first))
        if error == 58:  # SASL_AUTHENTICATION_FAILED
            return "refused", text or "authentication failed"
        if error:
            raise ConnectionError(f"SaslAuthenticate answered error {error} {text}")
        return "accepted", f"authenticated as {user} with {mechanism}"


def _sasl_authenticate(sock, correlation: int, message: bytes) -> tuple[int, str, bytes]:
    """One SaslAuthenticate v0 round trip: (error code, error message, the server's bytes)."""
    sock.sendall(kafka_frame(36, 0, correlation, struct.pack("!i", len(message)) + message))
    data = kafka_read(sock)
    error, msg_len = struct.unpack("!hh", data[4:8])
    text = data[8 : 8 + msg_len].decode("utf-8", "replace") if msg_len > 0 else ""
    rest = data[8 + max(msg_len, 0) :]
    (n,) = struct.unpack("!i", rest[:4]) if len(rest) >= 4 else (0,)
    return error, text, rest[4 : 4 + max(n, 0)]


# --- S3 -------------------------------------------------------------------------------------------------------------
def s3_login(
    endpoint: str,
    access_key: str,
    secret_key: str,
    ca_path: str | None = None,
    region: str = "us-east-1",
    timeout: float = 5.0,
) -> tuple[str, str]:
    """A Signature V4 ListBuckets with these credentials (any certificate)."""
    u = urlparse(endpoint)
    host = u.netloc
    now = dt.datetime.now(dt.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    empty = hashlib.sha256(b"").hexdigest()
    signed = "host;x-amz-content-sha256;x-amz-date"
    canonical = f"GET\n/\n\nhost:{host}\nx-amz-content-sha256:{empty}\nx-amz-date:{amz_date}\n\n{signed}\n{empty}"
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-content-sha256": empty,
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
        ),
    }
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(
            u.hostname, u.port or 443, context=tls_context(ca_path, False), timeout=timeout
        )
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.request("GET", "/", headers=headers)
        r = conn.getresponse()
        body = r.read(4096).decode("utf-8", "replace")
    finally:
        conn.close()
    code = body.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in body else ""
    if r.status == 200:
        return "accepted", "ListBuckets answered 200"
    if r.status == 403 and code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId"):
        return "refused", f"403 {code}"
    if r.status == 403 and code == "AccessDenied":  # the signature was checked and the key is valid
        return "accepted", "403 AccessDenied: the credentials are valid (only ListBuckets is not allowed)"
    raise ConnectionError(f"S3 answered {r.status} {code or body[:100]}")
