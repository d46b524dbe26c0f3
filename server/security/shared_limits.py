"""Tenants' limits that hold across gateway replicas: token buckets in Redis, with a local fallback.

Why: a bucket per gateway process gives a tenant its rate once per replica (the shipped deployment
runs two). With ``security.limits_store.redis_url`` every gateway takes from one bucket per tenant
and limit, updated by one Lua script (atomic in Redis, so two gateways never both spend the last
token) that refills by Redis' own clock (``TIME``), so the gateways' clocks do not matter.

Two buckets per tenant, each optional:

- requests: ``requests_per_s`` refill, ``burst`` capacity, one token per call (AccessPolicy.admit);
- LLM tokens: ``tokens_per_minute`` capacity, refilled at ``tokens_per_minute / 60`` per second. A
  generation reserves its ``max_tokens`` (capped at the capacity) when it is admitted, as hosted
  APIs do, and settles at its end: prompt + completion tokens actually used, less the reservation
  (``TokenBudget``). The prompt is charged at the end, so a tenant can overdraw by the prompts of
  its requests in flight; the balance then goes negative and its next generation waits for the
  refill to repay it.

The store must never fail a request: a call that errs or takes longer than ``timeout_s`` makes this
process decide with its local bucket (the per-process behaviour, each replica granting the full
rate) for ``recheck_s``, counted in ``stackserve_rate_limit_store_fallbacks_total``; the outage is
logged once when it starts and once when the store answers again.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from urllib.parse import urlsplit, urlunsplit

import grpc

from server.config import LimitsStoreConfig
from server.observability.metrics import RATE_LIMIT_STORE_FALLBACKS
from server.protocol.errors import ServingError
from server.security.rate_limit import TokenBucket

log = logging.getLogger("stackserve.security")

# KEYS[1]: the bucket (a hash: tokens, ts). ARGV: refill per second, capacity, cost, need.
# need > 0: take ``cost`` only if the balance holds ``need`` -> {1, balance} or {0, seconds to wait};
# need = 0: charge ``cost`` whatever the balance (negative: give back) -> {1, balance}.
# Floats travel as strings: Redis turns a Lua number in a reply into an integer.
# The key expires once it would be full again: an idle tenant costs no memory.
BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local need = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
end
if need > 0 and tokens < need then
  return {0, string.format('%.17g', (need - tokens) / rate)}
end
tokens = math.min(capacity, tokens - cost)
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {1, string.format('%.17g', tokens)}
"""


class RateLimited(ServingError):
    """RESOURCE_EXHAUSTED with the wait the client should honour (the HTTP API's Retry-After)."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(grpc.StatusCode.RESOURCE_EXHAUSTED, reason)
        self.retry_after_s = retry_after_s


def retry_text(seconds: float) -> str:
    return f"retry in {max(0.1, round(seconds, 1)):.1f} s"


def redacted(url: str) -> str:
    """The store's URL for a log line: no user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class LimitsStore:
    """The Redis that holds every gateway's buckets. ``take``/``charge`` answer None when the store
    is unreachable (or was, less than ``recheck_s`` ago): the caller then decides locally."""

    def __init__(self, cfg: LimitsStoreConfig) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        assert cfg.redis_url is not None
        self.cfg = cfg
        self.where = redacted(cfg.redis_url)
        # no retries inside the client: the fallback is the retry, and it answers at once
        self.client = aioredis.Redis.from_url(
            cfg.redis_url, socket_timeout=cfg.timeout_s, socket_connect_timeout=cfg.timeout_s,
            retry=Retry(NoBackoff(), 0), health_check_interval=0,
        )
        self.script = self.client.register_script(BUCKET_LUA)
        self.down_until = 0.0  # monotonic: until then, decide locally without asking
        self.down = False

    def key(self, tenant: str, limit: str) -> str:
        return f"{self.cfg.key_prefix}{tenant}:{limit}"

    async def run(self, key: str, rate: float, capacity: float, cost: float, need: float) -> tuple[bool, float] | None:
        """(done, balance or seconds to wait) from the script; None: the store did not answer."""
        if self.down and time.monotonic() < self.down_until:
            return None
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                ok, value = await self.script(keys=[key], args=[repr(rate), repr(capacity), repr(cost), repr(need)])
        except Exception as exc:  # connection refused, timeout, a Redis error: never the caller's failure
            self._went_down(exc)
            return None
        if self.down:
            self.down = False
            log.info("limits store %s answers again: limits are shared across gateways again", self.where)
        return bool(ok), float(value)

    def _went_down(self, exc: BaseException) -> None:
        self.down_until = time.monotonic() + self.cfg.recheck_s
        if not self.down:
            self.down = True
            log.warning("limits store %s unreachable (%s: %s): this gateway limits tenants on its own until "
                        "it answers (rechecked every %.1f s)", self.where, type(exc).__name__, exc,
                        self.cfg.recheck_s)

    async def close(self) -> None:
        await self.client.aclose()


