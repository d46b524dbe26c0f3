"""Data-drift statistics: population stability index and two-sample Kolmogorov-Smirnov.

Why: the anomaly scorer is only as good as the match between live traffic and its training data.
The monitor compares a window of current requests with a reference profile captured at training
time, per feature, every few seconds, so the comparison must cost far less than the scoring
itself: everything derived from the reference (PSI bin edges and counts, sorted KS columns) is
computed once at training time, and the current window is binned and compared in compiled,
parallel passes over the raw matrix (``kernels/numba/drift/ks_statistic.py`` explains how KS avoids
sorting it).

**PSI** (numeric features):

* Binning (:func:`psi_bin_edges`): interior edges are the reference's quantiles at 1/n, ..., (n-1)/n
  of its non-NaN, finite values (NumPy's default linear interpolation), deduplicated; the outer
  edges are -inf and +inf, so every current value lands in a bin. A value goes to bin i when
  ``edges[i] <= x < edges[i + 1]`` (the last bin also holds +inf). Heavily tied data yields fewer
  bins rather than empty duplicate bins.
* NaN: counted in an extra bin after the value bins. Count vectors are therefore
  ``len(edges)`` long: ``n_bins`` value bins, then NaN. Missing values that appear (or vanish) in
  production count as drift, like any other shift of mass.
* :func:`psi`: ``sum((c - r) * ln(c / r))`` over bins, with r and c the reference and current
  proportions, where **a bin with count 0 gets proportion eps** (default 1e-4) instead of 0 (no
  renormalisation), so the index stays finite; a bin empty on both sides contributes exactly 0.
  Rules of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant shift.
* Categorical features (:func:`psi_categorical`): one bin per reference category, one for
  missing (None/NaN) and one "other/new" bin for categories never seen in the reference, which is
  empty in the reference, so a new category always raises the index.

**KS** (:func:`ks_2samp`, :func:`ks_matrix`): two-sided, matching ``scipy.stats.ks_2samp`` (the
exact small-sample distribution and the asymptotic ``kstwo`` path, same ``auto`` rule) to ~1e-12.
NaN values are dropped and counted; a sample with no values left raises ``ValueError`` (as scipy
does for empty input). In :func:`ks_matrix` a column with no values left on either side gets NaN
statistic and p-value instead, so one dead feature does not hide the others' results.

Implementations: ``"numba"`` (default) and ``"reference"``. The reference is the obvious code a
reviewer can check by eye: NumPy binning with ``searchsorted`` for PSI, and ``scipy.stats.ks_2samp``
on the NaN-free columns for KS (scipy is installed with scikit-learn; it is imported lazily).
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "DEFAULT_EPS",
    "KS_METHODS",
    "KSReference",
    "KSResult",
    "available_backends",
    "ks_2samp",
    "ks_matrix",
    "psi",
    "psi_bin_counts",
    "psi_bin_edges",
    "psi_categorical",
    "psi_fit",
    "psi_matrix",
    "sort_columns",
]

#: Backend names in order of preference for ``backend="auto"``.
BACKENDS: tuple[str, ...] = ("numba", "reference")
#: ``method`` values of the KS functions; codes shared with kernels/numba/drift/ks_pvalues.py.
KS_METHODS: dict[str, int] = {"auto": 0, "exact": 1, "asymp": 2}
_USED = ("exact", "asymp")
#: Proportion given to an empty bin by :func:`psi`.
DEFAULT_EPS = 1e-4


def available_backends() -> list[str]:
    """Usable backends in order of preference (numba is found without importing it)."""
    names = ["reference"]
    if importlib.util.find_spec("numba") is not None:
        names.insert(0, "numba")
    return names


def _resolve(backend: str) -> str:
    if backend == "auto":
        return available_backends()[0]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose 'auto' or one of {BACKENDS}")
    if backend not in available_backends():
        raise RuntimeError(f"backend {backend!r} is not available here (install numba)")
    return backend


def _as_matrix(X: Any, name: str) -> tuple[np.ndarray, bool]:
    """A float64 matrix in memory order, without copying when it already is one.

    Returns ``(array, col_major)``: C-ordered ``[rows, features]`` with ``col_major=False``, or,
    for Fortran-ordered input, its transpose ``[features, rows]`` (C-ordered) with ``col_major=True``,
    so kernels always walk memory forwards.
    """
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got {arr.ndim}-D")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.dtype != np.float64 or not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.array(arr, dtype=np.float64, order="K", copy=True)
        if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
            arr = np.ascontiguousarray(arr)
    if arr.flags.c_contiguous:
        return arr, False
    return arr.T, True


def _as_sample(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got {arr.ndim}-D")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return np.array(arr, dtype=np.float64)


# ------------------------------------------------------------------------------------------------
# PSI
# ------------------------------------------------------------------------------------------------


def psi_bin_edges(reference_column: Any, n_bins: int = 10) -> np.ndarray:
    """Quantile bin edges of one reference feature, computed once at training time.

    ``[-inf, q(1/n), ..., q((n-1)/n), +inf]`` over the non-NaN finite values, duplicates removed
    (so a feature with few distinct values gets fewer bins). A column without finite values gets
    the single bin ``[-inf, +inf]``.
    """
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    x = _as_sample(reference_column, "reference_column")
    x = x[np.isfinite(x)]
    interior = np.empty(0) if x.size == 0 or n_bins == 1 else np.quantile(x, np.arange(1, n_bins) / n_bins)
    return np.concatenate(([-np.inf], np.unique(interior), [np.inf]))


def _check_edges(edges: Any, name: str) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or e[0] != -np.inf or e[-1] != np.inf:
        raise ValueError(f"{name} must be 1-D bin edges starting at -inf and ending at +inf (see psi_bin_edges)")
    if not np.all(e[1:] > e[:-1]):
        raise ValueError(f"{name} must be strictly increasing")
    return e


def psi_bin_counts(values: Any, edges: Any) -> np.ndarray:
    """Counts of one feature's values per bin, NaN last: ``len(edges)`` integers (NumPy reference)."""
    e = _check_edges(edges, "edges")
    x = _as_sample(values, "values")
    nan = np.isnan(x)
    bins = np.searchsorted(e[1:-1], x[~nan], side="right")
    counts = np.bincount(bins, minlength=e.size - 1)
    return np.append(counts, np.count_nonzero(nan)).astype(np.int64)


