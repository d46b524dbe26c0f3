"""CI quality gates for a challenger model version against the champion.

- regression: the challenger's F1 on the labelled holdout may not fall more than
  ``max_f1_drop`` below the champion's;
- latency: the challenger's per-call scoring p95, as a ratio to the champion's measured
  in the same run with calls interleaved (never an absolute time), at most ``max_latency_ratio``;
- drift: the serving monitor's own verdict (``drift_report.compare``) must stay quiet on
  unshifted resamples of the holdout (false-alarm rate) and fire on synthetic shifts of a
  stated size (detection rate); a new category must raise categorical PSI past the alert line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from kernels.drift import psi_categorical
from server.anomaly.drift_report import compare
from server.anomaly.model import ServableModel
from server.anomaly.reference import ReferenceProfile
from server.config import DriftConfig


@dataclass(slots=True)
class GateResult:
    gate: str
    passed: bool
    measured: str
    limit: str


def regression_gate(
    champion: ServableModel, challenger: ServableModel, X: np.ndarray, y: np.ndarray, max_f1_drop: float = 0.01
) -> GateResult:
    f1 = {}
    for label, model in (("champion", champion), ("challenger", challenger)):
        f1[label] = f1_score(y, model.score(X) >= model.card.threshold, zero_division=0)
    drop = f1["champion"] - f1["challenger"]
    return GateResult(
        "regression (holdout F1)",
        bool(drop <= max_f1_drop),
        f"challenger {f1['challenger']:.4f} vs champion {f1['champion']:.4f}",
        f"drop <= {max_f1_drop}",
    )


def latency_gate(
    champion: ServableModel, challenger: ServableModel, X: np.ndarray, batch: int = 256, calls: int = 100,
    blocks: int = 5, max_ratio: float = 1.2,
) -> GateResult:
    """Median over ``blocks`` of the p95 per-call latency ratio at ``batch`` rows; calls are
    interleaved so a noisy neighbour slows both, and the median block shrugs off one bad block."""
    Xb = np.ascontiguousarray(X[np.arange(batch) % len(X)])
    fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {"champion": champion.score, "challenger": challenger.score}
    for fn in fns.values():  # warm-up: kernel build and thread pool start
        fn(Xb)
    ratios, p95s = [], []
    for _ in range(blocks):
        samples: dict[str, list[float]] = {"champion": [], "challenger": []}
        for i in range(calls):
            for label in (("champion", "challenger") if i % 2 else ("challenger", "champion")):
                t0 = time.perf_counter()
                fns[label](Xb)
                samples[label].append(time.perf_counter() - t0)
        p95 = {k: float(np.percentile(v, 95)) for k, v in samples.items()}
        ratios.append(p95["challenger"] / p95["champion"])
        p95s.append(p95)
    k = int(np.argsort(ratios)[len(ratios) // 2])
    return GateResult(
        f"latency (p95 at batch {batch}, median of {blocks} blocks)",
        bool(ratios[k] <= max_ratio),
        f"{ratios[k]:.2f}x ({p95s[k]['challenger'] * 1e6:.0f} vs {p95s[k]['champion'] * 1e6:.0f} µs)",
        f"<= {max_ratio}x",
    )


def _alarm_rate(
    reference: ReferenceProfile, frame: pd.DataFrame, cfg: DriftConfig, n: int, size: int, seed: int,
    transform: Callable[[pd.DataFrame], pd.DataFrame] = lambda d: d,
) -> float:
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(n):
        sample = transform(frame.iloc[rng.integers(0, len(frame), size)].reset_index(drop=True))
        alarms += any(r.verdict == "alert" for r in compare(reference, sample, cfg))
    return alarms / n


def drift_gates(
    reference: ReferenceProfile, holdout: pd.DataFrame, cfg: DriftConfig, resamples: int = 100, size: int = 2000,
    shifted_feature: str | None = None, seed: int = 0, max_false_alarm: float = 0.02, min_detection: float = 0.95,
) -> list[GateResult]:
    """False alarms on unshifted resamples; detection of a 0.5-sd mean shift, a 1.5x scale change,
    and a new category. The shifted feature defaults to the one with the most distinct values,
    and sd is the robust one (IQR / 1.349) so a few extreme outliers cannot inflate the shift."""
    feature = shifted_feature or max(reference.feature_names, key=lambda c: holdout[c].nunique())
    q1, q3 = np.percentile(holdout[feature], [25, 75])
    sd = float(q3 - q1) / 1.349 or float(holdout[feature].std())
    false_alarm = _alarm_rate(reference, holdout, cfg, resamples, size, seed)
    mean_shift = _alarm_rate(reference, holdout, cfg, resamples // 4, size, seed + 1,
                             lambda d: d.assign(**{feature: d[feature] + 0.5 * sd}))
    centre = float(holdout[feature].median())
    scale = _alarm_rate(reference, holdout, cfg, resamples // 4, size, seed + 2,
                        lambda d: d.assign(**{feature: centre + (d[feature] - centre) * 1.5}))
    # categorical: the feature's observed values as categories, then 5% of a category never seen
    ref_cats = holdout[feature].astype(int).astype(str).to_numpy()
    rng = np.random.default_rng(seed + 3)
    cur_cats = ref_cats[rng.integers(0, len(ref_cats), size)].copy()
    cur_cats[rng.random(size) < 0.05] = "never-seen"
    new_cat_psi = psi_categorical(ref_cats, cur_cats)
    return [
        GateResult("drift: false alarms on unshifted resamples", false_alarm <= max_false_alarm,
                   f"{false_alarm:.1%} of {resamples} x {size} rows", f"<= {max_false_alarm:.0%}"),
        GateResult(f"drift: detects +0.5 sd mean shift of {feature} (+{0.5 * sd:.2f})", mean_shift >= min_detection,
                   f"{mean_shift:.0%} of {resamples // 4}", f">= {min_detection:.0%}"),
        GateResult(f"drift: detects 1.5x scale change of {feature}", scale >= min_detection,
                   f"{scale:.0%} of {resamples // 4}", f">= {min_detection:.0%}"),
        GateResult("drift: new category (5% of rows) raises categorical PSI", new_cat_psi >= cfg.psi_alert,
                   f"PSI {new_cat_psi:.3f}", f">= {cfg.psi_alert}"),
    ]
