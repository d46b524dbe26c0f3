"""The rollout controller: per-arm sliding windows and the running → rolled_back | promoted decision.

``record`` is called on the request path and only appends to bounded deques under a lock;
``evaluate`` runs every ``eval_interval_s`` in a worker thread (percentiles, PSI and the registry
call for a promotion are too slow for the event loop). Decisions are terminal: a rolled-back
challenger gets no more traffic, a promoted one gets all of it, until the next server start.

Rollback when the challenger, over the last ``window_s`` and with >= ``min_requests`` requests:
- fails more than ``max_error_rate`` of its requests, or
- has a p95 latency above ``max_p95_ratio`` times the champion's *and* more than ``p95_slack_s`` above it, or
- scores with a distribution whose PSI against the champion's recent scores exceeds ``max_score_psi``.
Promotion when none of these holds after ``promote_after_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from kernels.drift import psi, psi_bin_counts, psi_bin_edges
from server.config import RolloutConfig
from server.observability import metrics
from server.observability.logs import log_event
from server.rollout.router import CHALLENGER, CHAMPION, choose_arm

ROLLOUT_LOGGER = "stackserve.rollout"
PSI_BINS = 10
log = logging.getLogger(ROLLOUT_LOGGER)


class RolloutState(IntEnum):
    RUNNING = 0
    ROLLED_BACK = 1
    PROMOTED = 2


@dataclass(slots=True)
class ArmStats:
    """What one arm did in the window (plus lifetime totals)."""

    requests: int = 0
    errors: int = 0
    p95_s: float = float("nan")
    n_scores: int = 0
    total_requests: int = 0
    total_errors: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(slots=True)
class RolloutSnapshot:
    state: RolloutState
    champion: ArmStats
    challenger: ArmStats
    score_psi: float
    running_for_s: float
    reason: str
    shadow_dropped: int


@dataclass(slots=True)
class _Arm:
    calls: deque  # (t, latency_s, ok), bounded by max_window_requests
    scores: deque = field(default_factory=deque)  # (t, float64 array), bounded by max_window_scores
    n_scores: int = 0
    total_requests: int = 0
    total_errors: int = 0


class RolloutController:
    def __init__(
        self,
        cfg: RolloutConfig,
        champion_version: str,
        promote: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = cfg
        self.model = cfg.model
        self.champion_version = champion_version
        self.challenger_version = cfg.challenger_version
        self._promote = promote
        self._clock = clock
        self._lock = threading.Lock()
        self._arms = {arm: _Arm(deque(maxlen=cfg.max_window_requests)) for arm in (CHAMPION, CHALLENGER)}
        self.started = clock()
        self.state = RolloutState.RUNNING
        self.reason = ""
        self.shadow_dropped = 0
        metrics.ROLLOUT_STATE.labels(self.model).set(int(self.state))
        log_event(ROLLOUT_LOGGER, "rollout", model=self.model, state="running", mode=cfg.mode,
                  champion_version=champion_version, challenger_version=self.challenger_version,
                  canary_share=cfg.canary_share)

    # ----- request path ------------------------------------------------------
    def arm_for(self, key: str) -> str:
        """Who answers this request now: the hash split while running, then the winner."""
        if self.state == RolloutState.PROMOTED:
            return CHALLENGER
        if self.state == RolloutState.ROLLED_BACK or self.cfg.mode != "canary":
            return CHAMPION
        return choose_arm(key, self.cfg.canary_share)

    @property
    def shadowing(self) -> bool:
        return self.cfg.mode == "shadow" and self.state == RolloutState.RUNNING

    def record(self, arm: str, latency_s: float, ok: bool, scores: np.ndarray | None = None) -> None:
        """One call to ``arm``: its latency, whether it failed, and (on success) its scores."""
        now = self._clock()
        metrics.ROLLOUT_REQUESTS.labels(self.model, arm, "ok" if ok else "error").inc()
        with self._lock:
            a = self._arms[arm]
            a.calls.append((now, latency_s, ok))
            a.total_requests += 1
            a.total_errors += not ok
            if ok and scores is not None and len(scores):
                a.scores.append((now, np.asarray(scores, dtype=np.float64)))
                a.n_scores += len(scores)
                while a.n_scores - len(a.scores[0][1]) >= self.cfg.max_window_scores:
                    a.n_scores -= len(a.scores.popleft()[1])

    def record_dropped(self) -> None:
        self.shadow_dropped += 1
        metrics.ROLLOUT_REQUESTS.labels(self.model, CHALLENGER, "dropped").inc()

    # ----- evaluation (worker thread) ----------------------------------------
    def _measure(self, now: float) -> RolloutSnapshot:
        horizon = now - self.cfg.window_s
        stats, scores = {}, {}
        with self._lock:
            for name, a in self._arms.items():
                while a.calls and a.calls[0][0] < horizon:
                    a.calls.popleft()
                while a.scores and a.scores[0][0] < horizon:
                    a.n_scores -= len(a.scores.popleft()[1])
                lat = np.fromiter((c[1] for c in a.calls), np.float64, len(a.calls))
                errors = sum(1 for c in a.calls if not c[2])
                p95 = float(np.quantile(lat, 0.95)) if len(lat) else float("nan")
                stats[name] = ArmStats(len(a.calls), errors, p95, a.n_scores, a.total_requests, a.total_errors)
                scores[name] = np.concatenate([s for _, s in a.scores]) if a.scores else np.empty(0)
        score_psi = float("nan")
        if len(scores[CHAMPION]) and len(scores[CHALLENGER]):
            edges = score_bin_edges(scores[CHAMPION])
            score_psi = psi(psi_bin_counts(scores[CHAMPION], edges), psi_bin_counts(scores[CHALLENGER], edges))
        return RolloutSnapshot(self.state, stats[CHAMPION], stats[CHALLENGER], score_psi, now - self.started,
                               self.reason, self.shadow_dropped)

    def _violation(self, s: RolloutSnapshot) -> str:
        cfg, ch, cp = self.cfg, s.challenger, s.champion
        if ch.requests < cfg.min_requests:
            return ""
        if ch.error_rate > cfg.max_error_rate:
            return f"challenger error rate {ch.error_rate:.3f} > {cfg.max_error_rate}"
        if cp.requests >= cfg.min_requests:
            if ch.p95_s > cfg.max_p95_ratio * cp.p95_s and ch.p95_s - cp.p95_s > cfg.p95_slack_s:
                return (f"challenger p95 {ch.p95_s * 1e3:.1f} ms > {cfg.max_p95_ratio} x champion "
                        f"{cp.p95_s * 1e3:.1f} ms")
            if s.score_psi > cfg.max_score_psi:
                return f"score PSI {s.score_psi:.3f} vs champion > {cfg.max_score_psi}"
        return ""

    def snapshot(self) -> RolloutSnapshot:
        """The window as of now, without acting on it (for GetRollout / `stackserve rollout status`)."""
        return self._measure(self._clock())

    def evaluate(self) -> RolloutSnapshot:
        """Measure the window and act on it; returns the snapshot."""
        now = self._clock()
        snap = self._measure(now)
        if np.isfinite(snap.score_psi):
            metrics.ROLLOUT_SCORE_PSI.labels(self.model).set(snap.score_psi)
        if self.state == RolloutState.RUNNING:
            reason = self._violation(snap)
            if reason:
                self._transition(RolloutState.ROLLED_BACK, reason, snap)
            elif snap.running_for_s >= self.cfg.promote_after_s and snap.challenger.requests >= self.cfg.min_requests:
                try:
                    self._promote()
                except Exception as exc:  # the registry is down: keep running, try again next interval
                    log.warning("promotion of %s v%s failed: %s", self.model, self.challenger_version, exc)
                else:
                    self._transition(RolloutState.PROMOTED, f"healthy for {snap.running_for_s:.1f}s", snap)
        snap.state, snap.reason = self.state, self.reason
        return snap

    def _transition(self, to: RolloutState, reason: str, s: RolloutSnapshot) -> None:
        self.state, self.reason = to, reason
        name = to.name.lower()
        metrics.ROLLOUT_STATE.labels(self.model).set(int(to))
        metrics.ROLLOUT_TRANSITIONS.labels(self.model, name).inc()
        log_event(
            ROLLOUT_LOGGER, "rollout", model=self.model, state=name, previous="running", reason=reason,
            mode=self.cfg.mode, champion_version=self.champion_version, challenger_version=self.challenger_version,
            challenger_requests=s.challenger.requests, challenger_error_rate=round(s.challenger.error_rate, 4),
            challenger_p95_ms=_ms(s.challenger.p95_s), champion_requests=s.champion.requests,
            champion_p95_ms=_ms(s.champion.p95_s),
            score_psi=round(s.score_psi, 4) if np.isfinite(s.score_psi) else None,
            running_for_s=round(s.running_for_s, 2),
        )


def score_bin_edges(reference: np.ndarray, n_bins: int = PSI_BINS) -> np.ndarray:
    """Quantile edges of the champion's scores, with every point mass in a bin of its own.

    Why: a random forest scores most normal events exactly 0.0. Plain quantile edges then collapse
    to ``[-inf, 0, inf]`` and a challenger whose scores all moved to 0.5 lands in the same bin as
    the champion's zeros (PSI 0). An extra edge just above each quantile edge isolates the mass.
    """
    edges = psi_bin_edges(reference, n_bins)
    interior = edges[1:-1]
    return np.concatenate(([-np.inf], np.unique(np.concatenate((interior, np.nextafter(interior, np.inf)))), [np.inf]))


def _ms(x: float) -> float | None:
    return round(x * 1e3, 3) if np.isfinite(x) else None
