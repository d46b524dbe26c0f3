"""CI quality gates for a challenger model version against the champion.

- regression: the challenger's F1 on the labelled holdout may not fall more than
  ``max_f1_drop`` below the champion's;
- latency: the challenger's per-call scoring p95, as a ratio to the champion's measured
  in the same run with calls interleaved (never an absolute time), at most ``max_latency_ratio``;
- the holdout is disjoint from everything either model saw: with the built-in data, the rows
  outside both runs' logged train and validation splits (threshold selection included); or the
  user's own labelled file (``--holdout``), which no run indexes into;
- drift: the serving monitor's own verdict (``server/drift/batch_report.py`` ``compare``) must stay quiet on
  unshifted resamples of the holdout (false-alarm rate) and fire on synthetic shifts of a
  stated size (detection rate); a new category must raise categorical PSI past the alert line.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from kernels.drift import psi_categorical
from server.anomaly.model import ServableModel
from server.anomaly.reference import ReferenceProfile
from server.config import DriftConfig, Settings
from server.drift.batch_report import compare

MIN_HOLDOUT_ROWS = 200


class GateInputError(ValueError):
    """The gate cannot be run fairly on what it was given (no provably unseen holdout, wrong columns)."""


def seen_rows(client, run_id: str) -> tuple[str, np.ndarray]:
    """(data fingerprint, train + validation row indices) a run logged when it trained."""
    import mlflow

    from server.anomaly.training import SPLIT_ARTIFACT

    run = client.get_run(run_id)
    fingerprint = run.data.params.get("data_sha256")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=SPLIT_ARTIFACT, dst_path=tmp, tracking_uri=mlflow.get_tracking_uri()
            )
        except Exception as exc:  # MLflow raises its own exception types for a missing artifact
            raise GateInputError(
                f"run {run_id} logged no {SPLIT_ARTIFACT}, so its unseen rows are unknown; "
                "give --holdout FILE --label COL"
            ) from exc
        with np.load(path) as split:
            return fingerprint or "", np.union1d(split["train"], split["validation"])


def unseen_holdout(client, run_ids: list[str], df: pd.DataFrame, label: str = "anomaly") -> pd.DataFrame:
    """Rows of ``df`` that no run in ``run_ids`` trained on or picked its threshold on.

    Refuses when a run was trained on another table (its recorded indices would mean nothing
    here). The fingerprint covers everything but the label, so a run trained on the same rows
    with corrected (or corrupted) labels still maps onto them.
    """
    from server.anomaly.data import data_fingerprint

    fingerprint = data_fingerprint(df.drop(columns=[label]))
    seen = np.zeros(len(df), dtype=bool)
    for run_id in run_ids:
        fp, rows = seen_rows(client, run_id)
        if fp != fingerprint:
            raise GateInputError(
                f"run {run_id} was not trained on this data set, so which rows it saw is unknown; "
                "give the gate your own labelled holdout: --holdout FILE --label COL"
            )
        seen[rows[rows < len(df)]] = True
    return df.iloc[np.flatnonzero(~seen)]  # the index keeps the row numbers


def check_holdout(holdout: pd.DataFrame, feature_names: list[str], label: str) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a labelled holdout, or a GateInputError saying what is missing."""
    missing = [c for c in [*feature_names, label] if c not in holdout.columns]
    if missing:
        raise GateInputError(f"holdout lacks column(s) {missing}; the model takes {feature_names}, label {label!r}")
    y = holdout[label].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise GateInputError(f"holdout label {label!r} must be 0/1")
    X = holdout[feature_names].to_numpy(np.float64)
    if not np.isfinite(X).all():
        raise GateInputError("holdout features must be finite numbers")
    if len(y) < MIN_HOLDOUT_ROWS or y.sum() == 0 or y.sum() == len(y):
        raise GateInputError(
            f"holdout has {len(y)} rows, {int(y.sum())} anomalies: need >= {MIN_HOLDOUT_ROWS} rows and both classes"
        )
    return X, y.astype(int)


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


