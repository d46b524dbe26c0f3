"""Property tests: streaming features equal the deque oracle, across calls, splits and evictions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import stream_features as sf
from kernels.stream_features import StreamFeatureState, stream_features_reference
from tests.support.hypothesis_profiles import examples

BACKENDS = sf.available_backends()
SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = {"rtol": 1e-9, "atol": 1e-9, "equal_nan": True}


@st.composite
def streams(draw: st.DrawFn, max_rows: int = 40) -> dict:
    """Keys from a small alphabet (so entities repeat and evictions happen) and values with NaN."""
    n_features = draw(st.integers(1, 4))
    n = draw(st.integers(0, max_rows))
    alphabet = draw(st.lists(st.text(min_size=0, max_size=3), min_size=1, max_size=6, unique=True))
    keys = draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1.0, 1e-6, 1e6]))
    X = rng.normal(size=(n, n_features)) * scale + draw(st.sampled_from([0.0, 100.0]))
    if draw(st.booleans()):  # repeated values: zero std, the z = 0 branch
        X = np.round(X / scale) * scale
    if draw(st.booleans()):
        X[rng.random(X.shape) < draw(st.floats(0.05, 0.6))] = np.nan
    return {
        "keys": keys,
        "X": X,
        "window": draw(st.integers(1, 6)),
        "alpha": draw(st.floats(0.01, 1.0)),
        "max_entities": draw(st.integers(1, 7)),
    }


def fresh_state(case: dict) -> StreamFeatureState:
    return StreamFeatureState(
        case["X"].shape[1], window=case["window"], alpha=case["alpha"], max_entities=case["max_entities"]
    )


@SETTINGS
@given(case=streams())
def test_matches_oracle(case: dict) -> None:
    expected, _ = stream_features_reference(
        case["keys"], case["X"], case["window"], case["alpha"], case["max_entities"]
    )
    for backend in BACKENDS:
        got = fresh_state(case).transform(case["keys"], case["X"], backend=backend)
        assert got.shape == (len(case["keys"]), 4 * case["X"].shape[1]) and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, **TOL, err_msg=backend)


@SETTINGS
@given(case=streams(), data=st.data())
def test_split_batches_equal_one_batch(case: dict, data: st.DataObject) -> None:
    n = len(case["keys"])
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    bounds = [0, *cuts, n]
    for backend in BACKENDS:
        whole = fresh_state(case).transform(case["keys"], case["X"], backend=backend)
        state = fresh_state(case)
        parts = [state.transform(case["keys"][a:b], case["X"][a:b], backend=backend)
                 for a, b in itertools.pairwise(bounds)]
        np.testing.assert_array_equal(np.concatenate(parts), whole, err_msg=backend)


@SETTINGS
@given(case=streams(max_rows=20), data=st.data())
def test_state_carries_across_calls_and_implementations(case: dict, data: st.DataObject) -> None:
    """Later calls continue the same history, even when the implementation changes mid-stream."""
    second = data.draw(streams(max_rows=20).filter(lambda c: c["X"].shape[1] == case["X"].shape[1]))
    state = fresh_state(case)
    ref_state = None
    for i, batch in enumerate((case, second)):
        backend = BACKENDS[i % len(BACKENDS)]
        got = state.transform(batch["keys"], batch["X"], backend=backend)
        expected, ref_state = stream_features_reference(
            batch["keys"], batch["X"], case["window"], case["alpha"], case["max_entities"], ref_state
        )
        np.testing.assert_allclose(got, expected, **TOL, err_msg=backend)
    assert state.n_entities == len(ref_state.entities)


def test_semantics_by_hand() -> None:
    state = StreamFeatureState(1, window=2, alpha=0.5)
    out = state.transform(["a", "a", "a", "a", "b", "a"], np.array([[1.0], [3.0], [np.nan], [5.0], [7.0], [9.0]]))
    mean, std, z, ewma = out.T
    np.testing.assert_array_equal(mean, [1.0, 1.0, 2.0, 2.0, 7.0, 4.0])  # window 2: (3 + 5) / 2
    np.testing.assert_array_equal(std, [0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(z, [0.0, 0.0, np.nan, 3.0, 0.0, 5.0])
    np.testing.assert_array_equal(ewma, [1.0, 2.0, 2.0, 3.5, 7.0, 6.25])
    first_nan = StreamFeatureState(2).transform(["x"], np.array([[np.nan, 4.0]]))
    np.testing.assert_array_equal(first_nan, [[np.nan, 4.0, np.nan, 0.0, np.nan, 0.0, np.nan, 4.0]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_lru_eviction_starts_fresh(backend: str) -> None:
    state = StreamFeatureState(1, window=4, alpha=0.5, max_entities=2)
    state.transform(["a", "b", "a"], np.array([[1.0], [2.0], [3.0]]), backend=backend)
    assert state.n_entities == 2
    # "c" evicts "b" (least recently used); "b" then evicts "a" and starts over.
    out = state.transform(["c", "b", "a"], np.array([[10.0], [20.0], [30.0]]), backend=backend)
    np.testing.assert_array_equal(out[:, 0], [10.0, 20.0, 30.0])  # every one without history
    np.testing.assert_array_equal(out[:, 3], [10.0, 20.0, 30.0])
    assert state.n_entities == 2
    kept = state.transform(["a"], np.array([[40.0]]), backend=backend)
    assert kept[0, 0] == 30.0  # "a" kept its (new) history


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_and_empty_batch(backend: str) -> None:
    state = StreamFeatureState(3)
    empty = state.transform([], np.zeros((0, 3)), backend=backend)
    assert empty.shape == (0, 12) and empty.dtype == np.float64
    state.transform(["a"], np.ones((1, 3)), backend=backend)
    assert state.n_entities == 1
    state.reset()
    assert state.n_entities == 0
    out = state.transform(["a"], np.full((1, 3), 5.0), backend=backend)
    np.testing.assert_array_equal(out[0, :3], [5.0, 5.0, 5.0])  # no history after reset


def test_feature_names() -> None:
    assert StreamFeatureState.feature_names(["f1", "f2"]) == [
        "f1__mean",
        "f2__mean",
        "f1__std",
        "f2__std",
        "f1__z",
        "f2__z",
        "f1__ewma",
        "f2__ewma",
    ]


def test_invalid_inputs_rejected() -> None:
    state = StreamFeatureState(2)
    with pytest.raises(ValueError, match="2-D"):
        state.transform(["a", "b"], np.zeros(2))
    with pytest.raises(ValueError, match="3 features"):
        state.transform(["a"], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="2 keys for 3 rows"):
        state.transform(["a", "b"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="single string"):
        state.transform("ab", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="real numbers"):
        state.transform(["a"], np.array([["x", "y"]]))
    with pytest.raises(ValueError, match="unknown backend"):
        state.transform(["a"], np.zeros((1, 2)), backend="cuda")
    assert state.n_entities == 0  # nothing was recorded by the rejected calls
    for kwargs in ({"n_features": 0}, {"n_features": 2, "window": 0}, {"n_features": 2, "alpha": 0.0}):
        with pytest.raises(ValueError):
            StreamFeatureState(**kwargs)
    with pytest.raises(ValueError, match="max_entities"):
        StreamFeatureState(2, max_entities=0)


def test_large_max_entities_is_lazy() -> None:
    """The ring buffer for 100k entities is reserved, not touched: creating it is instant."""
    state = StreamFeatureState(9)
    assert state._buf.shape == (100_000, 32, 9)
    out = state.transform(["only"], np.ones((1, 9)))
    assert out.shape == (1, 36)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=streams(), data=st.data())
def test_rolled_back_updates_leave_no_trace(case: dict, data: st.DataObject) -> None:
    """Batches applied as pending updates, some rolled back, settled in any order: the state then
    equals a fresh one fed only the kept batches, in order (what a client's retry relies on)."""
    n = len(case["keys"])
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = list(itertools.pairwise([0, *cuts, n]))
    failed = data.draw(st.lists(st.booleans(), min_size=len(bounds), max_size=len(bounds)))
    plain = data.draw(st.lists(st.booleans(), min_size=len(bounds), max_size=len(bounds)))
    order = data.draw(st.permutations(range(len(bounds))))
    capacity = case["max_entities"]  # small: evictions happen, so recency must be restored exactly too
    state = StreamFeatureState(case["X"].shape[1], case["window"], case["alpha"], capacity)
    kept = StreamFeatureState(case["X"].shape[1], case["window"], case["alpha"], capacity)
    updates = {}
    for i, (a, b) in enumerate(bounds):
        if plain[i] and not failed[i]:  # a plain transform between pending ones is replayed too
            state.transform(case["keys"][a:b], case["X"][a:b])
        else:
            _, updates[i] = state.transform_pending(case["keys"][a:b], case["X"][a:b])
        if not failed[i]:
            kept.transform(case["keys"][a:b], case["X"][a:b])
    for i in order:
        if i in updates:
            updates[i].rollback() if failed[i] else updates[i].commit()
    assert state.pending_updates == 0 and not state._journal
    assert state.n_entities == kept.n_entities
    # new keys first: each evicts the least recently used entity, so a wrong recency order shows
    # when the old keys are probed after them (one key per call)
    for key in ["new-1", "new-2", *sorted(set(case["keys"]), key=repr)]:
        probe = np.full((1, case["X"].shape[1]), 3.0)
        np.testing.assert_array_equal(state.transform([key], probe), kept.transform([key], probe), err_msg=repr(key))


def test_rollback_restores_an_evicted_entity() -> None:
    state = StreamFeatureState(1, window=4, alpha=0.5, max_entities=2)
    state.transform(["a", "b"], np.array([[1.0], [2.0]]))
    _, update = state.transform_pending(["c"], np.array([[9.0]]))  # evicts "a"
    assert state.n_entities == 2
    update.rollback()
    update.rollback()  # settling twice is harmless
    out = state.transform(["a"], np.array([[3.0]]))
    np.testing.assert_array_equal(out, [[1.0, 0.0, 0.0, 2.0]])  # a's history (1.0) is back
