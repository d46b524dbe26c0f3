"""Per-tenant token buckets: a steady rate with room for bursts, answered at once when empty.

Only the gateway's event loop touches a bucket (gRPC and HTTP share it), so no lock.
"""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate_per_s
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.updated = clock()

    def take(self) -> bool:
        """One request's token if there is one; False means refuse it now (RESOURCE_EXHAUSTED)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after_s(self) -> float:
        """How long until the next token: sent to the client so it can back off precisely."""
        return max(0.0, (1.0 - self.tokens) / self.rate)
