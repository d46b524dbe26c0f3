"""Rollout traffic in the gateway: which version answers a request, the champion fallback, shadow
copies, and the evaluation loop. No gRPC here: calls fail with the scoring path's own exceptions,
and the servicer turns what reaches the client into a status.

Canary: the hashed share goes to the challenger, and a failed challenger call is retried on the
champion within the same deadline, so a bad challenger never fails a client request. Shadow: the
champion answers; a copy goes to the challenger in the background, bounded so copies never slow
or shed live traffic. Only a version's own failures count against it (``counts_against_model``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from server.anomaly.catalog import CatalogEntry
from server.anomaly.scorer import ScoreResult
from server.batching import OverloadError, RequestTooLargeError
from server.config import RolloutConfig
from server.executors import HOUSEKEEPING, run_in
from server.observability import metrics
from server.rollout import challenger_key
from server.rollout.controller import ROLLOUT_LOGGER, RolloutController, RolloutState
from server.rollout.router import CHALLENGER, CHAMPION

log = logging.getLogger(ROLLOUT_LOGGER)

# call(served key, rows, timeout_s) -> result; raises the scoring path's exceptions
Call = Callable[[str, np.ndarray, float], Awaitable[ScoreResult]]


def counts_against_model(exc: BaseException) -> bool:
    """Whether a failed call is the model version's own fault. Overload, the client's deadline and
    rejected input say nothing about a version, so the controller counts them against neither arm."""
    return not isinstance(exc, (OverloadError, TimeoutError, RequestTooLargeError, asyncio.CancelledError))


class RolloutTraffic:
    def __init__(
        self,
        cfg: RolloutConfig,
        champion: CatalogEntry,
        challenger: CatalogEntry,
        promote: Callable[[], None],
        call: Call,
        has_room: Callable[[int], bool],
        shadow_timeout_s: float,
    ) -> None:
        self.cfg = cfg
        self.controller = RolloutController(cfg, champion.version, promote)
        self.challenger = challenger
        self.key = challenger_key(cfg.model, cfg.challenger_version)
        self._call = call
        self._has_room = has_room  # whether the shared queue has room for a copy of this many rows
        self._shadow_timeout_s = shadow_timeout_s
        self._shadow_tasks: set[asyncio.Task] = set()

    @classmethod
    def start(
        cls,
        cfg: RolloutConfig,
        catalog: dict[str, CatalogEntry],
        challengers: dict[str, CatalogEntry],
        promote: Callable[[], None],
        call: Call,
        has_room: Callable[[int], bool],
        shadow_timeout_s: float,
    ) -> RolloutTraffic | None:
        """The configured rollout, or None (logged) when its versions are not both served or
        take different inputs: the champion then simply serves alone."""
        if not cfg.model:
            return None
        key = challenger_key(cfg.model, cfg.challenger_version)
        champion, challenger = catalog.get(cfg.model), challengers.get(key)
        if champion is None or challenger is None:
            log.error("rollout of %s not started: %s is not served", cfg.model, cfg.model if champion is None else key)
            return None
        if (challenger.n_inputs, challenger.stream) != (champion.n_inputs, champion.stream):
            log.error("rollout of %s not started: challenger v%s takes other inputs than the champion",
                      cfg.model, cfg.challenger_version)
            return None
        return cls(cfg, champion, challenger, promote, call, has_room, shadow_timeout_s)

    @property
    def model(self) -> str:
        return self.controller.model

    @property
    def shadow_inflight(self) -> int:
        return len(self._shadow_tasks)

    async def score(self, routing: str, X: np.ndarray, timeout: float) -> ScoreResult:
        """Score one request of the rolled-out model; ``routing`` picks the arm (stable hash)."""
        rollout = self.controller
        name = rollout.model
        started = time.perf_counter()
        if rollout.arm_for(routing) == CHALLENGER:
            try:
                result = await self._call(self.key, X, timeout)
            except Exception as exc:
                if not counts_against_model(exc):
                    raise  # overload or the client's deadline: not the challenger's fault, not counted
                rollout.record(CHALLENGER, time.perf_counter() - started, ok=False)
                if rollout.state == RolloutState.PROMOTED:
                    raise  # the challenger is the champion now: nothing to fall back to
                metrics.ROLLOUT_REQUESTS.labels(name, CHAMPION, "fallback").inc()
                timeout = max(0.0, timeout - (time.perf_counter() - started))
            else:
                rollout.record(CHALLENGER, time.perf_counter() - started, ok=True, scores=result.scores)
                return dataclasses.replace(result, model=name)
        t0 = time.perf_counter()
        try:
            result = await self._call(name, X, timeout)
        except Exception as exc:
            if counts_against_model(exc):
                rollout.record(CHAMPION, time.perf_counter() - t0, ok=False)
            raise
        rollout.record(CHAMPION, time.perf_counter() - t0, ok=True, scores=result.scores)
        if rollout.shadowing:
            if not self._shadow_has_room(len(X)):
                rollout.record_dropped()  # shed the copy: shadow traffic must never slow or shed live traffic
            else:
                task = asyncio.create_task(self._shadow(X))
                self._shadow_tasks.add(task)
                task.add_done_callback(self._shadow_tasks.discard)
        return result

    def _shadow_has_room(self, rows: int) -> bool:
        """At most ``max_shadow_inflight`` copies, and only while the shared queue has room."""
        return len(self._shadow_tasks) < self.cfg.max_shadow_inflight and self._has_room(rows)

    async def _shadow(self, X: np.ndarray) -> None:
        rollout = self.controller
        started = time.perf_counter()
        try:
            result = await self._call(self.key, X, self._shadow_timeout_s)
        except Exception as exc:
            if counts_against_model(exc):
                rollout.record(CHALLENGER, time.perf_counter() - started, ok=False)
            else:
                rollout.record_dropped()  # shed or expired: the copy was never scored
        else:
            rollout.record(CHALLENGER, time.perf_counter() - started, ok=True, scores=result.scores)

    async def run(self, on_promoted: Callable[[CatalogEntry], None]) -> None:
        """Evaluate every interval in a worker thread, off the request path, until cancelled;
        ``on_promoted`` gets the challenger's entry (renamed to the model) once it is promoted."""
        rollout = self.controller
        while True:
            await asyncio.sleep(self.cfg.eval_interval_s)
            if rollout.state != RolloutState.RUNNING:
                continue
            try:
                snap = await run_in(HOUSEKEEPING, rollout.evaluate)
            except Exception:  # keep evaluating; a broken window must not stop the loop
                log.exception("rollout evaluation failed for %s", rollout.model)
                continue
            if snap.state == RolloutState.PROMOTED:
                on_promoted(dataclasses.replace(self.challenger, name=rollout.model))

    async def close(self) -> None:
        for task in list(self._shadow_tasks):
            task.cancel()