def psi(ref_counts: Any, cur_counts: Any, eps: float = DEFAULT_EPS) -> float:
    """Population stability index of two count vectors over the same bins.

    ``sum((c - r) * ln(c / r))`` with r, c the proportions; **a bin with count 0 gets proportion
    eps**, without renormalising the others (the usual convention; it keeps the index finite when
    one side has an empty bin). Raises ``ValueError`` for mismatched lengths, negative counts or
    an empty side.
    """
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    if r.ndim != 1 or r.shape != c.shape:
        raise ValueError(f"count vectors must be 1-D and equally long, got shapes {r.shape} and {c.shape}")
    return float(_psi_rows(r[None, :], c[None, :], eps)[0])


def _psi_rows(r: np.ndarray, c: np.ndarray, eps: float) -> np.ndarray:
    """PSI per row of two count matrices (zero-padded columns contribute exactly 0)."""
    if not (isinstance(eps, float | int) and 0.0 < eps < 1.0):
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}")
    if (r < 0).any() or (c < 0).any():
        raise ValueError("counts must be non-negative")
    rt = r.sum(axis=1, keepdims=True)
    ct = c.sum(axis=1, keepdims=True)
    if (rt == 0).any():
        raise ValueError(f"reference counts are empty for row(s) {np.flatnonzero(rt[:, 0] == 0).tolist()}")
    if (ct == 0).any():
        raise ValueError(f"current counts are empty for row(s) {np.flatnonzero(ct[:, 0] == 0).tolist()}")
    rp = np.where(r == 0, eps, r / rt)
    cp = np.where(c == 0, eps, c / ct)
    return np.sum((cp - rp) * np.log(cp / rp), axis=1)


