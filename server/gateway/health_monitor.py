"""Health that tells the truth: each service's backend probed while it serves, NOT_SERVING while it
is dead or restarting, SERVING again once it answers.

Warm-up sets a service SERVING once; without this, a replica killed later left health saying SERVING
while every call failed, so load balancers and Kubernetes kept sending traffic. The probe is a call
the backend answers cheaply (the anomaly catalog, the LLM's info) under a short timeout; a failed
call that shows the backend gone (``mark_lost``) flips the status at once instead of at the next probe.
The server-wide status ("") follows the anomaly service, as before: a dead LLM must not take the
scorer out of a load balancer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from server.observability.logs import log_event

log = logging.getLogger("stackserve.gateway")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(slots=True)
class _Watched:
    name: str
    probe: Callable[[], Awaitable[Any]]
    also: tuple[str, ...]  # statuses that follow this one (the server-wide "", a dependent service)
    serving: bool = False
    started: bool = False  # warm-up finished: until then warm-up owns the status
    lost_at: float = 0.0


class HealthMonitor:
    def __init__(self, health: health_aio.HealthServicer, interval_s: float = 1.0, timeout_s: float = 2.0) -> None:
        self.health = health
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.watched: dict[str, _Watched] = {}
        self.requires: dict[str, tuple[str, ...]] = {}  # a service serving only while these do (chat)
        self.started_names: set[str] = set()

    def watch(self, name: str, probe: Callable[[], Awaitable[Any]], also: tuple[str, ...] = ()) -> None:
        self.watched[name] = _Watched(name, probe, also)

    def require(self, name: str, *on: str) -> None:
        """``name`` (already SERVING by its own warm-up) is NOT_SERVING while any of ``on`` is not."""
        self.requires[name] = on

    def started(self, name: str) -> None:
        """Warm-up set ``name`` SERVING: from now on the monitor owns its status."""
        self.started_names.add(name)
        w = self.watched.get(name)
        if w is not None:
            w.started = w.serving = True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await asyncio.gather(*(self._probe(w) for w in self.watched.values() if w.started))

    async def _probe(self, w: _Watched) -> None:
        try:
            await asyncio.wait_for(w.probe(), self.timeout_s)
            ok, reason = True, ""
        except Exception as exc:  # any failure is "not serving"; the reason goes to the log
            ok, reason = False, f"{type(exc).__name__}: {exc}"[:300]
        if ok != w.serving:
            await self._set(w, ok, reason)

    async def _set(self, w: _Watched, ok: bool, reason: str) -> None:
        loop = asyncio.get_running_loop()
        w.serving = ok
        for name in (w.name, *w.also):
            await self.health.set(name, SERVING if ok else NOT_SERVING)
        for name, on in self.requires.items():
            if w.name in on and name in self.started_names:
                up = all(self.watched[o].serving for o in on if o in self.watched)
                await self.health.set(name, SERVING if up else NOT_SERVING)
        if ok:
            log_event("stackserve.gateway", "backend serving again", service=w.name,
                      down_s=round(loop.time() - w.lost_at, 3))
        else:
            w.lost_at = loop.time()
            log.warning("backend lost; health NOT_SERVING until it answers", extra={"fields": {
                "service": w.name, "reason": reason}})
