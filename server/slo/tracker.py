"""Live SLO attainment, goodput, error-budget burn and cost, from every finished request.

Why per-second buckets and not the requests themselves: the anomaly path serves thousands of calls
a second and the longest window is an hour; a ring of one bucket per second (requests, requests
that met every objective of their workload, tokens, and per objective the requests that met it)
keeps recording O(objectives) and memory fixed, and any window up to the horizon is a sum over the
ring. Evaluation runs on a Prometheus scrape or a ``stackserve slo`` call, not per request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from server.slo.objectives import Objective, SloFile

# gRPC codes that count against an objective: the server failed to serve in time. A client's own
# mistakes (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION) and cancellations are not requests the
# server owed an answer, so they are not recorded at all.
FAILED_CODES = frozenset({"UNAVAILABLE", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED",
                          "DATA_LOSS", "ABORTED"})
NOT_COUNTED_CODES = frozenset({"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "CANCELLED",
                               "OUT_OF_RANGE", "PERMISSION_DENIED", "UNAUTHENTICATED", "ALREADY_EXISTS"})


@dataclass(frozen=True, slots=True)
class ObjectiveStatus:
    objective: Objective
    value: float | None  # per-request: attainment (share meeting it); rate: the measured rate
    met: bool | None  # None: no requests in the window yet
    requests: int  # in the objective's window
    burn: dict[float, float] = field(default_factory=dict)  # burn window (s) -> burn rate


@dataclass(frozen=True, slots=True)
class WorkloadStatus:
    workload: str
    requests_per_s: float  # over the shortest burn window
    goodput_per_s: float  # requests per second that met every per-request objective of the workload
    cost_per_hour: float  # USD, what the workload's reserved resources cost
    output_tokens_per_s: float = 0.0
    events_per_s: float = 0.0

    @property
    def cost_per_1k_output_tokens(self) -> float | None:
        return self.cost_per_hour / 3600 / self.output_tokens_per_s * 1e3 if self.output_tokens_per_s else None

    @property
    def cost_per_1m_events(self) -> float | None:
        return self.cost_per_hour / 3600 / self.events_per_s * 1e6 if self.events_per_s else None


@dataclass(frozen=True, slots=True)
class SloReport:
    objectives: list[ObjectiveStatus]
    workloads: list[WorkloadStatus]


class _Ring:
    """Per-second sums of a few fields over the last ``horizon`` seconds (plain lists: recording is
    on every request's path, and numpy's per-call cost exceeds the work for six numbers)."""

    def __init__(self, horizon_s: float, n_fields: int) -> None:
        self.size = math.ceil(horizon_s) + 1
        self.n_fields = n_fields
        self.values = [[0.0] * n_fields for _ in range(self.size)]
        self.stamp = [-1] * self.size  # which second each slot holds

    def add(self, second: int, vec: list[float]) -> None:
        slot = second % self.size
        row = self.values[slot]
        if self.stamp[slot] != second:
            self.stamp[slot] = second
            row[:] = vec
        else:
            for i, v in enumerate(vec):
                row[i] += v

    def window(self, now_second: int, window_s: float) -> np.ndarray:
        """Sums over the seconds (now - window, now]: whole seconds, the current one included."""
        lo = now_second - math.ceil(window_s) + 1
        stamp = np.asarray(self.stamp)
        live = (stamp >= lo) & (stamp <= now_second)
        if not live.any():
            return np.zeros(self.n_fields)
        return np.asarray(self.values)[live].sum(axis=0)


class SloTracker:
    """Thread-safe; ``record`` is called by the servicers as requests finish."""

    def __init__(self, slo: SloFile, hourly_cost: dict[str, float] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slo = slo
        self.hourly_cost = hourly_cost or {}
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._per_request = {w: [o for o in slo.for_workload(w) if o.per_request]
                             for w in ("anomaly", "llm", "chat")}
        # fields per workload: requests, met_all, output tokens, events, then one per per-request objective
        self._rings = {w: _Ring(slo.horizon_s, 4 + len(objs)) for w, objs in self._per_request.items()}

    def record(self, workload: str, *, failed: bool, latency_s: float | None = None, ttft_s: float | None = None,
               itl_s: float | None = None, output_tokens: int = 0, events: int = 0) -> None:
        """One finished request. ``itl_s``: the request's own p95 gap between tokens; a value that was
        never observed (no token came) misses a per-request objective on it."""
        objectives = self._per_request.get(workload)
        if objectives is None:
            raise ValueError(f"unknown workload {workload!r}")
        values = {"latency_ms": latency_s, "ttft_ms": ttft_s, "itl_ms": itl_s}
        vec = [0.0] * (4 + len(objectives))
        met_all = True
        for i, o in enumerate(objectives):
            if o.indicator == "error":
                met = not failed
            else:
                v = values[o.indicator]
                if o.indicator == "itl_ms" and v is None and not failed:
                    met = True  # one token or none: no gap to miss
                else:
                    met = not failed and v is not None and v * 1e3 <= o.threshold
            vec[4 + i] = float(met)
            met_all &= met
        vec[0], vec[1], vec[2], vec[3] = 1.0, float(met_all), float(output_tokens), float(events)
        second = int(self.clock())
        with self._lock:
            self._rings[workload].add(second, vec)

    def report(self) -> SloReport:
        now = self.clock()
        second = int(now)
        uptime = max(1.0, now - self.started)
        statuses: list[ObjectiveStatus] = []
        with self._lock:
            for o in self.slo.objectives:
                ring = self._rings[o.workload]
                sums = ring.window(second, o.window_s)
                requests = int(sums[0])  # per-request: in this window
                if o.per_request:
                    i = 4 + self._per_request[o.workload].index(o)
                    value = float(sums[i] / requests) if requests else None
                    met = None if value is None else bool(value >= o.target)
                    burn = {}
                    for w in self.slo.burn_windows_s:
                        ws = ring.window(second, w)
                        if ws[0]:
                            burn[w] = float((1.0 - ws[i] / ws[0]) / (1.0 - o.target))
                    statuses.append(ObjectiveStatus(o, value, met, requests, burn))
                else:
                    span = min(o.window_s, uptime)
                    value = self._rate(o, sums, span)
                    if value is None:
                        statuses.append(ObjectiveStatus(o, None, None, requests))
                    else:
                        met = bool(value >= o.floor) if o.floor is not None else bool(value <= o.ceiling)
                        statuses.append(ObjectiveStatus(o, value, met, requests))
            shortest = min(self.slo.burn_windows_s)
            span = min(shortest, uptime)
            workloads = []
            for w, ring in self._rings.items():
                sums = ring.window(second, shortest)
                workloads.append(WorkloadStatus(w, float(sums[0] / span), float(sums[1] / span),
                                                self.hourly_cost.get(w, 0.0), float(sums[2] / span),
                                                float(sums[3] / span)))
        return SloReport(statuses, workloads)

    def _rate(self, o: Objective, sums: np.ndarray, span_s: float) -> float | None:
        tokens_per_s = float(sums[2] / span_s)
        if o.indicator == "output_tokens_per_s":
            return tokens_per_s
        cost_per_s = self.hourly_cost.get(o.workload, 0.0) / 3600.0
        if o.indicator == "cost_per_1k_output_tokens":
            return cost_per_s / tokens_per_s * 1e3 if tokens_per_s > 0 else None
        events_per_s = float(sums[3] / span_s)
        return cost_per_s / events_per_s * 1e6 if events_per_s > 0 else None


# The process's tracker: installed by the gateway at start, fed by the servicers. A module-level
# hook like the Prometheus registry, so the servicers need no extra plumbing; None = SLOs off.
_TRACKER: SloTracker | None = None


def install(tracker: SloTracker | None) -> None:
    global _TRACKER
    _TRACKER = tracker


def current() -> SloTracker | None:
    return _TRACKER


def record(workload: str, **kwargs) -> None:
    tracker = _TRACKER
    if tracker is not None:
        tracker.record(workload, **kwargs)


def record_failure(workload: str, code_name: str, started: float, **kwargs) -> None:
    """A request that ended with gRPC status ``code_name``: recorded as failed when the server owed
    an answer (FAILED_CODES), not at all for the client's own mistakes or cancellations."""
    if code_name in NOT_COUNTED_CODES or code_name == "OK":
        return
    record(workload, failed=True, latency_s=time.perf_counter() - started, **kwargs)


def p95(values: list[float]) -> float | None:
    """A request's own p95 (of its inter-token gaps), or None when it has none."""
    if not values:
        return None
    return float(np.percentile(values, 95))
