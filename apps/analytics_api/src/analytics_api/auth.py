"""Who is asking: the client's address (from a trusted proxy's header only), its API key, then its rate limit."""

from __future__ import annotations

import functools
import ipaddress

from starlette.requests import Request

from analytics_api.keys import KeyStore
from analytics_api.problems import HTTPProblem
from analytics_api.ratelimit import RateLimiter, retry_after


class ClientAddress:
    """The peer's address, or the X-Real-IP / first X-Forwarded-For address when the peer is a trusted proxy."""

    def __init__(self, trusted_proxies):
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        # Whether a peer is a trusted proxy, remembered per peer address (parsing it was a tenth of a request's CPU).
        self._trusted = functools.lru_cache(maxsize=4096)(self._is_proxy)

    def _is_proxy(self, peer: str) -> bool:
        try:
            return any(ipaddress.ip_address(peer) in n for n in self.proxies)
        except ValueError:
            return False

    def __call__(self, request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        if self._trusted(peer):
            forwarded = request.headers.get("x-real-ip") or request.headers.get("x-forwarded-for", "").split(",")[0]
            try:
                return str(ipaddress.ip_address(forwarded.strip()))
            except ValueError:
                pass
        return peer


class Guard:
    """Authentication, then the rate limit of the key and address; returns the key's name."""

    def __init__(self, keys: KeyStore, limiter: RateLimiter, address: ClientAddress):
        self.keys, self.limiter, self.address = keys, limiter, address

    def __call__(self, request: Request) -> str:
        name = self.keys.identify(request.headers.get("x-api-key"))
        if name is None:
            raise HTTPProblem(401, "missing or invalid API key", {"WWW-Authenticate": "ApiKey"})
        wait = self.limiter.check(name, self.address(request))
        if wait > 0:
            raise HTTPProblem(429, "rate limit exceeded", {"Retry-After": retry_after(wait)})
        return name
