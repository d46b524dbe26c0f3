"""Property tests: every tree-ensemble implementation equals scikit-learn and the NumPy reference.

Forests are small (few, shallow trees) so that one example fits in milliseconds; hypothesis draws
the estimator settings, the training data (with NaN for both estimators) and the scored batches
(empty, single row, odd sizes, NaN, +-inf, values beyond float32, values on split thresholds).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import ExtraTreesClassifier, IsolationForest, RandomForestClassifier

from kernels import tree_ensemble as te
from kernels.tree_ensemble import FlatForest, compile_forest, score, score_reference
from tests.support.hypothesis_profiles import examples

BACKENDS = te.available_backends()
COMPILED = [name for name in BACKENDS if name != "reference"]
SETTINGS = settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def sklearn_score(model: object, X: np.ndarray) -> np.ndarray:
    if isinstance(model, IsolationForest):
        return model.decision_function(X)
    return model.predict_proba(X)[:, 1]


@st.composite
def training_data(draw: st.DrawFn, nan: bool) -> tuple[np.ndarray, np.random.Generator]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_samples = draw(st.integers(2, 60))
    n_features = draw(st.integers(1, 5))
    X = rng.normal(size=(n_samples, n_features)) * draw(st.sampled_from([1.0, 1e-3, 1e6]))
    if draw(st.booleans()):  # ties: few distinct values per feature
        X = np.round(X)
    if nan and draw(st.booleans()):
        X[rng.random(X.shape) < draw(st.floats(0.05, 0.5))] = np.nan
    return X, rng


@st.composite
def isolation_forests(draw: st.DrawFn) -> tuple[IsolationForest, np.ndarray]:
    X, _ = draw(training_data(nan=True))
    max_samples = draw(st.one_of(st.just("auto"), st.integers(1, X.shape[0]), st.floats(0.1, 1.0)))
    if isinstance(max_samples, float):
        assume(int(max_samples * X.shape[0]) >= 1)
    model = IsolationForest(
        n_estimators=draw(st.integers(1, 8)),
        max_samples=max_samples,
        max_features=draw(st.sampled_from([1.0, 0.5, 1])),
        contamination=draw(st.sampled_from(["auto", 0.1, 0.3])),
        bootstrap=draw(st.booleans()),
        random_state=draw(st.integers(0, 1000)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # max_samples > n_samples is clipped
        model.fit(X)
    return model, X


@st.composite
def random_forests(draw: st.DrawFn) -> tuple[RandomForestClassifier, np.ndarray]:
    X, rng = draw(training_data(nan=True))
    y = (rng.random(X.shape[0]) < draw(st.floats(0.1, 0.9))).astype(int)
    y[0], y[1] = 0, 1  # binary
    model = RandomForestClassifier(
        n_estimators=draw(st.integers(1, 6)),
        max_depth=draw(st.one_of(st.none(), st.integers(1, 6))),
        max_features=draw(st.sampled_from(["sqrt", 1.0, 0.5])),
        bootstrap=draw(st.booleans()),
        class_weight=draw(st.sampled_from([None, "balanced", "balanced_subsample"])),
        min_samples_leaf=draw(st.integers(1, 3)),
        random_state=draw(st.integers(0, 1000)),
        n_jobs=1,
    )
    model.fit(X, y)
    return model, X


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e39, -1e39, 3.4028234663852886e38, 1e-45]


@st.composite
def batches(draw: st.DrawFn, forest: FlatForest, X_train: np.ndarray, finite: bool) -> np.ndarray:
    """A batch drawn from training rows, split thresholds (and their neighbours) and specials."""
    n = draw(st.sampled_from([0, 1, 2, 3, 7, 16, 17, 33, 65, 130]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    nf = forest.n_features
    X = X_train[rng.integers(0, X_train.shape[0], size=n)].copy() if n else np.empty((0, nf))
    inner = forest.left != -1
    thresholds = forest.threshold[inner]
    if finite:  # splits on missing values have thresholds at or beyond float32's range
        thresholds = thresholds[np.abs(thresholds) < 3e38]
    if n and thresholds.size:
        mask = rng.random(X.shape) < 0.4
        picks = rng.choice(thresholds, size=X.shape)
        nudge = rng.integers(-1, 2, size=X.shape)
        as32 = picks.astype(np.float32)
        near = np.where(nudge == 0, as32, np.nextafter(as32, np.where(nudge > 0, np.inf, -np.inf)))
        X = np.where(mask, np.where(rng.random(X.shape) < 0.5, picks, near.astype(np.float64)), X)
    if n and draw(st.booleans()):
        specials = [v for v in SPECIAL if not finite or (np.isnan(v) or abs(v) < 3.5e38)]
        mask = rng.random(X.shape) < 0.3
        X = np.where(mask, rng.choice(specials, size=X.shape), X)
    return X


def check_all(model: object, forest: FlatForest, X: np.ndarray, compare_sklearn: bool) -> None:
    expected_ref = score_reference(forest, X)
    assert expected_ref.dtype == np.float64 and expected_ref.shape == (X.shape[0],)
    if compare_sklearn and X.shape[0]:
        np.testing.assert_allclose(expected_ref, sklearn_score(model, X), rtol=0, atol=1e-12)
    for backend in BACKENDS:
        got = score(forest, X, backend=backend)
        assert got.dtype == np.float64 and got.shape == (X.shape[0],), backend
        np.testing.assert_array_equal(got, expected_ref, err_msg=backend)
    np.testing.assert_array_equal(score(forest, X), expected_ref)


@SETTINGS
@given(data=st.data(), fitted=isolation_forests())
def test_isolation_forest_matches_sklearn(data: st.DataObject, fitted: tuple[IsolationForest, np.ndarray]) -> None:
    model, X_train = fitted
    forest = compile_forest(model)
    assert forest.kind == "isolation_forest" and forest.n_trees == len(model.estimators_)
    X = data.draw(batches(forest, X_train, finite=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow warning on 1e39 -> inf
        check_all(model, forest, X, compare_sklearn=True)


@SETTINGS
@given(data=st.data(), fitted=random_forests())
def test_random_forest_matches_sklearn(data: st.DataObject, fitted: tuple[RandomForestClassifier, np.ndarray]) -> None:
    model, X_train = fitted
    forest = compile_forest(model)
    assert forest.kind == "random_forest"
    # scikit-learn rejects +-inf (and values that overflow float32) for a random forest; the kernels
    # still define them (inf beyond every threshold), checked against the reference.
    finite = data.draw(st.booleans())
    X = data.draw(batches(forest, X_train, finite=finite))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check_all(model, forest, X, compare_sklearn=finite)


def relabel(forest: FlatForest, rng: np.random.Generator) -> FlatForest:
    """The same forest with nodes renumbered in a random topological order (parents first)."""
    n = forest.n_nodes
    parent = np.full(n, -1)
    inner = np.flatnonzero(forest.left != -1)
    parent[forest.left[inner]] = inner
    parent[forest.right[inner]] = inner
    ready, order = list(forest.roots), []
    while ready:
        node = ready.pop(int(rng.integers(len(ready))))
        order.append(node)
        if forest.left[node] != -1:
            ready += [forest.left[node], forest.right[node]]
    old = np.asarray(order)
    new_of_old = np.empty(n, dtype=np.int64)
    new_of_old[old] = np.arange(n)

    def remap(child: np.ndarray) -> np.ndarray:
        return np.where(child == -1, -1, new_of_old[np.maximum(child, 0)]).astype(np.int32)

    return FlatForest(
        feature=forest.feature[old],
        threshold=forest.threshold[old],
        left=remap(forest.left[old]),
        right=remap(forest.right[old]),
        missing_left=forest.missing_left[old],
        value=forest.value[old],
        roots=new_of_old[forest.roots].astype(np.int32),
        n_features=forest.n_features,
        kind=forest.kind,
        offset=forest.offset,
        denominator=forest.denominator,
    )


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), fitted=random_forests(), seed=st.integers(0, 2**32 - 1))
def test_any_node_numbering_scores_the_same(
    data: st.DataObject, fitted: tuple[RandomForestClassifier, np.ndarray], seed: int
) -> None:
    model, X_train = fitted
    forest = compile_forest(model)
    shuffled = relabel(forest, np.random.default_rng(seed))
    X = data.draw(batches(forest, X_train, finite=True))
    expected = score_reference(forest, X)
    np.testing.assert_array_equal(score_reference(shuffled, X), expected)
    for backend in BACKENDS:
        np.testing.assert_array_equal(score(shuffled, X, backend=backend), expected, err_msg=backend)


@pytest.fixture(scope="module")
def forests() -> dict[str, tuple[object, FlatForest, np.ndarray]]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    iforest = IsolationForest(n_estimators=20, random_state=0).fit(X)
    rf = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1).fit(X, y)
    return {"if": (iforest, compile_forest(iforest), X), "rf": (rf, compile_forest(rf), X)}


@pytest.mark.parametrize("kind", ["if", "rf"])
@pytest.mark.parametrize("n", [1, 31, 32, 200, 1000])
def test_threaded_batches_match(forests: dict, kind: str, n: int) -> None:
    """Batch sizes around the threading threshold, and odd chunk splits, give identical results."""
    model, forest, X = forests[kind]
    rows = np.resize(X, (n, X.shape[1]))
    expected = sklearn_score(model, rows)
    for backend in BACKENDS:
        np.testing.assert_allclose(score(forest, rows, backend=backend), expected, rtol=0, atol=1e-12, err_msg=backend)


def test_concurrent_callers_get_their_own_results(forests: dict) -> None:
    """Kernels release the GIL and share one thread pool; concurrent batches must not mix."""
    from concurrent.futures import ThreadPoolExecutor

    _, forest, X = forests["if"]
    rng = np.random.default_rng(3)
    batches = [np.ascontiguousarray(X[rng.integers(0, len(X), size=int(n))]) for n in rng.integers(1, 2000, 24)]
    for backend in COMPILED:
        expected = [score_reference(forest, b) for b in batches]
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda b, backend=backend: score(forest, b, backend=backend), batches))
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e, err_msg=backend)


@pytest.mark.parametrize("kind", ["if", "rf"])
def test_inputs_of_any_real_dtype_and_layout(forests: dict, kind: str) -> None:
    model, forest, X = forests[kind]
    X = np.nan_to_num(X[:9]) * 3
    expected = sklearn_score(model, X)
    for variant in (X, X.astype(np.float32), np.asfortranarray(X), X.tolist(), X.astype(np.int64), X > 0):
        want = sklearn_score(model, np.asarray(variant, dtype=np.float64))
        for backend in BACKENDS:
            np.testing.assert_allclose(score(forest, variant, backend=backend), want, rtol=0, atol=1e-12)
    wide = np.zeros((9, 2 * X.shape[1]), dtype=np.float32)
    wide[:, ::2] = X
    for backend in BACKENDS:  # a strided view
        np.testing.assert_allclose(score(forest, wide[:, ::2], backend=backend), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["if", "rf"])
def test_bad_inputs_rejected(forests: dict, kind: str) -> None:
    _, forest, X = forests[kind]
    for backend in BACKENDS:
        with pytest.raises(ValueError, match="2-D"):
            score(forest, X[0], backend=backend)
        with pytest.raises(ValueError, match="features"):
            score(forest, X[:, :2], backend=backend)
        with pytest.raises(ValueError, match="features"):
            score(forest, np.zeros((0, 7), np.float32), backend=backend)
        with pytest.raises(ValueError, match="real numbers"):
            score(forest, np.array([["a"] * X.shape[1]]), backend=backend)
        empty = score(forest, np.zeros((0, X.shape[1])), backend=backend)
        assert empty.dtype == np.float64 and empty.shape == (0,)


def test_unknown_and_unavailable_implementations_rejected(forests: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    _, forest, X = forests["rf"]
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        score(forest, X, backend="fortran")
    fresh = dataclasses.replace(forest)  # same arrays, empty kernel cache
    monkeypatch.setitem(te._available, "cpp", False)
    with pytest.raises(RuntimeError, match="'cpp' is not available"):
        score(fresh, X, backend="cpp")
    assert "cpp" not in te.available_backends()
    np.testing.assert_array_equal(score(fresh, X), score_reference(forest, X))  # auto skips it


def test_available_implementations_order() -> None:
    assert BACKENDS[-1] == "reference"
    assert [name for name in te.BACKENDS if name in BACKENDS] == BACKENDS


def test_compile_rejects_other_estimators() -> None:
    X = np.random.default_rng(0).normal(size=(30, 3))
    with pytest.raises(TypeError, match="ExtraTreesClassifier"):
        compile_forest(ExtraTreesClassifier(n_estimators=2).fit(X, X[:, 0] > 0))
    with pytest.raises(ValueError, match="binary"):
        compile_forest(RandomForestClassifier(n_estimators=2).fit(X, np.arange(30) % 3))
    with pytest.raises(TypeError):
        compile_forest(object())


@pytest.mark.parametrize("kind", ["if", "rf"])
def test_save_load_round_trip(forests: dict, kind: str, tmp_path: Path) -> None:
    model, forest, X = forests[kind]
    path = tmp_path / "forest.npz"
    forest.save(path)
    loaded = FlatForest.load(path)
    for name in te._ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(forest, name))
        assert getattr(loaded, name).dtype == getattr(forest, name).dtype
    assert (loaded.n_features, loaded.kind, loaded.offset, loaded.denominator) == (
        forest.n_features,
        forest.kind,
        forest.offset,
        forest.denominator,
    )
    for backend in BACKENDS:
        np.testing.assert_allclose(score(loaded, X, backend=backend), sklearn_score(model, X), rtol=0, atol=1e-12)


def _write(path: Path, forest: FlatForest, **override: object) -> None:
    data: dict[str, object] = {name: getattr(forest, name) for name in te._ARRAY_FIELDS}
    data.update(
        n_features=np.int64(forest.n_features),
        kind=np.str_(forest.kind),
        offset=np.float64(forest.offset),
        denominator=np.float64(forest.denominator),
        format_version=np.int64(1),
    )
    for key, value in override.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    np.savez(path, **data)


def _corruptions(forest: FlatForest) -> dict[str, tuple[dict[str, object], str]]:
    inner = int(np.flatnonzero(forest.left != -1)[0])
    leaf = int(np.flatnonzero(forest.left == -1)[0])

    def with_(name: str, index: int, value: object) -> np.ndarray:
        arr = getattr(forest, name).copy()
        arr[index] = value
        return arr

    return {
        "missing field": ({"value": None}, "lacks value"),
        "wrong dtype": ({"left": forest.left.astype(np.int64)}, "dtype"),
        "short array": ({"threshold": forest.threshold[:-1]}, "entries"),
        "2-D array": ({"value": forest.value[:, None]}, "1-D"),
        "child out of range": ({"left": with_("left", inner, forest.n_nodes + 5)}, "child"),
        "cycle": ({"right": with_("right", inner, inner)}, "larger"),
        "shared child": ({"right": with_("right", inner, forest.left[inner])}, "reachable twice"),
        "half leaf": ({"left": with_("left", leaf, leaf + 1 if leaf + 1 < forest.n_nodes else 0)}, "one child"),
        "feature out of range": ({"feature": with_("feature", inner, forest.n_features)}, "split features"),
        "negative root": ({"roots": with_("roots", 0, -1)}, "root"),
        "no trees": ({"roots": np.zeros(0, np.int32)}, "no trees"),
        "nan threshold": ({"threshold": with_("threshold", inner, np.nan)}, "NaN"),
        "inf leaf value": ({"value": with_("value", leaf, np.inf)}, "finite"),
        "bad missing flag": ({"missing_left": with_("missing_left", inner, 2)}, "missing_left"),
        "bad kind": ({"kind": np.str_("gbdt")}, "kind"),
        "bad scalar": ({"n_features": np.arange(3)}, "scalar"),
        "zero features": ({"n_features": np.int64(0)}, "n_features"),
        "negative denominator": ({"denominator": np.float64(-1.0)}, "denominator"),
        "object array": ({"value": np.array([None] * forest.n_nodes, dtype=object)}, "non-plain|pickle|dtype"),
        "future version": ({"format_version": np.int64(99)}, "format_version"),
    }


@pytest.mark.parametrize("kind", ["if", "rf"])
def test_malformed_files_rejected(forests: dict, kind: str, tmp_path: Path) -> None:
    _, forest, _ = forests[kind]
    for name, (override, message) in _corruptions(forest).items():
        path = tmp_path / f"{name.replace(' ', '_')}.npz"
        _write(path, forest, **override)
        with pytest.raises(ValueError, match=message):
            FlatForest.load(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=r"cannot read|not a plain"):
        FlatForest.load(garbage)
    truncated = tmp_path / "truncated.npz"
    forest.save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ValueError):
        FlatForest.load(truncated)
    single = tmp_path / "single.npy"
    np.save(single, forest.value)
    with pytest.raises(ValueError, match="single array"):
        FlatForest.load(single)


def test_single_leaf_isolation_forest() -> None:
    """max_samples=1 gives one-leaf trees and a zero denominator; scikit-learn then scores 0.5."""
    X = np.random.default_rng(0).normal(size=(20, 2))
    model = IsolationForest(n_estimators=3, max_samples=1, random_state=0).fit(X)
    forest = compile_forest(model)
    assert forest.denominator == 0.0
    for backend in BACKENDS:
        np.testing.assert_array_equal(score(forest, X, backend=backend), model.decision_function(X))


@pytest.mark.parametrize("backend", COMPILED)
def test_thresholds_beyond_float32_range(backend: str) -> None:
    """Hand-built splits at +-inf and beyond float32 keep scikit-learn's comparison semantics."""
    f32max = float(np.finfo(np.float32).max)
    cases = [np.inf, -np.inf, 1e300, -1e300, f32max, -f32max, 0.0]
    for thr in cases:
        for missing_left in (0, 1):
            forest = FlatForest(
                feature=np.array([0, -1, -1], np.int32),
                threshold=np.array([thr, -2.0, -2.0]),
                left=np.array([1, -1, -1], np.int32),
                right=np.array([2, -1, -1], np.int32),
                missing_left=np.array([missing_left, 0, 0], np.uint8),
                value=np.array([0.0, 0.25, 0.75]),
                roots=np.array([0], np.int32),
                n_features=1,
                kind="random_forest",
                offset=0.0,
                denominator=1.0,
            )
            X = np.array([[np.nan], [np.inf], [-np.inf], [f32max], [-f32max], [0.0], [1.0], [-1.0]])
            with np.errstate(invalid="ignore"):
                expected = np.where(
                    np.isnan(X[:, 0]), 0.25 if missing_left else 0.75, np.where(X[:, 0] <= thr, 0.25, 0.75)
                )
            np.testing.assert_array_equal(score_reference(forest, X), expected)
            np.testing.assert_array_equal(score(forest, X, backend=backend), expected, err_msg=f"thr={thr}")