def probability_gate(
    champion: ServableModel, challenger: ServableModel, X: np.ndarray, y: np.ndarray,
    max_ratio: float = 1.5, slack: float = 1e-4,
) -> GateResult | None:
    """Brier score of the anomaly probability, for models whose score is one (random forests).

    Why besides F1: on an easy data set a model trained on a fraction of the rows still draws the
    same line (measured on Shuttle: F1 0.9957 with 30% of the training rows, as with all of them)
    while its probabilities get four times worse (Brier 4.4e-4 vs 0.96e-4): less sure on every
    borderline event, and worse for any consumer that ranks or calibrates on the score. ``slack``
    keeps near-perfect models from failing on noise (retrained seeds move Brier by ~20%).
    """
    if champion.card.kind != "random_forest" or challenger.card.kind != "random_forest":
        return None
    brier = {
        label: float(np.mean((model.score(X) - y) ** 2))
        for label, model in (("champion", champion), ("challenger", challenger))
    }
    limit = brier["champion"] * max_ratio + slack
    return GateResult(
        "probabilities (holdout Brier score)",
        bool(brier["challenger"] <= limit),
        f"challenger {brier['challenger']:.2e} vs champion {brier['champion']:.2e}",
        f"<= {max_ratio} x champion + {slack:g} = {limit:.2e}",
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


@dataclass(slots=True)
class GateRun:
    """The gates of one challenger against the champion, on one holdout."""

    champion_version: str
    challenger_version: str
    alias: str
    source: str  # where the holdout came from
    rows: int
    anomalies: int
    results: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def run_gates(
    settings: Settings,
    model: str,
    challenger: str | None = None,
    train: bool = False,
    holdout_path: str | None = None,
    label: str = "anomaly",
    fmt: str | None = None,
    max_f1_drop: float = 0.01,
    max_latency_ratio: float = 1.2,
    max_brier_ratio: float = 1.5,
) -> GateRun:
    """``stackserve gate``: regression, probability (random forests), latency and drift gates of the
    ``challenger`` version of ``model`` against its champion. ``train`` first trains a champion and a
    retrained challenger (next estimator seed, same split) into the store. The holdout is the
    built-in data's rows neither run saw, or the user's labelled file (``holdout_path``, ``label``).
    Anything the user must fix raises GateInputError with the reason."""
    from server.anomaly import registry
    from server.anomaly.data import load_shuttle, read_table
    from server.anomaly.training import train_family

    if not train and not challenger:
        raise GateInputError("give --challenger VERSION, or --train")
    if train and holdout_path:
        raise GateInputError("--train trains on the built-in data; it takes no --holdout")
    client = registry.connect(settings)
    family = model.removeprefix(f"{settings.training.name_prefix}-")
    if train:
        if family not in ("rf", "iforest"):
            raise GateInputError("--train: choose a shuttle-rf or shuttle-iforest model")
        df = load_shuttle()
        train_family(df, family, model, "anomaly", None, settings)
        settings.training.seed += 1  # the estimator's seed only: the split stays (training.split_seed)
        try:
            challenger = train_family(df, family, model, "anomaly", None, settings).version
        finally:
            settings.training.seed -= 1
    try:
        champion = registry.load_servable(client, model, settings.anomaly.alias)
        chall = registry.load_servable(client, model, version=challenger)
    except registry.ModelNotFoundError as exc:
        raise GateInputError(str(exc)) from exc
    if champion.card.version == chall.card.version:
        raise GateInputError(f"the challenger v{chall.card.version} is the champion itself")
    if any(m.card.stream is not None or m.reference is None for m in (champion, chall)):
        raise GateInputError("needs raw-feature models trained with a reference profile")
    features = list(champion.card.feature_names)
    if list(chall.card.feature_names) != features:
        raise GateInputError(f"the challenger takes {list(chall.card.feature_names)}, the champion {features}")
    try:
        if holdout_path:
            holdout, source = read_table(holdout_path, fmt), holdout_path
        else:
            holdout = unseen_holdout(client, [champion.card.run_id, chall.card.run_id], load_shuttle())
            label, source = "anomaly", "Shuttle rows neither run saw"
        X, y = check_holdout(holdout, features, label)
    except (FileNotFoundError, ValueError) as exc:  # GateInputError is a ValueError
        raise GateInputError(str(exc)) from exc
    results = [
        regression_gate(champion, chall, X, y, max_f1_drop),
        *filter(None, [probability_gate(champion, chall, X, y, max_brier_ratio)]),
        latency_gate(champion, chall, X, max_ratio=max_latency_ratio),
        *drift_gates(chall.reference, holdout[features], settings.drift),
    ]
    return GateRun(str(champion.card.version), str(chall.card.version), settings.anomaly.alias, source, len(y),
                   int(y.sum()), results)