def psi_fit(reference_matrix: Any, n_bins: int = 10) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Training-time PSI profile of every feature: ``(edges_per_feature, reference_counts)``."""
    X, col_major = _as_matrix(reference_matrix, "reference_matrix")
    cols = X if col_major else X.T
    edges = [psi_bin_edges(col, n_bins) for col in cols]
    return edges, [psi_bin_counts(col, e) for col, e in zip(cols, edges, strict=True)]


def psi_matrix(
    edges_per_feature: Sequence[Any],
    reference_counts: Sequence[Any],
    current_matrix: Any,
    eps: float = DEFAULT_EPS,
    backend: str = "auto",
) -> np.ndarray:
    """PSI of every feature of ``current_matrix`` ``[rows, features]``: float64 ``[features]``.

    ``edges_per_feature[j]`` and ``reference_counts[j]`` come from :func:`psi_fit` (or
    :func:`psi_bin_edges` / :func:`psi_bin_counts`); features may have different bin counts.
    The numba implementation bins all features in one parallel pass over the rows.
    """
    backend = _resolve(backend)
    X, col_major = _as_matrix(current_matrix, "current_matrix")
    n_rows, n_features = (X.shape[1], X.shape[0]) if col_major else X.shape
    if len(edges_per_feature) != n_features or len(reference_counts) != n_features:
        raise ValueError(
            f"current_matrix has {n_features} features but got {len(edges_per_feature)} edge arrays "
            f"and {len(reference_counts)} reference count vectors"
        )
    if n_rows == 0:
        raise ValueError("current_matrix has no rows")
    edges = [_check_edges(e, f"edges_per_feature[{j}]") for j, e in enumerate(edges_per_feature)]
    width = max(e.size for e in edges)  # n_bins + 1 slots: value bins, then NaN
    ref = np.zeros((n_features, width))
    for j, (e, rc) in enumerate(zip(edges, reference_counts, strict=True)):
        rc = np.asarray(rc, dtype=np.float64)
        if rc.shape != (e.size,):
            raise ValueError(f"reference_counts[{j}] must have {e.size} entries (bins, then NaN), got {rc.shape}")
        ref[j, : e.size] = rc
    cur = np.zeros((n_features, width))
    if backend == "reference":
        cols = X if col_major else X.T
        for j, (col, e) in enumerate(zip(cols, edges, strict=True)):
            cur[j, : e.size] = psi_bin_counts(col, e)
    else:
        from kernels.numba import drift as nbd

        interior = np.full((n_features, max(width - 2, 1)), np.nan)
        n_int = np.array([e.size - 2 for e in edges], dtype=np.int64)
        for j, e in enumerate(edges):
            interior[j, : e.size - 2] = e[1:-1]
        counts = nbd.psi_bin_counts(X, col_major, interior, n_int, _n_chunks(n_rows))
        cur[:, :] = counts[:, :width]
    return _psi_rows(ref, cur, eps)


def _category_counts(values: Any, name: str) -> tuple[Counter[Hashable], int]:
    """Counts per category and the number of missing values (None or NaN)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got {arr.ndim}-D")
    if arr.dtype.kind == "O":
        counts: Counter[Hashable] = Counter()
        missing = 0
        for v in arr.tolist():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                missing += 1
            else:
                counts[v] += 1
        return counts, missing
    mask = np.isnan(arr) if arr.dtype.kind in "fc" else np.zeros(arr.shape, dtype=bool)
    uniq, cnt = np.unique(arr[~mask], return_counts=True)
    return Counter(dict(zip(uniq.tolist(), cnt.tolist(), strict=True))), int(mask.sum())


def psi_categorical(ref_values: Any, cur_values: Any, eps: float = DEFAULT_EPS) -> float:
    """PSI of a categorical feature: one bin per reference category, then missing, then other/new.

    The other/new bin counts current values whose category never occurs in the reference; it is
    empty in the reference (proportion eps), so any new category raises the index, by
    ``(c - eps) * ln(c / eps)`` for a share c. Missing means None or NaN.
    """
    ref, ref_missing = _category_counts(ref_values, "ref_values")
    cur, cur_missing = _category_counts(cur_values, "cur_values")
    if not ref and not ref_missing:
        raise ValueError("ref_values is empty")
    if not cur and not cur_missing:
        raise ValueError("cur_values is empty")
    cats = list(ref)
    other = sum(n for cat, n in cur.items() if cat not in ref)
    r = [ref[c] for c in cats] + [ref_missing, 0]
    c = [cur.get(cat, 0) for cat in cats] + [cur_missing, other]
    return psi(r, c, eps)


