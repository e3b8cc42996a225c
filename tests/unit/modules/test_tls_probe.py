"""tls_probe against real TLS servers on 127.0.0.1: each way an endpoint can fall short makes the probe fail."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import warnings

import pytest
from ansible_collections.analytics.platform.plugins.modules.tls_probe import probe
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(tmp_path, label="ca"):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(label))
        .issuer_name(_name(label))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / f"{label}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def make_leaf(tmp_path, ca, names=("localhost",), days=365):
    ca_key, ca_cert, _unused = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "leaf.crt", tmp_path / "leaf.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Server:
    """A TLS server on 127.0.0.1 that completes handshakes; `postgres` answers SSLRequest first (S or N)."""

    def __init__(self, cert, key, min_version=ssl.TLSVersion.TLSv1_2, postgres=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if min_version < ssl.TLSVersion.TLSv1_2:
            self.ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # an outdated server is what this test needs
            warnings.simplefilter("ignore", DeprecationWarning)
            self.ctx.minimum_version = min_version
        self.postgres = postgres
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _unused = self.sock.accept()
            except OSError:
                return
            try:
                if self.postgres is not None:
                    conn.recv(8)
                    conn.sendall(self.postgres)
                    if self.postgres != b"S":
                        conn.close()
                        continue
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                conn.close()

    def close(self):
        self.sock.close()


def probe_server(server, ca_path, **kw):
    """Probe a test server, then stop it."""
    try:
        return probe(params(server.port, ca_path, **kw))
    finally:
        server.close()


def params(port, ca_path, **kw):
    p = {
        "host": "127.0.0.1",
        "port": port,
        "server_name": "localhost",
        "ca_path": str(ca_path),
        "protocol": "tls",
        "min_protocol": "TLSv1.2",
        "min_days": 14,
        "timeout": 3,
        "control": "tls",
    }
    p.update(kw)
    return p


@pytest.fixture
def ca(tmp_path):
    return make_ca(tmp_path)


def test_a_sound_endpoint_passes_with_evidence(tmp_path, ca):
    server = Server(*make_leaf(tmp_path, ca))
    r = probe_server(server, ca[2])
    assert r["status"] == "pass", r
    assert r["evidence"]["verified"] is True and r["evidence"]["days_left"] >= 363
    assert r["evidence"]["protocol"] in {"TLSv1.2", "TLSv1.3"} and r["evidence"]["accepted_below_floor"] == []


def test_old_protocols_accepted_fail(tmp_path, ca):
    server = Server(*make_leaf(tmp_path, ca), min_version=ssl.TLSVersion.TLSv1)
    r = probe_server(server, ca[2])
    assert r["status"] == "fail", r
    assert r["evidence"]["accepted_below_floor"], r


def test_a_chain_from_another_ca_fails(tmp_path, ca):
    other = make_ca(tmp_path, "other")
    server = Server(*make_leaf(tmp_path, other))
    r = probe_server(server, ca[2])
    assert r["status"] == "fail" and r["evidence"]["verified"] is False, r


def test_a_name_the_certificate_lacks_fails(tmp_path, ca):
    server = Server(*make_leaf(tmp_path, ca, names=("elsewhere",)))
    r = probe_server(server, ca[2])
    assert r["status"] == "fail" and "does not verify" in r["reason"], r


def test_a_certificate_about_to_expire_fails(tmp_path, ca):
    server = Server(*make_leaf(tmp_path, ca, days=3))
    r = probe_server(server, ca[2])
    assert r["status"] == "fail" and "expires in" in r["reason"], r


def test_plain_text_on_the_port_fails(tmp_path, ca):
    sock = socket.create_server(("127.0.0.1", 0))

    def answer():
        conn, _unused = sock.accept()
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        r = probe(params(sock.getsockname()[1], ca[2]))
    finally:
        sock.close()
    assert r["status"] == "fail", r


def test_nothing_listening_is_an_error_not_a_pass(tmp_path, ca):
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    r = probe(params(port, ca[2]))
    assert r["status"] == "error" and "did not answer" in r["reason"], r


@pytest.mark.parametrize(("answer", "status"), [(b"S", "pass"), (b"N", "fail")])
def test_postgres_sslrequest(tmp_path, ca, answer, status):
    server = Server(*make_leaf(tmp_path, ca), postgres=answer)
    r = probe_server(server, ca[2], protocol="postgres")
    assert r["status"] == status, r


def test_a_missing_ca_file_is_an_error_not_a_crash(tmp_path, ca):
    """The finding: a missing CA file crashed the probe, and the host dropped out of the report."""
    server = Server(*make_leaf(tmp_path, ca))
    r = probe_server(server, tmp_path / "no-such-ca.crt")
    assert r["status"] == "error" and "cannot load the CA" in r["reason"], r
