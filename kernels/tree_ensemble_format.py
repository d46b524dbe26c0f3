"""The flat forest format: fitted scikit-learn forests as plain arrays, checked, saved and scored in NumPy.

A fitted ``IsolationForest`` or binary ``RandomForestClassifier`` is flattened once into plain
arrays (:class:`FlatForest`, by :func:`compile_forest`); :func:`score_reference` scores them in
NumPy (the tests' oracle and the last-resort implementation). The compiled kernels and the choice
between them live in :mod:`kernels.tree_ensemble`, which imports this module (never the reverse).

Numerical contract: every implementation (:func:`score_reference`, and the compiled kernels behind
:func:`kernels.tree_ensemble.score`) returns exactly what scikit-learn returns
(``decision_function`` for an isolation forest, ``predict_proba(X)[:, 1]`` for a random forest).
That requires the same steps in the same order: the input is cast to float32 first (scikit-learn
does this before traversing a tree), each split compares the float32 value widened to float64 with
``<=`` against the float64 threshold, NaN follows ``missing_go_to_left``, and leaf contributions are
summed per row in tree order before the final transform.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "KINDS",
    "FlatForest",
    "compile_forest",
    "score_reference",
]

KINDS: tuple[str, ...] = ("isolation_forest", "random_forest")

_ARRAY_FIELDS: dict[str, type[np.generic]] = {
    "feature": np.int32,
    "threshold": np.float64,
    "left": np.int32,
    "right": np.int32,
    "missing_left": np.uint8,
    "value": np.float64,
    "roots": np.int32,
}
_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class FlatForest:
    """A fitted forest as flat arrays over all nodes of all trees (global node indices).

    ``eq=False`` keeps identity equality and hashing: comparing array fields element-wise is
    ambiguous, and the per-implementation kernel cache (``_kernels``, filled by
    :func:`kernels.tree_ensemble.score`) is keyed on this object.
    """

    feature: np.ndarray  # int32 [n_nodes], original feature index (through estimators_features_)
    threshold: np.ndarray  # float64 [n_nodes]
    left: np.ndarray  # int32 [n_nodes], global index of the left child, -1 on leaves
    right: np.ndarray  # int32 [n_nodes], global index of the right child, -1 on leaves
    missing_left: np.ndarray  # uint8 [n_nodes], 1 = NaN goes left
    value: np.ndarray  # float64 [n_nodes], contribution of a leaf (0 on internal nodes)
    roots: np.ndarray  # int32 [n_trees]
    n_features: int
    kind: str  # "isolation_forest" | "random_forest"
    offset: float  # isolation forest: estimator.offset_; random forest: 0
    denominator: float  # isolation forest: n_trees * c(max_samples); random forest: n_trees
    # Built kernels per implementation name; filled lazily by kernels.tree_ensemble.score() so
    # that the packing and the construction of compiled objects happen once per forest, not once
    # per call.
    _kernels: dict[str, Callable[[np.ndarray], np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.feature.shape[0])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the forest as an ``.npz`` of plain arrays (no pickles, so loading runs no code)."""
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        np.savez(
            path,
            **arrays,
            n_features=np.int64(self.n_features),
            kind=np.str_(self.kind),
            offset=np.float64(self.offset),
            denominator=np.float64(self.denominator),
            format_version=np.int64(_FORMAT_VERSION),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FlatForest:
        """Read a forest written by :meth:`save`.

        Artifacts are untrusted input: the file is opened with ``allow_pickle=False`` and every
        array is checked (presence, shape, dtype, index ranges, tree structure) before any kernel
        sees it, because a bad child index would make a compiled kernel read out of bounds or loop.
        Raises ``ValueError`` naming the problem.
        """
        try:
            npz = np.load(Path(path), allow_pickle=False)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"cannot read forest file {path}: {exc}") from exc
        except ValueError as exc:  # e.g. a pickle, refused by allow_pickle=False
            raise ValueError(f"forest file {path} is not a plain-array .npz: {exc}") from exc
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"forest file {path} is a single array, not an .npz archive")
        with npz:
            expected = {*_ARRAY_FIELDS, "n_features", "kind", "offset", "denominator", "format_version"}
            missing = sorted(expected - set(npz.files))
            if missing:
                raise ValueError(f"forest file {path} lacks {', '.join(missing)}")
            try:
                data = {name: npz[name] for name in expected}
            except ValueError as exc:  # an object array needs pickle, which is refused
                raise ValueError(f"forest file {path} holds a non-plain array: {exc}") from exc
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise ValueError(f"forest file {path} is corrupt: {exc}") from exc
        version = _scalar(data, "format_version", np.integer)
        if int(version) != _FORMAT_VERSION:
            raise ValueError(f"forest file {path} has format_version {version}, expected {_FORMAT_VERSION}")
        arrays: dict[str, np.ndarray] = {}
        for name, dtype in _ARRAY_FIELDS.items():
            arr = data[name]
            if arr.dtype != np.dtype(dtype):
                raise ValueError(f"forest field {name!r} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
            arrays[name] = np.ascontiguousarray(arr)
        kind = _scalar(data, "kind", np.str_)
        return cls(
            **arrays,
            n_features=int(_scalar(data, "n_features", np.integer)),
            kind=str(kind),
            offset=float(_scalar(data, "offset", np.floating)),
            denominator=float(_scalar(data, "denominator", np.floating)),
        )


def _scalar(data: dict[str, np.ndarray], name: str, kind: type[np.generic]) -> Any:
    arr = data[name]
    if arr.shape != () or not np.issubdtype(arr.dtype, kind):
        raise ValueError(f"forest field {name!r} must be a scalar of type {kind.__name__}, got {arr.dtype}{arr.shape}")
    return arr[()]


def _validate(forest: FlatForest) -> None:
    """Check that the arrays describe a forest a kernel can traverse safely.

    Requirements beyond shapes and dtypes: every internal node has two children inside the node
    range with larger indices than itself (so every walk ends), no node has two parents and no
    root is a child (so the relayout in :func:`kernels.tree_ensemble.pack_forest` is a bijection), leaves have both
    children at -1, and internal nodes split on a feature in ``[0, n_features)``.
    """
    for name, dtype in _ARRAY_FIELDS.items():
        arr = getattr(forest, name)
        if not isinstance(arr, np.ndarray) or arr.ndim != 1:
            raise ValueError(f"forest field {name!r} must be a 1-D numpy array")
        if arr.dtype != np.dtype(dtype):
            raise ValueError(f"forest field {name!r} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    n = forest.feature.shape[0]
    for name in ("threshold", "left", "right", "missing_left", "value"):
        if getattr(forest, name).shape[0] != n:
            raise ValueError(f"forest field {name!r} has {getattr(forest, name).shape[0]} entries, expected {n}")
    if forest.kind not in KINDS:
        raise ValueError(f"forest kind {forest.kind!r} is not one of {KINDS}")
    if not isinstance(forest.n_features, int) or forest.n_features < 1:
        raise ValueError(f"n_features must be a positive int, got {forest.n_features!r}")
    if not (math.isfinite(forest.offset) and math.isfinite(forest.denominator)) or forest.denominator < 0:
        raise ValueError("offset must be finite and denominator finite and >= 0")
    roots, left, right = forest.roots, forest.left, forest.right
    if roots.shape[0] < 1:
        raise ValueError("forest has no trees")
    if n == 0 or roots.min() < 0 or roots.max() >= n:
        raise ValueError(f"root indices must lie in [0, {n})")
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise ValueError("a node has exactly one child (left and right must both be -1 on leaves)")
    inner = np.flatnonzero(~leaf)
    kids = np.concatenate([left[inner], right[inner]])
    if kids.size and (kids.min() < 0 or kids.max() >= n):
        raise ValueError(f"child indices must lie in [0, {n}) or be -1")
    parents = np.concatenate([inner, inner])
    if np.any(kids <= parents):
        raise ValueError("every child index must be larger than its parent's (no cycles)")
    if np.any(np.bincount(np.concatenate([kids, roots]), minlength=n) > 1):
        raise ValueError("a node is reachable twice (shared child, or a root that is also a child)")
    feat = forest.feature[inner]
    if feat.size and (feat.min() < 0 or feat.max() >= forest.n_features):
        raise ValueError(f"split features must lie in [0, {forest.n_features})")
    if np.isnan(forest.threshold[inner]).any():
        raise ValueError("split thresholds must not be NaN")
    if not np.isfinite(forest.value[leaf]).all():
        raise ValueError("leaf values must be finite")
    if forest.missing_left.size and forest.missing_left.max() > 1:
        raise ValueError("missing_left must be 0 or 1")


# --------------------------------------------------------------------------------------------
# Flattening fitted scikit-learn estimators
# --------------------------------------------------------------------------------------------


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n) of the isolation-forest paper, written like scikit-learn's so the floats match."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros(n.shape)
    big = n > 2
    out[n == 2] = 1.0
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _bfs_order(left: np.ndarray, right: np.ndarray, root: int) -> tuple[np.ndarray, int]:
    """Old node ids of one tree in level order with siblings adjacent, and the tree depth.

    Level order with each left/right pair stored together is the layout every kernel relies on
    (``right == left + 1``); it also keeps the top levels, which every row visits, in a few cache
    lines.
    """
    levels = [np.array([root], dtype=np.int64)]
    frontier = levels[0]
    while True:
        inner = frontier[left[frontier] != -1]
        if inner.size == 0:
            break
        frontier = np.stack([left[inner], right[inner]], axis=1).ravel().astype(np.int64)
        levels.append(frontier)
    return np.concatenate(levels), len(levels) - 1


def _relayout(
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    missing_left: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Renumber all trees into the canonical layout; returns the arrays and each tree's depth."""
    orders, depths = [], []
    for root in roots:
        order, depth = _bfs_order(left, right, int(root))
        orders.append(order)
        depths.append(depth)
    old = np.concatenate(orders)
    new_of_old = np.full(feature.shape[0], -1, dtype=np.int64)
    new_of_old[old] = np.arange(old.size)
    sizes = np.array([o.size for o in orders])
    new_roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    is_leaf = left[old] == -1
    new_left = np.where(is_leaf, -1, new_of_old[np.where(is_leaf, 0, left[old])]).astype(np.int32)
    new_right = np.where(is_leaf, -1, new_of_old[np.where(is_leaf, 0, right[old])]).astype(np.int32)
    arrays = {
        "feature": np.where(is_leaf, -1, feature[old]).astype(np.int32),
        "threshold": threshold[old].astype(np.float64),
        "left": new_left,
        "right": new_right,
        "missing_left": np.where(is_leaf, 0, missing_left[old]).astype(np.uint8),
        "value": np.where(is_leaf, value[old], 0.0).astype(np.float64),
        "roots": new_roots,
    }
    return arrays, np.asarray(depths, dtype=np.int32)


def compile_forest(estimator: Any) -> FlatForest:
    """Flatten a fitted ``IsolationForest`` or binary ``RandomForestClassifier``.

    Leaf values are precomputed so that a kernel only adds numbers: for an isolation forest the
    leaf's depth plus c(n_samples in the leaf) minus 1, exactly the per-tree term scikit-learn adds
    in ``_parallel_compute_tree_depths``; for a random forest the class-1 fraction stored in
    ``tree_.value`` (already normalised since scikit-learn 1.4, and ``predict_proba`` returns it
    without renormalising, so no division here keeps the floats identical).
    """
    from sklearn.ensemble import IsolationForest, RandomForestClassifier

    if isinstance(estimator, IsolationForest):
        kind = "isolation_forest"
        features_per_tree = estimator.estimators_features_
        n_trees = len(estimator.estimators_)
        max_samples = getattr(estimator, "_max_samples", estimator.max_samples_)
        denominator = float(n_trees * _average_path_length(np.array([max_samples]))[0])
        offset = float(estimator.offset_)
    elif isinstance(estimator, RandomForestClassifier):
        kind = "random_forest"
        if getattr(estimator, "n_outputs_", 1) != 1 or len(estimator.classes_) != 2:
            raise ValueError("only single-output binary RandomForestClassifier models can be compiled")
        features_per_tree = [None] * len(estimator.estimators_)
        denominator = float(len(estimator.estimators_))
        offset = 0.0
    else:
        raise TypeError(
            f"compile_forest supports IsolationForest and RandomForestClassifier, got {type(estimator).__name__}"
        )
    if not hasattr(estimator, "estimators_"):
        raise ValueError("the estimator is not fitted")

    parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAY_FIELDS if name != "roots"}
    roots, start = [], 0
    for tree_est, features in zip(estimator.estimators_, features_per_tree, strict=True):
        tree = tree_est.tree_
        left = tree.children_left.astype(np.int64)
        right = tree.children_right.astype(np.int64)
        leaf = left == -1
        local_feature = np.where(leaf, 0, tree.feature)
        feature = local_feature if features is None else np.asarray(features)[local_feature]
        if kind == "isolation_forest":
            value = tree.compute_node_depths().astype(np.float64) + _average_path_length(tree.n_node_samples) - 1.0
        else:
            value = tree.value[:, 0, 1].astype(np.float64)
        parts["feature"].append(np.where(leaf, -1, feature))
        parts["threshold"].append(tree.threshold)
        parts["left"].append(np.where(leaf, -1, left + start))
        parts["right"].append(np.where(leaf, -1, right + start))
        parts["missing_left"].append(np.asarray(tree.missing_go_to_left, dtype=np.uint8))
        parts["value"].append(np.where(leaf, value, 0.0))
        roots.append(start)
        start += tree.node_count
    flat = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    arrays, _ = _relayout(**flat, roots=np.asarray(roots, dtype=np.int64))
    return FlatForest(
        **arrays,
        n_features=int(estimator.n_features_in_),
        kind=kind,
        offset=offset,
        denominator=denominator,
    )


# --------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------


def _as_batch(forest: FlatForest, X: Any) -> np.ndarray:
    """Validate and cast one batch to C-contiguous float32, the input every kernel expects.

    The float32 cast is part of the numerical contract (scikit-learn casts before traversal);
    values beyond float32's range become ±inf exactly as they do in scikit-learn, so the overflow
    warning numpy would print is silenced here.
    """
    if not (type(X) is np.ndarray and X.dtype == np.float32 and X.flags.c_contiguous):
        arr = np.asarray(X)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"X must hold real numbers, got dtype {arr.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            X = np.ascontiguousarray(arr, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (rows, features), got {X.ndim}-D")
    if X.shape[1] != forest.n_features:
        raise ValueError(f"X has {X.shape[1]} features, the forest expects {forest.n_features}")
    return X


