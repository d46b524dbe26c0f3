"""The one decision both front doors make: which tenant is calling, may it use this service, now.

Health checks stay open (load balancers and Kubernetes probes carry no key); everything else needs a
key once any tenant is configured. The refusal is a ``ServingError``: UNAUTHENTICATED (no key, or one
that matches no tenant), PERMISSION_DENIED (a service the tenant may not use), RESOURCE_EXHAUSTED (its
rate limit: ``RateLimited``, with the wait). The messages never echo the key.

Who the caller is and what it may use is decided here from the config alone (``identify``); how
often is ``admit``'s awaited step, because with ``security.limits_store.redis_url`` the tenant's
bucket lives in Redis, shared by every gateway replica (server/security/shared_limits.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from server.config import SecurityConfig, TenantConfig
from server.protocol.errors import ServingError
from server.security.api_keys import key_digest
from server.security.shared_limits import LimitsStore, RateLimited, SharedBucket, TokenBudget, retry_text

#: The short service names the config uses, by gRPC service.
SERVICE_NAMES = {
    "stackserve.v1.AnomalyService": "anomaly",
    "stackserve.v1.LLMService": "llm",
    "stackserve.v1.RetrieverService": "retriever",
    "stackserve.v1.ChatService": "chat",
}
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})


@dataclass(slots=True)
class Tenant:
    name: str
    services: frozenset[str]
    requests: SharedBucket | None  # requests_per_s; None: unlimited
    tokens: SharedBucket | None = None  # LLM tokens_per_minute; None: unlimited
    tokens_per_minute: int | None = None

    def may_use(self, service: str) -> bool:
        return "*" in self.services or service in self.services

    def token_budget(self) -> TokenBudget | None:
        """A fresh claim on the tenant's LLM token budget for one call; None when it has none."""
        if self.tokens is None or self.tokens_per_minute is None:
            return None
        return TokenBudget(self.name, self.tokens_per_minute, self.tokens)


class AccessPolicy:
    def __init__(self, config: SecurityConfig) -> None:
        limited = any(t.requests_per_s is not None or t.tokens_per_minute is not None for t in config.tenants)
        store_cfg = config.limits_store
        # the store's client connects on first use, on the gateway's event loop
        self.store = LimitsStore(store_cfg) if store_cfg.redis_url is not None and limited else None
        self.by_digest: dict[str, Tenant] = {}
        for t in config.tenants:
            tenant = _tenant(t, self.store)
            for digest in t.key_sha256:
                self.by_digest[digest] = tenant

    @property
    def enabled(self) -> bool:
        return bool(self.by_digest)

    def identify(self, key: str | None, service: str) -> Tenant | None:
        """The calling tenant (None for an open service), if it may use ``service``; raises
        ServingError otherwise. Spends nothing: ``admit`` adds the rate limit."""
        if service in OPEN_SERVICES:
            return None
        if key is None:
            raise ServingError(grpc.StatusCode.UNAUTHENTICATED,
                               "an API key is required (authorization: Bearer <key>, or x-api-key)")
        tenant = self.by_digest.get(key_digest(key))
        if tenant is None:
            raise ServingError(grpc.StatusCode.UNAUTHENTICATED, "the API key is not valid")
        short = SERVICE_NAMES.get(service, service)
        if short in SERVICE_NAMES.values() and not tenant.may_use(short):
            raise ServingError(grpc.StatusCode.PERMISSION_DENIED,
                               f"tenant {tenant.name!r} may not use the {short} service")
        return tenant

    async def admit(self, key: str | None, service: str) -> Tenant | None:
        """``identify``, then one token of the tenant's request bucket; raises ServingError when
        refused. ``service``: a short name (``llm``) or a gRPC service's full name."""
        tenant = self.identify(key, service)
        if tenant is not None and tenant.requests is not None:
            wait = await tenant.requests.take()
            if wait is not None:
                raise RateLimited(f"tenant {tenant.name!r} is over its rate limit of {tenant.requests.rate:g} "
                                  f"requests/s; {retry_text(wait)}", wait)
        return tenant

    async def close(self) -> None:
        """Close the store's connections (the gateway's stop)."""
        if self.store is not None:
            await self.store.close()


def _tenant(t: TenantConfig, store: LimitsStore | None) -> Tenant:
    requests = (SharedBucket(t.name, "requests", t.requests_per_s, t.burst, store)
                if t.requests_per_s is not None else None)
    tokens = (SharedBucket(t.name, "tokens", t.tokens_per_minute / 60.0, t.tokens_per_minute, store)
              if t.tokens_per_minute is not None else None)
    return Tenant(t.name, frozenset(t.services), requests, tokens, t.tokens_per_minute)
