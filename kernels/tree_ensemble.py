"""Tree-ensemble scoring: packing of flat forests for the compiled kernels, and dispatch among them.

Why this module exists: scikit-learn scores a forest one tree at a time through joblib, which costs
milliseconds per call even for a single row. The anomaly scorer answers single events as well as
large batches, so it flattens a fitted ``IsolationForest`` or binary ``RandomForestClassifier``
once into plain arrays (:class:`FlatForest`) and scores them with a compiled kernel (C++, Cython or
Numba), falling back to the NumPy reference in :func:`score_reference` when nothing compiled is
available.

The format (:class:`FlatForest`, :func:`compile_forest`, :func:`score_reference` and the numerical
contract every implementation keeps) lives in :mod:`kernels.tree_ensemble_format`; this module
re-exports those names, so ``kernels.tree_ensemble`` is the one import for users. The compiled
kernels share one packed node layout built by :func:`pack_forest`; see that function for the
layout and the reasons behind it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernels.cpu_budget import usable_cpus
from kernels.tree_ensemble_format import (
    _ARRAY_FIELDS,
    KINDS,
    FlatForest,
    _as_batch,
    _finish_isolation,
    _relayout,
    compile_forest,
    score_reference,
)

__all__ = [
    "BACKENDS",
    "KINDS",
    "NODE_DTYPE",
    "FlatForest",
    "PackedForest",
    "available_backends",
    "compile_forest",
    "pack_forest",
    "score",
    "score_reference",
]

#: Backend names in order of preference for ``backend="auto"``, measured with
#: ``bench/anomaly_kernels.py`` on the 2-core development machine. C++ and Cython run the same
#: algorithm and are within noise of each other on a quiet machine (Cython ~0.3 us faster at batch 1,
#: pybind11's call costs more); C++ comes first because its work-sharing thread pool degrades to
#: serial speed when the other core is busy, where an OpenMP barrier was seen to stall for
#: milliseconds waiting for a descheduled thread. Numba is ~1.5-2x slower; the reference is the last
#: resort.
BACKENDS: tuple[str, ...] = ("cpp", "cython", "numba", "reference")

_KIND_CODE = {"isolation_forest": 0, "random_forest": 1}

#: One packed node, 16 bytes so four share a cache line (see :func:`pack_forest`).
NODE_DTYPE = np.dtype([("thr", "<f8"), ("feat", "<i4"), ("left", "<i4")], align=True)

# Kernels widen +-inf inputs to +-_INF_INPUT (every kernel hard-codes the same constant) and
# thresholds beyond float32 range are remapped around it, so that no comparison changes outcome.
_INF_INPUT = 1e200
_BEYOND_FLOAT32 = 1e100
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------------------------
# Packing and dispatch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PackedForest:
    """The kernel-side form of a :class:`FlatForest` (see :func:`pack_forest`)."""

    nodes: np.ndarray  # NODE_DTYPE [n_nodes]
    values: np.ndarray  # float64 [n_nodes]
    roots: np.ndarray  # int32 [n_trees]
    depths: np.ndarray  # int32 [n_trees], levels below the root (0 for a single leaf)
    n_features: int
    kind_code: int  # 0 isolation forest (kernel returns -sum/denominator), 1 random forest (sum/n)
    denominator: float
    n_threads: int  # threads for large batches
    parallel_min_rows: int  # rows from which a batch is split over threads (see PARALLEL_MIN_STEPS)


def _default_threads() -> int:
    """Threads for large batches: ``STACKSERVE_KERNEL_THREADS`` or the CPUs this process may use
    (affinity and cgroup quota: ``kernels/cpu_budget.py``)."""
    env = os.environ.get("STACKSERVE_KERNEL_THREADS")
    if env:
        return max(1, int(env))
    return usable_cpus()


#: A batch is split over threads when it needs at least this many node steps (rows times the sum
#: of tree depths), i.e. about 20 us of work: below that, handing work to another thread costs
#: more than it saves (measured on 2 cores: 100 trees of depth 8 gain from 32 rows on).
PARALLEL_MIN_STEPS = 20_000
#: Never split fewer rows than this: each thread needs at least one lockstep group of 16 rows.
_PARALLEL_FLOOR_ROWS = 32


def pack_forest(forest: FlatForest, n_threads: int | None = None, parallel_min_rows: int | None = None) -> PackedForest:
    """Build the packed node array the compiled kernels traverse.

    Layout, and why: nodes are 16-byte records ``(thr, feat, left)`` so a split touches one cache
    line; the right child is always ``left + 1`` so a step is ``i = left[i] + (x[feat[i]] > thr[i])``
    with no branch; a leaf points to itself with ``thr = +inf``, so a walk can run a fixed number
    of steps (the tree's depth) without testing for a leaf, which lets the kernels interleave many
    walks and hide memory latency. Leaf values sit in a separate array, read once per walk.

    NaN routing is folded into the same comparison: kernels widen each float32 row to
    ``2 * n_features`` doubles, NaN becoming ``+inf`` in the first half (goes right) and ``-inf``
    in the second (goes left), and a node whose NaN goes left reads ``feature + n_features``.
    ``+-inf`` inputs become ``+-_INF_INPUT``; a threshold above float32's range becomes
    ``_INF_INPUT`` if it is ``+inf`` (only ``+inf`` inputs are not below it) and
    ``_BEYOND_FLOAT32`` otherwise, one below ``-float32 max`` becomes ``-_BEYOND_FLOAT32``. Every
    float32 input then compares with every threshold exactly as scikit-learn compares them.
    """
    inner = forest.left != -1
    canonical = np.array_equal(forest.right[inner], forest.left[inner] + 1)
    if canonical:
        arrays = {name: getattr(forest, name) for name in _ARRAY_FIELDS}
        depths = _depths(forest)
    else:
        arrays, depths = _relayout(**{name: getattr(forest, name) for name in _ARRAY_FIELDS})
    n = arrays["feature"].shape[0]
    leaf = arrays["left"] == -1
    thr = arrays["threshold"]
    thr = np.where(thr > _FLOAT32_MAX, np.where(thr == np.inf, _INF_INPUT, _BEYOND_FLOAT32), thr)
    thr = np.where(thr < -_FLOAT32_MAX, -_BEYOND_FLOAT32, thr)
    nodes = np.zeros(n, dtype=NODE_DTYPE)
    nodes["thr"] = np.where(leaf, np.inf, thr)
    feat = arrays["feature"].astype(np.int64) + arrays["missing_left"].astype(np.int64) * forest.n_features
    nodes["feat"] = np.where(leaf, 0, feat)
    nodes["left"] = np.where(leaf, np.arange(n), arrays["left"])
    if parallel_min_rows is None:
        steps_per_row = max(1, int(depths.sum()))
        parallel_min_rows = max(_PARALLEL_FLOOR_ROWS, -(-PARALLEL_MIN_STEPS // steps_per_row))
    return PackedForest(
        nodes=nodes,
        values=np.ascontiguousarray(arrays["value"], dtype=np.float64),
        roots=np.ascontiguousarray(arrays["roots"], dtype=np.int32),
        depths=depths,
        n_features=forest.n_features,
        kind_code=_KIND_CODE[forest.kind],
        denominator=forest.denominator,
        n_threads=_default_threads() if n_threads is None else max(1, int(n_threads)),
        parallel_min_rows=int(parallel_min_rows),
    )


def _depths(forest: FlatForest) -> np.ndarray:
    """Depth of every tree, by walking all trees level by level at once."""
    depths = np.zeros(forest.n_trees, dtype=np.int32)
    frontier = forest.roots.astype(np.int64)
    owner = np.arange(forest.n_trees)
    level = 0
    while frontier.size:
        depths[owner] = level
        inner = forest.left[frontier] != -1
        frontier, owner = frontier[inner], owner[inner]
        frontier = np.concatenate([forest.left[frontier], forest.right[frontier]]).astype(np.int64)
        owner = np.concatenate([owner, owner])
        level += 1
    return depths


_MODULES = {
    "cpp": "kernels.cpp._tree_ensemble",
    "cython": "kernels.cython._tree_ensemble",
    "numba": "kernels.numba.tree_ensemble",
}
_available: dict[str, bool] = {}


def _is_available(name: str) -> bool:
    """Whether an implementation can be used, found without importing numba (a heavy import)."""
    if name == "reference":
        return True
    if name not in _available:
        if name == "numba":
            _available[name] = importlib.util.find_spec("numba") is not None
        else:
            try:
                importlib.import_module(_MODULES[name])
                _available[name] = True
            except ImportError:
                _available[name] = False
    return _available[name]


def available_backends() -> list[str]:
    """Implementations usable here, in order of preference (compiled extensions must be built)."""
    return [name for name in BACKENDS if _is_available(name)]


def _build_kernel(forest: FlatForest, backend: str) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``f(X) -> scores`` for a validated float32 batch, built once per forest and name."""
    if backend == "auto":
        return _build_kernel(forest, available_backends()[0])
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose 'auto' or one of {BACKENDS}")
    if not _is_available(backend):
        raise RuntimeError(
            f"backend {backend!r} is not available here (available: {available_backends()});"
            " build the extensions with `python setup.py build_ext --inplace`"
        )
    if backend == "reference":
        return lambda X: score_reference(forest, X)
    raw = _make_raw_kernel(backend, pack_forest(forest))
    if forest.kind == "random_forest":
        return raw
    return lambda X: _finish_isolation(forest, raw(X))


def _make_raw_kernel(backend: str, packed: PackedForest) -> Callable[[np.ndarray], np.ndarray]:
    """The bound ``score`` method of one implementation's forest object (built once)."""
    module = importlib.import_module(_MODULES[backend])
    if backend == "numba":
        return module.make_kernel(packed)
    if backend == "cpp":
        nodes = packed.nodes
        forest = module.Forest(
            np.ascontiguousarray(nodes["thr"]),
            np.ascontiguousarray(nodes["feat"]),
            np.ascontiguousarray(nodes["left"]),
            packed.values,
            packed.roots,
            packed.depths,
            packed.n_features,
            packed.kind_code,
            packed.denominator,
            packed.n_threads,
            packed.parallel_min_rows,
        )
    else:
        forest = module.Forest(
            packed.nodes,
            packed.values,
            packed.roots,
            packed.depths,
            packed.n_features,
            packed.kind_code,
            packed.denominator,
            packed.n_threads,
            packed.parallel_min_rows,
        )
    return forest.score


def score(forest: FlatForest, X: np.ndarray, backend: str = "auto") -> np.ndarray:
    """Score a batch: float64 ``[n_rows]``, equal to scikit-learn's output for the source model.

    ``backend`` forces one implementation by name (tests, benchmarks); ``"auto"`` takes the first
    available in :data:`BACKENDS`. Each compiled kernel picks its own serial or threaded
    path from the batch size. The Python work per call is a dict lookup and three attribute checks,
    because at batch 1 the whole call costs a few microseconds.
    """
    kernel = forest._kernels.get(backend)
    if kernel is None:
        # "auto" shares the chosen implementation's kernel object: two C++ forests would
        # mean two thread pools competing for the same cores.
        name = available_backends()[0] if backend == "auto" else backend
        kernel = forest._kernels.get(name) or _build_kernel(forest, name)
        forest._kernels[name] = forest._kernels[backend] = kernel
    if not (type(X) is np.ndarray and X.dtype == np.float32 and X.flags.c_contiguous and X.ndim == 2):
        X = _as_batch(forest, X)
    elif X.shape[1] != forest.n_features:
        raise ValueError(f"X has {X.shape[1]} features, the forest expects {forest.n_features}")
    return kernel(X)
