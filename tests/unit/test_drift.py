"""Drift kernels: KS equals scipy (exact and asymptotic), PSI equals a plain NumPy computation.

scipy is the oracle for KS because our implementation ports its algorithms; PSI is checked
against an independent NumPy formulation written here (np.quantile + np.digitize), not against
the module's own reference path.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from kernels import drift
from kernels.drift import KSReference, ks_2samp, ks_matrix, psi, psi_bin_counts, psi_bin_edges, psi_categorical
from tests.support.hypothesis_profiles import examples

BACKENDS = drift.available_backends()
SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
P_TOL = 1e-9  # absolute, on p-values (our bar; observed differences are ~1e-15)
D_TOL = 1e-12  # statistics are computed exactly; allow only float noise


def scipy_ks(a: np.ndarray, b: np.ndarray, method: str) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ks_2samp(a, b, method=method)
    return float(res.statistic), float(res.pvalue)


def assert_ks_equal(got: tuple[float, float], expected: tuple[float, float], msg: str = "") -> None:
    (d, p), (de, pe) = got, expected
    assert abs(d - de) <= D_TOL, f"statistic {d!r} != scipy {de!r} {msg}"
    if np.isnan(pe):
        assert np.isnan(p), f"p-value {p!r}, scipy NaN {msg}"
    else:
        assert abs(p - pe) <= P_TOL, f"p-value {p!r} != scipy {pe!r} (diff {p - pe:.3g}) {msg}"


@st.composite
def samples(draw: st.DrawFn, max_size: int = 60) -> np.ndarray:
    """Floats, small integers (many ties), or a constant; sizes from 1."""
    n = draw(st.integers(1, max_size))
    kind = draw(st.sampled_from(["normal", "ties", "constant", "scaled"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "normal":
        return rng.normal(draw(st.floats(-1, 1)), 1.0, n)
    if kind == "ties":
        return rng.integers(0, draw(st.integers(1, 6)), n).astype(np.float64)
    if kind == "constant":
        return np.full(n, draw(st.sampled_from([0.0, -0.0, 3.5])))
    return rng.standard_cauchy(n) * 1e6


# ------------------------------------------------------------------------------------------------
# KS: the distributions against scipy
# ------------------------------------------------------------------------------------------------


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
def test_kstwo_sf_matches_scipy_on_every_branch() -> None:
    """Every branch of scipy's _kolmogn: Ruben-Gambino, DMTW, Pomeranz, Pelz-Good, 2 x Smirnov."""
    from kernels.numba.drift import kstwo_sf

    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 7, 20, 50, 140, 141, 400, 5000, 60000, 100000, 100001, 400000, 1200000]:
        scale = 1.0 / np.sqrt(n)
        xs = np.concatenate(
            [
                [0.5 / n, 0.75 / n, 1.0 / n, 1.5 / n, 0.5, 0.7, 1 - 1.0 / n, 1.0, 0.0],
                [0.9 * (1.4 / n) ** (2 / 3)],  # large n, small x: the Durbin matrix grows to ~100 x 100
                scale * np.array([0.3, 0.6, 0.85, 1.2, 1.6, 2.0, 3.0, 4.5, 8.0, 20.0]),
                rng.uniform(0, 4 * scale, 4),
            ]
        )
        for x in xs[(xs >= 0) & (xs <= 1)]:
            expected = float(stats.kstwo.sf(x, n))
            got = kstwo_sf(float(x), float(n))
            assert abs(got - expected) <= P_TOL, (n, x, got, expected)
    assert np.isnan(kstwo_sf(0.5, 0.0))  # scipy: n must be >= 1 (ks_2samp's n1 = n2 = 1 case)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(a=samples(), b=samples())
