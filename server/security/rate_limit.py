"""Per-tenant token buckets: a steady rate with room for bursts, answered at once when empty.

Only the gateway's event loop touches a bucket (gRPC and HTTP share it), so no lock. This is the
per-process bucket: the only one without ``security.limits_store.redis_url``, and the fallback
while that store is unreachable (server/security/shared_limits.py keeps the same arithmetic in Redis).
"""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float, clock=time.monotonic) -> None:
        self.rate = rate_per_s
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, cost: float = 1.0) -> bool:
        """``cost`` tokens (one request's by default) if the bucket holds them; False means refuse
        now (RESOURCE_EXHAUSTED) and take nothing."""
        self._refill()
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def charge(self, amount: float) -> None:
        """Spend ``amount`` (negative: give back) whatever the balance: for usage known only after the
        fact (an LLM's tokens). The balance may go below zero, a debt the refill repays before the
        next ``take`` succeeds; it never rises above the capacity."""
        self._refill()
        self.tokens = min(self.capacity, self.tokens - amount)

    def retry_after_s(self, cost: float = 1.0) -> float:
        """How long until ``cost`` tokens are there: sent to the client so it can back off precisely."""
        return max(0.0, (cost - self.tokens) / self.rate)
