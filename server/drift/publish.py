"""Publish drift reports: Prometheus gauges, and one structured log event per escalation."""

from __future__ import annotations

import math

from server.drift.monitor import DriftReport, DriftStatus
from server.observability import metrics
from server.observability.logs import log_event

DRIFT_LOGGER = "stackserve.drift"


def publish(report: DriftReport, previous: DriftStatus) -> DriftStatus:
    """Export ``report``; log once when the status rises above ``previous``. Returns the new status."""
    m = report.model
    metrics.DRIFT_WINDOW.labels(m).set(report.n_events)
    if not report.ready:
        return previous
    for j, name in enumerate(report.feature_names):
        metrics.FEATURE_PSI.labels(m, name).set(_finite(report.psi[j]))
        metrics.FEATURE_KS.labels(m, name).set(_finite(report.ks_statistic[j]))
        metrics.FEATURE_KS_P.labels(m, name).set(_finite(report.ks_pvalue[j], 1.0))
    metrics.SCORE_PSI.labels(m).set(_finite(report.score_psi))
    metrics.SCORE_KS_P.labels(m).set(_finite(report.score_ks_pvalue, 1.0))
    metrics.DRIFT_STATUS.labels(m).set(int(report.status))
    if report.status > previous:
        log_event(
            DRIFT_LOGGER,
            "drift",
            model=m,
            status=report.status.name.lower(),
            previous=previous.name.lower(),
            window_events=report.n_events,
            score_psi=round(report.score_psi, 4),
            top_features=report.top,
        )
    return report.status


def _finite(x: float, default: float = 0.0) -> float:
    return default if x is None or math.isnan(x) else float(x)
