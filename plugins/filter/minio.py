# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""MinIO erasure-coding arithmetic, for preflight checks of the minio role; the bearer token Prometheus scrapes
MinIO's metrics with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from ansible.errors import AnsibleFilterError

# The token's end: fixed, so that the same credentials always give the same token (an idempotent converge); rotate it
# by rotating the credentials it is signed with. mc admin prometheus generate gives its tokens 100 years.
TOKEN_EXPIRES = 4102444800  # 2100-01-01T00:00:00Z


def minio_erasure(total_drives, parity=None):
    """The erasure set MinIO forms from `total_drives` and its quorums: {set_size, sets, parity, read_quorum,
    write_quorum}. Fails when MinIO could not form sets or the parity is impossible."""
    total = int(total_drives)
    sizes = [n for n in range(16, 3, -1) if total % n == 0]
    if not sizes:
        raise AnsibleFilterError(
            f"{total} drives cannot form MinIO erasure sets: the drive count (nodes x minio_drives) must be divisible "
            "by a set size between 4 and 16"
        )
    size = sizes[0]
    default = 4 if size >= 8 else size // 2
    p = default if parity in (None, "") else int(str(parity).removeprefix("EC:"))
    if p < 1 or p > size // 2:
        limit = size // 2
        raise AnsibleFilterError(f"minio_parity EC:{p} is impossible for erasure sets of {size} drives (1 to {limit})")
    write = size // 2 + 1 if p == size // 2 else size - p
    return {"set_size": size, "sets": total // size, "parity": p, "read_quorum": size - p, "write_quorum": write}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def minio_prometheus_token(secret_key, access_key, expires=TOKEN_EXPIRES):
    """The JWT MinIO accepts on its metrics endpoints with MINIO_PROMETHEUS_AUTH_TYPE=jwt: HS512, signed with the
    secret key of the user it names (subject), issuer "prometheus" (what `mc admin prometheus generate` makes)."""
    if not access_key or not secret_key:
        raise AnsibleFilterError("minio_prometheus_token needs the access key and secret key it is signed with")
    header = _b64(json.dumps({"alg": "HS512", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"exp": int(expires), "iss": "prometheus", "sub": str(access_key)}
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = hmac.new(str(secret_key).encode(), f"{header}.{payload}".encode(), hashlib.sha512).digest()
    return f"{header}.{payload}.{_b64(signature)}"


class FilterModule:
    def filters(self):
        return {"minio_erasure": minio_erasure, "minio_prometheus_token": minio_prometheus_token}
