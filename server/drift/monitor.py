"""Streaming drift monitoring: live inputs and scores against the training reference.

Each served model gets a fixed-size ring of its most recent events (memory does not
grow with traffic). ``observe`` only copies rows into the ring, on the request path;
``evaluate`` computes per-feature PSI and two-sample KS plus score-distribution drift
with the compiled kernels in ``kernels/drift.py``, and is called periodically off the
request path (the gateway runs it in a worker thread).

Status: ALERT when any feature's PSI >= ``psi_alert`` or its KS p-value is below
``ks_alpha / n_features`` (Bonferroni over features), or the score PSI >= ``psi_alert``;
WARN when any PSI >= ``psi_warn``; else OK. Fewer than ``min_events`` observed events
give no verdict (status stays OK, ``ready`` False).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from kernels.drift import KSReference, ks_matrix, psi_matrix
from server.anomaly.reference import ReferenceProfile


class DriftStatus(IntEnum):
    OK = 0
    WARN = 1
    ALERT = 2


@dataclass(slots=True)
class DriftReport:
    model: str
    n_events: int
    ready: bool
    status: DriftStatus
    psi: np.ndarray
    ks_statistic: np.ndarray
    ks_pvalue: np.ndarray
    score_psi: float
    score_ks_pvalue: float
    feature_names: list[str]
    top: list[dict] = field(default_factory=list)


class DriftMonitor:
    def __init__(
        self,
        model: str,
        reference: ReferenceProfile,
        window: int = 4096,
        min_events: int = 500,
        psi_warn: float = 0.1,
        psi_alert: float = 0.25,
        ks_alpha: float = 0.01,
    ):
        if not 0 < psi_warn <= psi_alert:
            raise ValueError("need 0 < psi_warn <= psi_alert")
        self.model = model
        self.reference = reference
        self.window = window
        self.min_events = min_events
        self.psi_warn = psi_warn
        self.psi_alert = psi_alert
        self.ks_alpha = ks_alpha
        n = len(reference.feature_names)
        self._rows = np.zeros((window, n), dtype=np.float64)
        self._scores = np.zeros(window, dtype=np.float64)
        self._next = 0
        self._seen = 0
        self._lock = threading.Lock()  # observe runs on the event loop, evaluate in a worker thread
        self._ks_features = KSReference(reference.sorted_columns)
        self._ks_scores = KSReference(reference.score_sorted)

    @property
    def n_events(self) -> int:
        return min(self._seen, self.window)

    def observe(self, X: np.ndarray, scores: np.ndarray) -> None:
        """Copy the newest events into the ring (O(rows), no allocation beyond the ring)."""
        n = X.shape[0]
        if n == 0:
            return
        if n > self.window:
            X, scores, n = X[-self.window :], scores[-self.window :], self.window
        with self._lock:
            start = self._next
            first = min(n, self.window - start)
            self._rows[start : start + first] = X[:first]
            self._scores[start : start + first] = scores[:first]
            if first < n:
                self._rows[: n - first] = X[first:]
                self._scores[: n - first] = scores[first:]
            self._next = (start + n) % self.window
            self._seen += n

    def evaluate(self) -> DriftReport:
        with self._lock:
            n = self.n_events
            rows = self._rows[:n].copy()
            scores = self._scores[:n].copy()
        names = self.reference.feature_names
        nan = np.full(len(names), np.nan)
        if n < self.min_events:
            return DriftReport(self.model, n, False, DriftStatus.OK, nan, nan, nan, np.nan, np.nan, names)
        ref = self.reference
        psi = psi_matrix(ref.edges, ref.counts, rows)
        ks_stat, ks_p = ks_matrix(self._ks_features, rows)
        score_psi = float(psi_matrix([ref.score_edges], [ref.score_counts], scores[:, None])[0])
        score_ks_p = float(ks_matrix(self._ks_scores, scores[:, None])[1][0])
        bonferroni = self.ks_alpha / len(names)
        ks_flag = np.nan_to_num(ks_p, nan=1.0) < bonferroni
        if (psi >= self.psi_alert).any() or ks_flag.any() or score_psi >= self.psi_alert:
            status = DriftStatus.ALERT
        elif (psi >= self.psi_warn).any() or score_psi >= self.psi_warn:
            status = DriftStatus.WARN
        else:
            status = DriftStatus.OK
        order = np.argsort(-np.nan_to_num(psi, nan=0.0))
        top = [
            {"feature": names[j], "psi": round(float(psi[j]), 4), "ks_statistic": round(float(ks_stat[j]), 4),
             "ks_pvalue": float(ks_p[j])}
            for j in order[:5]
            if psi[j] >= self.psi_warn or ks_flag[j]
        ]
        return DriftReport(self.model, n, True, status, psi, ks_stat, ks_p, score_psi, score_ks_p, names, top)
