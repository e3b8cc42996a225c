# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The TLS probe (tls_probe module, audit_host module): protocol, chain, name, expiry, and protocols below the floor
refused, as a client sees them."""

from __future__ import annotations

import socket
import ssl
import struct
import time
import warnings

from ansible_collections.analytics.platform.plugins.module_utils.audit import result as _result

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
ORDER = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
SSL_REQUEST = struct.pack("!II", 8, 80877103)


def _connect(p, ctx, server_name):
    sock = socket.create_connection((p["host"], p["port"]), timeout=p["timeout"])
    try:
        if p["protocol"] == "postgres":
            sock.sendall(SSL_REQUEST)
            answer = sock.recv(1)
            if answer != b"S":
                raise ConnectionError(f"the server refused TLS (answered {answer!r} to SSLRequest)")
        return ctx.wrap_socket(sock, server_hostname=server_name)
    except BaseException:
        sock.close()
        raise


def probe(p: dict) -> dict:
    """p: host, port, server_name (default host), ca_path, protocol (tls or postgres), min_protocol, min_days,
    timeout, control, target (default host:port)."""
    server_name = p.get("server_name") or p["host"]
    endpoint = f"{p['host']}:{p['port']}"
    target = p.get("target") or endpoint

    def result(control, status, reason, **evidence):
        return _result(control, status, reason, target, **evidence)

    evidence = {"endpoint": endpoint, "server_name": server_name, "ca_path": p["ca_path"]}
    try:
        ctx = ssl.create_default_context(cafile=p["ca_path"])
    except (OSError, ssl.SSLError) as e:  # the probe's own CA is missing or broken: it cannot judge anything
        return result(p["control"], "error", f"{endpoint}: cannot load the CA {p['ca_path']}: {e}", **evidence)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        with _connect(p, ctx, server_name) as tls:
            evidence.update(protocol=tls.version(), cipher=tls.cipher()[0], verified=True)
            cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as e:
        evidence.update(verified=False, verify_error=e.verify_message or str(e))
        return result(
            p["control"], "fail", f"{endpoint}: the certificate does not verify ({e.verify_message})", **evidence
        )
    except ssl.SSLError as e:
        evidence.update(error=str(e))
        return result(p["control"], "fail", f"{endpoint}: no TLS 1.2+ handshake ({e.reason or e})", **evidence)
    except (OSError, ConnectionError) as e:
        evidence.update(error=str(e))
        if isinstance(e, ConnectionError) and "refused TLS" in str(e):
            return result(p["control"], "fail", f"{endpoint}: {e}", **evidence)
        return result(p["control"], "error", f"{endpoint} did not answer: {e}", **evidence)

    days_left = int((ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) // 86400)
    evidence["days_left"] = days_left
    evidence["not_after"] = cert["notAfter"]

    # Protocols below the floor must be refused. The probe offers them on purpose (security level 0).
    floor = ORDER.index(p["min_protocol"])
    accepted, refused = [], []
    for name in ORDER[:floor]:
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            with warnings.catch_warnings():  # offering deprecated protocols is the point here
                warnings.simplefilter("ignore", DeprecationWarning)
                old.set_ciphers("DEFAULT:@SECLEVEL=0")
                old.minimum_version = VERSIONS[name]
                old.maximum_version = VERSIONS[name]
        except (ValueError, ssl.SSLError):
            continue
        try:
            with _connect(p, old, server_name) as tls:
                accepted.append(tls.version())
        except (ssl.SSLError, OSError, ConnectionError):
            refused.append(name)
    evidence.update(refused_below_floor=refused, accepted_below_floor=accepted)

    if accepted:
        return result(
            p["control"], "fail", f"{endpoint} accepts {', '.join(accepted)} (floor {p['min_protocol']})", **evidence
        )
    if days_left < p["min_days"]:
        return result(p["control"], "fail", f"{endpoint}: the certificate expires in {days_left} days", **evidence)
    return result(
        p["control"],
        "pass",
        f"{endpoint}: {evidence['protocol']}, chain verifies for {server_name}, {days_left} days left, "
        f"{', '.join(refused) or 'nothing'} below the floor refused",
        **evidence,
    )