# ------------------------------------------------------------------------------------------------
# Kolmogorov-Smirnov
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KSResult:
    """Two-sided two-sample KS result; ``method`` is the one used ("exact" or "asymp")."""

    statistic: float
    pvalue: float
    method: str
    n_a: int  # values used, NaN dropped
    n_b: int
    nan_a: int  # NaN values dropped
    nan_b: int


def _method_code(method: str) -> int:
    if method not in KS_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {tuple(KS_METHODS)}")
    return KS_METHODS[method]


def _warn_fallback(code: int, where: str) -> None:
    """The RuntimeWarnings scipy emits when it switches from exact to asymptotic."""
    if code == 1:
        warnings.warn(f"{where}: exact calculation not possible for these sample sizes; switching to 'asymp'",
                      RuntimeWarning, stacklevel=3)  # fmt: skip
    elif code == 2:
        warnings.warn(f"{where}: exact calculation unsuccessful; switching to 'asymp'", RuntimeWarning, stacklevel=3)


def _scipy_ks(a: np.ndarray, b: np.ndarray, method: str) -> tuple[float, float, str]:
    """``scipy.stats.ks_2samp`` plus which method it ended up using (read from its warnings)."""
    from scipy import stats

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = stats.ks_2samp(a, b, method=method)
    switched = [w for w in caught if "asymp" in str(w.message)]
    for w in switched:  # only the method switch; scipy's internal arithmetic warnings stay quiet
        warnings.warn(w.message, w.category, stacklevel=3)
    used = ("exact" if max(a.size, b.size) <= 10000 else "asymp") if method == "auto" else method
    if switched:
        used = "asymp"
    return float(res.statistic), float(res.pvalue), used


def ks_2samp(a: Any, b: Any, method: str = "auto", backend: str = "auto") -> KSResult:
    """Two-sided two-sample Kolmogorov-Smirnov test, equal to ``scipy.stats.ks_2samp``.

    ``method``: ``"exact"`` (the exact null distribution, for small samples), ``"asymp"``
    (``kstwo`` with n = round(n_a n_b / (n_a + n_b)), as scipy) or ``"auto"`` (scipy's rule: exact
    when max(n_a, n_b) <= 10000, else asymptotic). NaN values are dropped and counted in the
    result; ``ValueError`` if a sample is empty before or after that.
    """
    backend = _resolve(backend)
    code = _method_code(method)
    x = _as_sample(a, "a")
    y = _as_sample(b, "b")
    nan_x = np.isnan(x)
    nan_y = np.isnan(y)
    n_nan_x = int(nan_x.sum())
    n_nan_y = int(nan_y.sum())
    for name, size, n_nan in (("a", x.size, n_nan_x), ("b", y.size, n_nan_y)):
        if size == n_nan:
            extra = f" after dropping {n_nan} NaN value(s)" if n_nan else ""
            raise ValueError(f"ks_2samp: sample {name} is empty{extra}")
    x = x[~nan_x] if n_nan_x else x
    y = y[~nan_y] if n_nan_y else y
    if backend == "reference":
        d, p, used = _scipy_ks(x, y, method)
    else:
        from kernels.numba import drift as nbd

        x.sort()
        y.sort()
        d, p, used_code, warn = nbd.ks_2samp_sorted(x, y, code)
        _warn_fallback(warn, "ks_2samp")
        used = _USED[used_code]
    return KSResult(float(d), float(p), used, x.size, y.size, n_nan_x, n_nan_y)


def sort_columns(matrix: Any) -> np.ndarray:
    """Training-time KS reference: each feature's values sorted, NaN last, ``[features, rows]``."""
    X, col_major = _as_matrix(matrix, "matrix")
    out = np.array(X if col_major else X.T, dtype=np.float64, order="C", copy=True)
    out.sort(axis=1)
    return out


