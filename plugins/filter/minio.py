# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""MinIO erasure-coding arithmetic, for preflight checks of the minio role."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


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


class FilterModule:
    def filters(self):
        return {"minio_erasure": minio_erasure}
