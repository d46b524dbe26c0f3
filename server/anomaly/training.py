"""Training anomaly models: validate, split, fit, pick a threshold, compile, track.

Two model families, as the seed's training sketch has them: an unsupervised
IsolationForest (needs no labels to fit; labels only pick its threshold) and a
supervised RandomForest with ``class_weight="balanced_subsample"`` (anomalies
are ~7% of Shuttle). The threshold is the best-F1 point on the validation split
and travels with the model, so serving and evaluation agree on what "anomaly" means.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split

from kernels.tree_ensemble import compile_forest
from server.anomaly.data import data_fingerprint
from server.anomaly.features import training_matrix
from server.anomaly.model import ModelCard, ServableModel, StreamSpec
from server.anomaly.reference import ReferenceProfile
from server.anomaly.validation import require_valid
from server.config import Settings, TrainingConfig

# Types skops may rebuild when we load our own logged estimators back; nothing else.
SKOPS_TRUSTED_TYPES = [
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "numpy.random._mt19937.MT19937",
]
MODEL_FAMILIES = ("iforest", "rf", "rf-stream")
SYNTHETIC_ENTITIES = 16


@dataclass(slots=True)
class Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@dataclass(slots=True)
class TrainResult:
    name: str
    family: str
    run_id: str
    version: str
    metrics: dict[str, float]
    threshold: float
    servable: ServableModel
    split: Split = field(repr=False)


SPLIT_ARTIFACT = "split.npz"


def stratified_split(y: np.ndarray, cfg: TrainingConfig) -> Split:
    """Row indices for train/validation/test, stratified on the label.

    Seeded by ``split_seed``, not the estimator's ``seed``: a challenger retrained with another
    seed must hold out the same test rows as its champion, or a gate would score one model on
    rows the other trained on.
    """
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=cfg.test_size, stratify=y, random_state=cfg.split_seed)
    train, val = train_test_split(
        rest, test_size=cfg.validation_size, stratify=y[rest], random_state=cfg.split_seed
    )
    return Split(np.sort(train), np.sort(val), np.sort(test))


def check_split(split: Split, n_rows: int) -> Split:
    """A caller-given split must index the frame and keep its three parts disjoint."""
    parts = {"train": split.train, "validation": split.validation, "test": split.test}
    for name, rows in parts.items():
        if len(rows) == 0:
            raise ValueError(f"split.{name} is empty")
        if rows.min() < 0 or rows.max() >= n_rows:
            raise ValueError(f"split.{name} indexes rows outside 0..{n_rows - 1}")
    seen = np.concatenate(list(parts.values()))
    if len(np.unique(seen)) != len(seen):
        raise ValueError("split parts overlap: train, validation and test must be disjoint")
    return Split(*(np.sort(np.asarray(r, dtype=np.int64)) for r in parts.values()))


def best_f1_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """Score threshold (flag when score >= t) with the best F1 on (y, scores)."""
    precision, recall, thresholds = precision_recall_curve(y, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def classification_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    pred = scores >= threshold
    return {
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, scores)),
        "average_precision": float(average_precision_score(y, scores)),
    }


def reference_profile(X: np.ndarray, names: Sequence[str], scores: np.ndarray, n_bins: int = 10) -> dict:
    """Per-feature distribution summary kept for later drift checks (KS/PSI)."""
    qs = [0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0]
    features = {}
    for j, name in enumerate(names):
        col = X[:, j]
        edges = np.unique(np.quantile(col, np.linspace(0, 1, n_bins + 1)))
        counts, _ = np.histogram(col, bins=edges) if edges.size > 1 else (np.array([col.size]), edges)
        features[name] = {
            "mean": float(col.mean()),
            "std": float(col.std()),
            "quantiles": dict(zip(map(str, qs), map(float, np.quantile(col, qs)), strict=True)),
            "bin_edges": edges.tolist(),
            "bin_counts": counts.tolist(),
        }
    return {
        "n_rows": int(X.shape[0]),
        "features": features,
        "score_quantiles": dict(zip(map(str, qs), map(float, np.quantile(scores, qs)), strict=True)),
    }


def _kernel_latency(servable: ServableModel, X: np.ndarray) -> dict[str, float]:
    """Median µs per call at batch 1 and µs per event at batch 4096 of the compiled scorer."""
    one = np.ascontiguousarray(X[:1])
    big = np.ascontiguousarray(X[np.arange(4096) % len(X)])
    out = {}
    for label, batch, reps in (("batch1_us", one, 200), ("batch4096_us_per_event", big, 5)):
        servable.score(batch)
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            servable.score(batch)
            samples.append(time.perf_counter() - t0)
        out[f"scoring_latency_{label}"] = float(np.median(samples) * 1e6 / (1 if batch is one else len(batch)))
    return out


def _fit(family: str, X: np.ndarray, y: np.ndarray, cfg: TrainingConfig):
    if family == "iforest":
        return IsolationForest(n_estimators=cfg.if_n_estimators, random_state=cfg.seed, n_jobs=1).fit(X)
    return RandomForestClassifier(
        n_estimators=cfg.rf_n_estimators,
        class_weight="balanced_subsample",
        random_state=cfg.seed,
        n_jobs=-1,
    ).fit(X, y)


def prepare(
    df: pd.DataFrame, label: str, entity_column: str | None
) -> tuple[pd.DataFrame, list[str], str | None]:
    """Validate and return (frame, feature columns, entity column)."""
    require_valid(df, label=label, entity_column=entity_column)
    features = [c for c in df.columns if c not in {label, entity_column}]
    return df, features, entity_column


def train_family(
    df: pd.DataFrame,
    family: str,
    name: str,
    label: str,
    entity_column: str | None,
    settings: Settings,
    promote: bool = False,
    stream_spec: StreamSpec | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    split: Split | None = None,
    synthetic_entities: bool = False,
    lineage: dict[str, str] | None = None,
) -> TrainResult:
    """Train one model family, log it to MLflow and register it under ``name``.

    ``split`` overrides the stratified split (row indices into ``df``), e.g. to train on a
    subset of the training rows while keeping the standard holdout. The split and a fingerprint
    of ``df`` are logged with the run, so a gate can prove its holdout rows were never seen.
    ``lineage`` (where the rows came from: feature view, version, Delta snapshot) is logged as
    params and tags, so a model names the exact data it learned from.
    """
    import mlflow
    import mlflow.sklearn

    from server.anomaly import registry

    if family not in MODEL_FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose from {MODEL_FAMILIES}")
    cfg = settings.training
    df, feature_cols, entity_column = prepare(df, label, entity_column)
    fingerprint = data_fingerprint(df.drop(columns=[label]))  # the rows' identity: labels may be corrected later
    spec = None
    if family == "rf-stream":
        spec = stream_spec or StreamSpec(settings.anomaly.stream_window, settings.anomaly.stream_alpha)
        if entity_column is None:
            if not synthetic_entities:
                raise ValueError("the rf-stream family needs an entity column (--entity-column) to build per-entity "
                                 "stream features; the data has none")
            # Shuttle has no entity id: the built-in demo interleaves the file into synthetic units so
            # the stream path is exercised; this variant's quality is reported, not gated.
            entity_column = "_unit"
            df = df.assign(_unit=[f"unit-{i % SYNTHETIC_ENTITIES}" for i in range(len(df))])
    progress(f"{name}: building features")
    X = training_matrix(df, feature_cols, entity_column, spec)
    y = df[label].astype(int).to_numpy()
    split = stratified_split(y, cfg) if split is None else check_split(split, len(y))
    progress(f"{name}: fitting {family} on {len(split.train)} rows")
    t0 = time.perf_counter()
    estimator = _fit(family.removesuffix("-stream"), X[split.train], y[split.train], cfg)
    fit_seconds = time.perf_counter() - t0
    forest = compile_forest(estimator)
    sign = -1.0 if family == "iforest" else 1.0
    card = ModelCard(
        name=name, kind=forest.kind, feature_names=feature_cols, threshold=0.0, score_sign=sign, stream=spec
    )
    servable = ServableModel(forest, card)
    val_scores = servable.score(X[split.validation])
    card.threshold = best_f1_threshold(y[split.validation], val_scores)
    # Drift reference: inputs as trained on; scores as live traffic would produce them
    # (validation rows, anomalies in their natural share).
    servable.reference = ReferenceProfile.fit(X[split.train], card.input_names, val_scores, seed=cfg.seed)
    test_scores = servable.score(X[split.test])
    metrics = {f"test_{k}": v for k, v in classification_metrics(y[split.test], test_scores, card.threshold).items()}
    val_metrics = classification_metrics(y[split.validation], val_scores, card.threshold)
    metrics |= {f"val_{k}": v for k, v in val_metrics.items()}
    metrics |= _kernel_latency(servable, X[split.test])
    metrics["fit_seconds"] = fit_seconds
    card.metrics = metrics
    progress(f"{name}: test F1 {metrics['test_f1']:.4f}, ROC-AUC {metrics['test_roc_auc']:.4f}; logging to MLflow")

    client = registry.connect(settings)
    with mlflow.start_run(run_name=f"{name}-{family}") as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params(
            {
                "family": family,
                "n_estimators": len(forest.roots),
                "seed": cfg.seed,
                "split_seed": cfg.split_seed,
                "data_sha256": fingerprint,
                "n_train": len(split.train),
                "n_validation": len(split.validation),
                "n_test": len(split.test),
                "features": ",".join(card.input_names)[:500],
                "threshold": card.threshold,
                "stream_window": spec.window if spec else 0,
                "stream_alpha": spec.alpha if spec else 0,
            }
        )
        if lineage:
            mlflow.log_params(lineage)
            mlflow.set_tags(lineage)
        mlflow.log_metrics(metrics)
        logged = mlflow.sklearn.log_model(
            estimator,
            name="model",
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=["scikit-learn", "skops"],
        )
        tmp_path = Path(tmp)
        np.savez(tmp_path / SPLIT_ARTIFACT, train=split.train, validation=split.validation, test=split.test)
        mlflow.log_artifact(str(tmp_path / SPLIT_ARTIFACT))
        mlflow.log_artifacts(str(servable.save(tmp_path / registry.COMPILED_ARTIFACT)), registry.COMPILED_ARTIFACT)
        schema = {"label": label, "entity_column": entity_column, "features": feature_cols, "inputs": card.input_names}
        mlflow.log_dict(schema, "feature_schema.json")
        normal_val = val_scores[y[split.validation] == 0]
        mlflow.log_dict(
            reference_profile(X[split.train], card.input_names, normal_val), "reference_profile.json"
        )
        run_id = run.info.run_id
    version = registry.register(client, logged.model_uri, name, promote=promote, alias=settings.anomaly.alias)
    card.version, card.run_id = version, run_id
    return TrainResult(name, family, run_id, version, metrics, card.threshold, servable, split)


def train_default(
    settings: Settings,
    data: pd.DataFrame | None = None,
    label: str = "anomaly",
    entity_column: str | None = None,
    families: Sequence[str] | None = None,
    promote: bool = False,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[TrainResult]:
    """Train every requested family on ``data`` (default: Shuttle) as ``<prefix>-<family>``.

    ``families=None`` means every family the data supports: the stream family needs an entity
    column, except on the built-in Shuttle demo, which has none and gets synthetic units.
    Asking for the stream family on user data without an entity column is an error.
    """
    from server.anomaly.data import load_shuttle

    builtin = data is None
    df = load_shuttle() if builtin else data
    if families is None:
        families = [f for f in MODEL_FAMILIES if builtin or entity_column or f != "rf-stream"]
    prefix = settings.training.name_prefix
    return [
        train_family(df, fam, f"{prefix}-{fam}", label, entity_column, settings, promote=promote, progress=progress,
                     synthetic_entities=builtin)
        for fam in families
    ]


FEATURE_STORE_FAMILIES = ("iforest", "rf")


def feature_store_training_set(settings: Settings, view: str, label: str, spec_path: Path | None = None):
    """The point-in-time-correct training set of a gold feature view, through Feast's historical
    retrieval: one row per labelled event of the view's gold snapshot (entity, event time, label),
    joined to the latest feature row of its entity at or before that time.

    Rows with a missing feature (an entity's first events have no history for std and z) are
    dropped and counted: the model's inputs must be complete, and imputing would invent history."""
    from server.pipeline import feature_store
    from server.pipeline.spec import load_spec
    from server.pipeline.tables import Layout

    layout = Layout(Path(settings.pipeline_dir))
    spec = load_spec(spec_path or layout.spec)
    online = feature_store.OnlineStore(settings.pipeline.online_store, settings.pipeline.redis_url)
    entry = feature_store.resolve_view(layout, view)
    snap = feature_store.snapshot(layout, entry["table"])
    if snap is None:
        feature_store.sync(layout, spec, online)
        snap = feature_store.snapshot(layout, entry["table"])
    if snap is None:
        raise ValueError(f"feature view {view!r} has no gold data yet: run `stackserve pipeline run`")
    labels = pd.read_parquet(snap.path)
    if label not in labels.columns:
        raise ValueError(f"--label {label!r} is not a column of {entry['table']} (has {sorted(labels.columns)})")
    entity_df = labels[[spec.entity, spec.timestamp, label]]
    training = feature_store.historical(layout, spec, view, entity_df, online)
    frame = training.frame
    complete = frame[training.features].notna().all(axis=1)
    frame = frame[complete].sort_values([spec.timestamp, spec.entity], kind="stable").reset_index(drop=True)
    # Feast's file store also leaves out rows it has nothing for (and keeps one row per entity and time)
    dropped = len(entity_df) - len(frame)
    lineage = {"feature_view": training.view["name"], "feature_view_version": str(training.view["version"]),
               "feature_view_table": training.view["table"], "gold_delta_version": str(training.snapshot.delta_version),
               "feature_store": "feast", "training_rows_without_features": str(dropped)}
    return frame[[*training.features, label]], lineage


def train_from_feature_view(settings: Settings, view: str, label: str, families: Sequence[str] | None = None,
                            promote: bool = False, spec_path: Path | None = None,
                            progress: Callable[[str], None] = lambda _msg: None) -> list[TrainResult]:
    """``stackserve train anomaly --feature-view NAME[:VERSION]``: train on the view's features (already
    per-entity stream statistics, so the plain families), logging the view version and gold snapshot."""
    families = list(families or FEATURE_STORE_FAMILIES)
    bad = [f for f in families if f not in FEATURE_STORE_FAMILIES]
    if bad:
        raise ValueError(f"--feature-view trains {FEATURE_STORE_FAMILIES} (the view already holds the stream "
                         f"features); not {bad}")
    progress(f"building a point-in-time training set from feature view {view}")
    df, lineage = feature_store_training_set(settings, view, label, spec_path)
    prefix = settings.training.name_prefix
    return [train_family(df, fam, f"{prefix}-{fam}", label, None, settings, promote=promote, progress=progress,
                         lineage=lineage) for fam in families]