def _finish(forest: FlatForest, sums: np.ndarray) -> np.ndarray:
    """Turn per-row sums of leaf values into scikit-learn's output, in place where possible."""
    if forest.kind == "random_forest":
        return sums / forest.denominator
    return _finish_isolation(forest, _neg_ratio(forest, sums))


def _neg_ratio(forest: FlatForest, sums: np.ndarray) -> np.ndarray:
    if forest.denominator != 0:
        return sums / -forest.denominator
    # scikit-learn: with one training sample per tree both are 0 and the ratio is set to 1.
    return np.full_like(sums, -1.0)


def _finish_isolation(forest: FlatForest, neg_ratio: np.ndarray) -> np.ndarray:
    """``-(2 ** -ratio) - offset``, computed with numpy's power like scikit-learn.

    numpy's vectorised ``power`` and libm's ``pow`` differ in the last bit for a few percent of
    inputs, so the compiled kernels stop at ``-ratio`` and this step stays in numpy to keep the
    result bit-identical to ``decision_function``. ``-offset - p`` equals ``-p - offset`` exactly.
    """
    p = np.power(2.0, neg_ratio, out=neg_ratio)
    return np.subtract(-forest.offset, p, out=p)


def score_reference(forest: FlatForest, X: np.ndarray) -> np.ndarray:
    """Plain NumPy scoring, vectorised over rows, one tree after another (the tests' oracle)."""
    X = _as_batch(forest, X)
    n = X.shape[0]
    sums = np.zeros(n, dtype=np.float64)
    rows = np.arange(n)
    for root in forest.roots:
        node = np.full(n, root, dtype=np.int64)
        active = forest.left[node] != -1
        while active.any():
            idx = node[active]
            x = X[rows[active], forest.feature[idx]].astype(np.float64)
            go_left = np.where(np.isnan(x), forest.missing_left[idx] == 1, x <= forest.threshold[idx])
            node[active] = np.where(go_left, forest.left[idx], forest.right[idx])
            active = forest.left[node] != -1
        sums += forest.value[node]
    return _finish(forest, sums)
