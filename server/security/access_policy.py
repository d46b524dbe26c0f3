"""The one decision both front doors make: which tenant is calling, may it use this service, now.

Health checks stay open (load balancers and Kubernetes probes carry no key); everything else needs a
key once any tenant is configured. The refusal is a ``ServingError``: UNAUTHENTICATED (no key, or one
that matches no tenant), PERMISSION_DENIED (a service the tenant may not use), RESOURCE_EXHAUSTED (its
rate limit). The messages never echo the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from server.config import SecurityConfig, TenantConfig
from server.protocol.errors import ServingError
from server.security.api_keys import key_digest
from server.security.rate_limit import TokenBucket

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
    bucket: TokenBucket | None

    def may_use(self, service: str) -> bool:
        return "*" in self.services or service in self.services


class AccessPolicy:
    def __init__(self, config: SecurityConfig) -> None:
        self.by_digest: dict[str, Tenant] = {}
        for t in config.tenants:
            tenant = _tenant(t)
            for digest in t.key_sha256:
                self.by_digest[digest] = tenant

    @property
    def enabled(self) -> bool:
        return bool(self.by_digest)

    def admit(self, key: str | None, service: str) -> Tenant | None:
        """The calling tenant (None for an open service); raises ServingError when refused.
        ``service``: a short name (``llm``) or a gRPC service's full name."""
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
        if tenant.bucket is not None and not tenant.bucket.take():
            raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"tenant {tenant.name!r} is over its rate limit; retry in "
                               f"{max(0.1, round(tenant.bucket.retry_after_s(), 1)):.1f} s")
        return tenant


def _tenant(t: TenantConfig) -> Tenant:
    bucket = TokenBucket(t.requests_per_s, t.burst) if t.requests_per_s is not None else None
    return Tenant(t.name, frozenset(t.services), bucket)
