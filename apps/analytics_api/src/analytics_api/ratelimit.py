"""Token-bucket rate limiting per (API key, client address), in memory (each API instance limits on its own; nginx
limits globally in front of them)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict


class RateLimiter:
    """`per_key`: {key name: (limit, window_seconds, burst)} for the keys whose limit differs from the default."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        burst: int,
        max_clients: int = 100_000,
        per_key: dict[str, tuple[int, float, int]] | None = None,
    ):
        self.rate = limit / window_seconds  # tokens per second
        self.capacity = float(max(burst, 1))
        self.max_clients = max_clients
        self._per_key = {k: (lim / window, float(max(b, 1))) for k, (lim, window, b) in (per_key or {}).items()}
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def check(self, key: str, client: str, cost: int = 1, now: float | None = None) -> float:
        """Take `cost` tokens; returns 0 when allowed, else the seconds to wait before retrying."""
        now = time.monotonic() if now is None else now
        rate, capacity = self._per_key.get(key, (self.rate, self.capacity))
        ident = (key, client)
        tokens, last = self._buckets.pop(ident, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens >= cost:
            self._buckets[ident] = (tokens - cost, now)
            wait = 0.0
        else:
            self._buckets[ident] = (tokens, now)
            wait = (cost - tokens) / rate
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))