class SharedBucket:
    """One tenant's bucket for one limit: in the store when there is one, else (and while the store
    is unreachable) in this process."""

    def __init__(self, tenant: str, limit: str, rate_per_s: float, capacity: float,
                 store: LimitsStore | None) -> None:
        self.rate = rate_per_s
        self.capacity = float(capacity)
        self.local = TokenBucket(rate_per_s, capacity)
        self.store = store
        self.key = store.key(tenant, limit) if store is not None else ""
        self._pending: set[asyncio.Task] = set()  # charges on their way to the store

    async def take(self, cost: float = 1.0) -> float | None:
        """Take ``cost`` tokens: None when taken, else the seconds until they are there (nothing taken)."""
        if self.store is not None:
            answer = await self.store.run(self.key, self.rate, self.capacity, cost, cost)
            if answer is not None:
                ok, value = answer
                return None if ok else value
            RATE_LIMIT_STORE_FALLBACKS.inc()
        return None if self.local.take(cost) else self.local.retry_after_s(cost)

    def charge(self, amount: float) -> None:
        """Spend (negative: give back) ``amount`` whatever the balance. Does not wait for the store:
        it runs when a generation ends, where the client should not wait for bookkeeping."""
        if amount == 0:
            return
        if self.store is None:
            self.local.charge(amount)
            return
        try:
            task = asyncio.get_running_loop().create_task(self._charge(amount))
        except RuntimeError:  # no loop (a stream finalized at shutdown): this process's bucket
            self.local.charge(amount)
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _charge(self, amount: float) -> None:
        assert self.store is not None
        if await self.store.run(self.key, self.rate, self.capacity, amount, 0.0) is None:
            RATE_LIMIT_STORE_FALLBACKS.inc()
            self.local.charge(amount)


# The calling tenant's token budget, set for the call by the door that admitted it (the gRPC auth
# interceptor, the HTTP API's middleware); None: the tenant has no tokens_per_minute (or no tenant).
TOKEN_BUDGET: contextvars.ContextVar[TokenBudget | None] = contextvars.ContextVar(
    "stackserve_token_budget", default=None
)


class TokenBudget:
    """One call's claim on its tenant's tokens-per-minute bucket.

    A door may ``reserve`` for the whole call before answering (the HTTP API, so a stream refused
    for its budget is a 429, not an error event after a 200); each generation ``claim``s its
    ``max_tokens`` from that reservation, or from the bucket when none is left, and ``settle``s with
    what it used. ``release`` gives back what the call reserved and no generation claimed.
    """

    __slots__ = ("bucket", "held", "tenant", "tokens_per_minute")

    def __init__(self, tenant: str, tokens_per_minute: int, bucket: SharedBucket) -> None:
        self.tenant = tenant
        self.tokens_per_minute = tokens_per_minute
        self.bucket = bucket
        self.held = 0

    def _capped(self, tokens: int) -> int:
        """A reservation the bucket can ever hold: one larger than the budget would never be admitted."""
        return max(1, min(int(tokens), int(self.bucket.capacity)))

    async def reserve(self, tokens: int) -> int:
        """Reserve ``tokens`` (capped at the budget) for this call; raises RateLimited naming the
        tenant and its tokens-per-minute budget when the bucket does not hold them."""
        n = self._capped(tokens)
        wait = await self.bucket.take(n)
        if wait is not None:
            raise RateLimited(f"tenant {self.tenant!r} is over its budget of {self.tokens_per_minute} tokens per "
                              f"minute (this request reserves {n}); {retry_text(wait)}", wait)
        self.held += n
        return n

    async def claim(self, max_tokens: int) -> int:
        """The reservation of one generation: from what the call reserved, else from the bucket."""
        n = self._capped(max_tokens)
        if self.held < n:
            await self.reserve(n)  # what the call still holds stays held until release
        self.held -= n
        return n

    def settle(self, reserved: int, used: int) -> None:
        """A generation ended having used ``used`` tokens (prompt + completion) of ``reserved``."""
        self.bucket.charge(used - reserved)

    def release(self) -> None:
        """The call ended: what it reserved and no generation claimed goes back."""
        if self.held:
            self.bucket.charge(-self.held)
            self.held = 0


def ceil_seconds(seconds: float) -> int:
    """Retry-After is whole seconds (RFC 9110): never 0 for a refusal."""
    return max(1, math.ceil(seconds))