def test_exact_matches_scipy(backend: str, a: np.ndarray, b: np.ndarray) -> None:
    for method in ("exact", "auto"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = ks_2samp(a, b, method=method, backend=backend)
        switched = any("asymp" in str(w.message) for w in caught)  # see test_exact_fallback_like_scipy
        assert res.method == ("asymp" if switched else "exact")
        assert_ks_equal((res.statistic, res.pvalue), scipy_ks(a, b, method), f"{method} n={a.size},{b.size}")


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(a=samples(max_size=3000), b=samples(max_size=3000))
def test_asymp_matches_scipy(backend: str, a: np.ndarray, b: np.ndarray) -> None:
    res = ks_2samp(a, b, method="asymp", backend=backend)
    assert res.method == "asymp"
    assert_ks_equal((res.statistic, res.pvalue), scipy_ks(a, b, "asymp"), f"n={a.size},{b.size}")


@pytest.mark.parametrize(("n1", "n2", "method", "used"), [
    (10000, 37, "auto", "exact"),  # scipy's rule: exact while max(n1, n2) <= 10000
    (10001, 37, "auto", "asymp"),
    (400, 400, "exact", "exact"),
    (50000, 49999, "exact", "asymp"),  # lcm beyond int32: scipy warns and switches
])  # fmt: skip
def test_method_choice_mirrors_scipy(n1: int, n2: int, method: str, used: str) -> None:
    rng = np.random.default_rng(n1 + n2)
    a = rng.normal(size=n1)
    b = rng.normal(0.3, 1.0, size=n2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ks_2samp(a, b, method=method)
    assert res.method == used
    assert any("asymp" in str(w.message) for w in caught) == (method == "exact" and used == "asymp")
    assert_ks_equal((res.statistic, res.pvalue), scipy_ks(a, b, method))


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_fallback_like_scipy(backend: str) -> None:
    """Equal sizes, D = 1/n: scipy's exact p-value comes out as 1 + 1 ulp, so it warns and uses asymp."""
    a, b = np.array([1.0, 2, 3, 4, 5]), np.array([1.0, 2, 3, 4, 6])
    with pytest.warns(RuntimeWarning, match="asymp"):
        res = ks_2samp(a, b, method="exact", backend=backend)
    assert res.method == "asymp"
    assert_ks_equal((res.statistic, res.pvalue), scipy_ks(a, b, "exact"))
    assert res.statistic == 0.2  # h / lcm, as scipy reports it after trying the exact path


def test_large_samples_match_scipy() -> None:
    """n ~ 1e5: the DMTW, Pelz-Good and Smirnov regimes of the asymptotic p-value."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=120000)
    for shift, size in [(0.0, 90000), (0.02, 120000), (0.012, 120000), (0.3, 80000), (0.0, 700)]:
        b = rng.normal(shift, 1.0, size=size)
        res = ks_2samp(a, b)
        assert res.method == "asymp"
        assert_ks_equal((res.statistic, res.pvalue), scipy_ks(a, b, "asymp"), f"shift={shift}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_dropped_and_counted(backend: str) -> None:
    a = np.array([0.1, np.nan, 0.4, 0.35, np.nan, 0.9])
    b = np.array([0.2, 0.3, np.nan, 0.8])
    res = ks_2samp(a, b, backend=backend)
    assert (res.n_a, res.n_b, res.nan_a, res.nan_b) == (4, 3, 2, 1)
    assert_ks_equal((res.statistic, res.pvalue), scipy_ks(a[~np.isnan(a)], b[~np.isnan(b)], "auto"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_samples_raise(backend: str) -> None:
    with pytest.raises(ValueError, match="sample a is empty"):
        ks_2samp([], [1.0], backend=backend)
    with pytest.raises(ValueError, match="sample b is empty after dropping 2 NaN"):
        ks_2samp([1.0], [np.nan, np.nan], backend=backend)
    with pytest.raises(ValueError, match="1-D"):
        ks_2samp([[1.0]], [1.0], backend=backend)
    with pytest.raises(ValueError, match="unknown method"):
        ks_2samp([1.0], [1.0], method="fast", backend=backend)


def test_by_hand() -> None:
    res = ks_2samp([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (res.statistic, res.pvalue) == (0.0, 1.0)
    res = ks_2samp([0.0, 1.0], [5.0, 6.0, 7.0])
    assert res.statistic == 1.0 and abs(res.pvalue - 0.2) < 1e-15  # 2 / C(5, 2)
    res = ks_2samp([-0.0], [0.0])  # signed zeros are equal values
    assert res.statistic == 0.0


# ------------------------------------------------------------------------------------------------
# KS over many columns
# ------------------------------------------------------------------------------------------------


@st.composite
def matrices(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n_ref = draw(st.integers(1, 400))
    n_cur = draw(st.integers(1, 400))
    n_features = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ref = rng.normal(size=(n_ref, n_features))
    cur = rng.normal(draw(st.sampled_from([0.0, 0.2, 5.0])), 1.0, size=(n_cur, n_features))
    if draw(st.booleans()):  # ties across the samples
        ref, cur = np.round(ref * 2), np.round(cur * 2)
    if draw(st.booleans()):
        ref[:, 0] = 1.0
        cur[:, 0] = draw(st.sampled_from([1.0, 2.0]))
    for m in (ref, cur):
        if draw(st.booleans()):
            m[rng.random(m.shape) < draw(st.floats(0.0, 0.5))] = np.nan
    return ref, cur


def columns_one_by_one(ref: np.ndarray, cur: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """ks_2samp per column; NaN where a side has no values left (ks_matrix's documented rule)."""
    out = np.full((2, ref.shape[1]), np.nan)
    for j in range(ref.shape[1]):
        r, c = ref[:, j], cur[:, j]
        r, c = r[~np.isnan(r)], c[~np.isnan(c)]
        if r.size and c.size:
            out[:, j] = scipy_ks(r, c, method)
    return out[0], out[1]


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(case=matrices(), method=st.sampled_from(["auto", "asymp"]), layout=st.sampled_from(["C", "F", "f32"]))
def test_ks_matrix_equals_columns(backend: str, case: tuple[np.ndarray, np.ndarray], method: str, layout: str) -> None:
    ref, cur = case
    x = {"C": cur, "F": np.asfortranarray(cur), "f32": cur.astype(np.float32)}[layout]
    stat, pvalue = ks_matrix(drift.sort_columns(ref), x, method=method, backend=backend)
    d_exp, p_exp = columns_one_by_one(ref, x.astype(np.float64), method)
    np.testing.assert_allclose(stat, d_exp, rtol=0, atol=D_TOL, equal_nan=True)
    np.testing.assert_allclose(pvalue, p_exp, rtol=0, atol=P_TOL, equal_nan=True)


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
@pytest.mark.parametrize("kind", ["normal", "lognormal", "cauchy", "poisson", "spike", "tiny", "infs", "separated"])
def test_ks_matrix_bucket_refinement_on_many_shapes(kind: str) -> None:
    """Large enough for the bucketed statistic to open buckets; shapes that stress its bucket function."""
    rng = np.random.default_rng(len(kind))
    n = 60000

    def draw(shift: float) -> np.ndarray:
        if kind == "normal":
            return rng.normal(shift, 1.0, n)
        if kind == "lognormal":
            return rng.lognormal(shift, 2.0, n)
        if kind == "cauchy":
            return rng.standard_cauchy(n) + shift
        if kind == "poisson":
            return rng.poisson(3 + 10 * shift, n).astype(np.float64)
        if kind == "spike":  # 30 % at one value, the rest far away
            return np.where(rng.random(n) < 0.3, 0.0, rng.normal(1e6 + shift, 1.0, n))
        if kind == "tiny":
            return rng.normal(shift, 1.0, n) * 1e-300
        if kind == "infs":
            x = rng.normal(shift, 1.0, n)
            x[rng.random(n) < 0.02] = np.inf
            x[rng.random(n) < 0.02] = -np.inf
            x[rng.random(n) < 0.02] = -0.0
            return x
        return rng.normal(0.0, 1.0, n) + (1e3 if shift else 0.0)

    ref = np.stack([draw(0.0), draw(0.0)], axis=1)
    cur = np.stack([draw(0.0), draw(0.05)], axis=1)
    profile = KSReference.fit(ref)
    stat, pvalue = ks_matrix(profile, cur)
    d_exp, p_exp = columns_one_by_one(ref, cur, "auto")
    np.testing.assert_allclose(stat, d_exp, rtol=0, atol=D_TOL)
    np.testing.assert_allclose(pvalue, p_exp, rtol=0, atol=P_TOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ks_matrix_nan_columns_and_errors(backend: str) -> None:
    ref = drift.sort_columns(np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]]))
    stat, pvalue = ks_matrix(ref, np.array([[1.5, 1.0], [np.nan, 2.0]]), backend=backend)
    assert_ks_equal((stat[0], pvalue[0]), scipy_ks(np.array([1.0, 2.0, 3.0]), np.array([1.5]), "auto"))
    assert np.isnan(stat[1]) and np.isnan(pvalue[1])  # no reference values left
    with pytest.raises(ValueError, match="no rows"):
        ks_matrix(ref, np.empty((0, 2)), backend=backend)
    with pytest.raises(ValueError, match="features"):
        ks_matrix(ref, np.ones((3, 3)), backend=backend)
    with pytest.raises(ValueError, match="sorted"):
        ks_matrix(np.array([[2.0, 1.0]]), np.ones((2, 1)), backend=backend)
    with pytest.raises(ValueError, match="sorted"):
        ks_matrix(np.array([[1.0, np.nan, 2.0]]), np.ones((2, 1)), backend=backend)


# ------------------------------------------------------------------------------------------------
# PSI
# ------------------------------------------------------------------------------------------------


def numpy_psi(ref_col: np.ndarray, cur_col: np.ndarray, n_bins: int, eps: float) -> float:
    """The documented definition written independently: quantile edges, digitize, NaN bin, eps."""
    finite = ref_col[np.isfinite(ref_col)]
    inner = np.unique(np.quantile(finite, np.arange(1, n_bins) / n_bins)) if finite.size else np.array([])

    def props(x: np.ndarray) -> np.ndarray:
        nan = np.isnan(x)
        counts = np.bincount(np.digitize(x[~nan], inner), minlength=inner.size + 1)
        counts = np.append(counts, nan.sum()).astype(float)
        p = counts / counts.sum()
        return np.where(counts == 0, eps, p)

    r, c = props(ref_col), props(cur_col)
    return float(np.sum((c - r) * np.log(c / r)))


@st.composite
def psi_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_features = draw(st.integers(1, 4))
    ref = rng.normal(size=(draw(st.integers(1, 300)), n_features))
    cur = rng.normal(draw(st.floats(-1, 1)), 1.0, size=(draw(st.integers(1, 300)), n_features))
    if draw(st.booleans()):
        ref, cur = np.round(ref), np.round(cur)  # ties: deduplicated edges, empty bins
    for m in (ref, cur):
        if draw(st.booleans()):
            m[rng.random(m.shape) < draw(st.floats(0.0, 1.0))] = np.nan
    return ref, cur, draw(st.sampled_from([1, 2, 5, 10, 40]))  # 40: > 32 edges, the binary-search path


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(case=psi_cases(), fortran=st.booleans())
def test_psi_matrix_equals_numpy(backend: str, case: tuple[np.ndarray, np.ndarray, int], fortran: bool) -> None:
    ref, cur, n_bins = case
    edges, counts = drift.psi_fit(ref, n_bins)
    x = np.asfortranarray(cur) if fortran else cur
    got = drift.psi_matrix(edges, counts, x, eps=1e-4, backend=backend)
    expected = [numpy_psi(ref[:, j], cur[:, j], n_bins, 1e-4) for j in range(ref.shape[1])]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_bin_edges_and_counts() -> None:
    edges = psi_bin_edges([5.0, 1.0, 1.0, 1.0, 2.0, np.nan, np.inf], n_bins=4)
    assert edges[0] == -np.inf and edges[-1] == np.inf and np.all(np.diff(edges) > 0)
    np.testing.assert_array_equal(edges, [-np.inf, 1.0, 2.0, np.inf])  # q(.25) = q(.5) = 1 deduplicated
    # [-inf, 1) [1, 2) [2, inf], then NaN; +-inf land in the outer bins
    np.testing.assert_array_equal(psi_bin_counts([-np.inf, 0.0, 1.0, 1.4, 1.5, np.inf, np.nan], edges), [2, 3, 1, 1])
    np.testing.assert_array_equal(psi_bin_edges([np.nan, np.nan]), [-np.inf, np.inf])
    np.testing.assert_array_equal(psi_bin_edges([7.0]), [-np.inf, 7.0, np.inf])


def test_psi_definition() -> None:
    assert psi([10, 0, 5], [10, 0, 5]) == 0.0  # bins empty on both sides contribute 0
    r, c, eps = np.array([50, 50, 0]), np.array([40, 50, 10]), 1e-4
    expected = (0.4 - 0.5) * np.log(0.4 / 0.5) + (0.1 - eps) * np.log(0.1 / eps)
    assert psi(r, c, eps) == pytest.approx(expected, rel=1e-12)
    assert psi([1], [3]) == 0.0  # single element, single bin
    with pytest.raises(ValueError, match="empty"):
        psi([0, 0], [1, 2])
    with pytest.raises(ValueError, match="equally long"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="eps"):
        psi([1], [1], eps=0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_psi_identical_small_and_shift_large(backend: str) -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(50000, 3))
    edges, counts = drift.psi_fit(ref)
    same = drift.psi_matrix(edges, counts, ref, backend=backend)
    np.testing.assert_allclose(same, 0.0, atol=1e-12)
    resampled = ref[rng.integers(0, ref.shape[0], ref.shape[0])]
    assert np.all(drift.psi_matrix(edges, counts, resampled, backend=backend) < 0.01)
    shifted = resampled + np.array([0.0, 0.25, 1.0])  # none, moderate (0.1-0.25), significant
    got = drift.psi_matrix(edges, counts, shifted, backend=backend)
    assert got[0] < 0.01 and 0.01 < got[1] < 0.25 and got[2] > 0.25
    missing = resampled.copy()
    missing[: missing.shape[0] // 2, 0] = np.nan  # half the values go missing in production
    assert drift.psi_matrix(edges, counts, missing, backend=backend)[0] > 0.25


def test_psi_matrix_errors() -> None:
    edges, counts = drift.psi_fit(np.arange(10.0)[:, None], 4)
    with pytest.raises(ValueError, match="features"):
        drift.psi_matrix(edges, counts, np.ones((3, 2)))
    with pytest.raises(ValueError, match="no rows"):
        drift.psi_matrix(edges, counts, np.ones((0, 1)))
    with pytest.raises(ValueError, match="entries"):
        drift.psi_matrix(edges, [counts[0][:-1]], np.ones((3, 1)))
    with pytest.raises(ValueError, match="-inf"):
        drift.psi_matrix([np.array([0.0, 1.0])], [np.array([1, 1])], np.ones((3, 1)))


def test_psi_categorical() -> None:
    ref = np.array(["a", "b", "b", "c"] * 250)
    assert psi_categorical(ref, ref) == 0.0
    assert psi_categorical(ref, np.array(["a", "b", "b", "c"] * 25)) == 0.0
    new = np.concatenate([ref[:95], ["z"] * 5])  # 5 % of a never-seen category: 0.05 * ln(0.05 / eps) alone
    assert psi_categorical(ref, new) > 0.25
    eps = 1e-4
    assert psi_categorical(["a", "a"], ["a", "z"], eps) == pytest.approx(
        (0.5 - 1.0) * np.log(0.5) + (0.5 - eps) * np.log(0.5 / eps), rel=1e-12
    )
    # missing values (None / NaN) have their own bucket; numbers and mixed objects work too
    assert psi_categorical([1, 2, 2], [1.0, 2.0, 2.0]) == 0.0
    assert psi_categorical(np.array(["x", None], dtype=object), np.array([None, float("nan")], dtype=object)) > 0.25
    assert psi_categorical([1.0, np.nan], [1.0, np.nan]) == 0.0
    with pytest.raises(ValueError, match="empty"):
        psi_categorical([], ["a"])