class KSReference:
    """Sorted reference columns plus the bucket index :func:`ks_matrix` derives from them.

    Build it once at training time (:meth:`fit`) and pass it to :func:`ks_matrix` instead of the
    bare array, so the index (quantile knots, lookup table and reference counts per bucket, ~0.2 MB per feature) is
    not rebuilt for every window. It keeps a reference to ``sorted_columns``: do not modify it.
    """

    def __init__(self, sorted_columns: Any) -> None:
        arr = np.asarray(sorted_columns)
        if arr.ndim != 2:
            raise ValueError(f"reference_sorted_columns must be 2-D (features, rows), got {arr.ndim}-D")
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"reference_sorted_columns must hold real numbers, got dtype {arr.dtype}")
        self.columns = np.ascontiguousarray(arr, dtype=np.float64)
        self._index: tuple | None = None

    @classmethod
    def fit(cls, reference_matrix: Any) -> KSReference:
        """Profile a reference matrix ``[rows, features]``."""
        return cls(sort_columns(reference_matrix))

    @property
    def n_features(self) -> int:
        return self.columns.shape[0]

    def index(self) -> tuple:
        """The numba bucket index (built on first use); raises if a column is not sorted."""
        if self._index is None:
            from kernels.numba import drift as nbd

            index = nbd.ks_index(self.columns)
            bad = np.flatnonzero(index[1])
            if bad.size:
                raise ValueError(
                    f"reference_sorted_columns rows {bad[:10].tolist()} are not sorted ascending with NaN last "
                    "(use sort_columns)"
                )
            self._index = index
        return self._index


def _n_chunks(n_rows: int) -> int:
    """Row blocks for the parallel passes: one per thread, fewer for small windows."""
    import numba

    return max(1, min(numba.get_num_threads(), n_rows // 4096))


def ks_matrix(
    reference_sorted_columns: np.ndarray | KSReference,
    current_matrix: Any,
    method: str = "auto",
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample KS of every feature: ``(statistics, pvalues)``, float64 ``[features]`` each.

    ``reference_sorted_columns`` is ``[features, rows]``, each row sorted ascending with NaN last
    (:func:`sort_columns`), or a :class:`KSReference`. ``current_matrix`` is ``[rows, features]``.
    Each column equals ``ks_2samp(reference column, current column, method)``; NaN values are
    dropped per column, and a column left without values on either side gets NaN results.
    With a bare array the numba bucket index is rebuilt on every call (~10 ms per 1M-row
    feature); serving code keeps a :class:`KSReference` from training time instead.
    """
    backend = _resolve(backend)
    code = _method_code(method)
    ref = reference_sorted_columns if isinstance(reference_sorted_columns, KSReference) else None
    columns = ref.columns if ref is not None else KSReference(reference_sorted_columns).columns
    X, col_major = _as_matrix(current_matrix, "current_matrix")
    n_rows, n_features = (X.shape[1], X.shape[0]) if col_major else X.shape
    if n_features != columns.shape[0]:
        raise ValueError(f"current_matrix has {n_features} features, the reference {columns.shape[0]}")
    if n_rows == 0:
        raise ValueError("ks_matrix: current_matrix has no rows")
    if columns.shape[1] == 0:
        raise ValueError("ks_matrix: the reference has no rows")
    if backend == "reference":
        return _ks_matrix_reference(columns, X if col_major else X.T, method)
    from kernels.numba import drift as nbd

    ref = ref if ref is not None else KSReference(columns)
    stat, pvalue, _used, warn, _n_ref, _n_cur = nbd.ks_columns(
        columns, ref.index(), X, col_major, code, _n_chunks(n_rows)
    )
    for w in np.unique(warn[warn > 0]):
        _warn_fallback(int(w), f"ks_matrix columns {np.flatnonzero(warn == w)[:10].tolist()}")
    return stat, pvalue


def _ks_matrix_reference(columns: np.ndarray, cols: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    if not np.all((columns[:, 1:] >= columns[:, :-1]) | np.isnan(columns[:, 1:])) or np.any(
        np.isnan(columns[:, :-1]) & ~np.isnan(columns[:, 1:])
    ):
        raise ValueError("reference_sorted_columns rows must be sorted ascending with NaN last (use sort_columns)")
    n_features = columns.shape[0]
    stat = np.full(n_features, np.nan)
    pvalue = np.full(n_features, np.nan)
    for j in range(n_features):
        r = columns[j][~np.isnan(columns[j])]
        c = cols[j][~np.isnan(cols[j])]
        if r.size and c.size:
            stat[j], pvalue[j], _ = _scipy_ks(r, c, method)
    return stat, pvalue
