"""Gold's batch rolling features (the compiled stream kernel fed in event-time order) against a
brute-force pandas as-of computation: for each row, the entity's rows strictly before it in
(event time, event id) order, the last ``window`` non-NaN values per feature. Point-in-time: no
value from a later timestamp may reach a row, whatever the input order."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.pipeline.gold import rolling_features
from tests.support.hypothesis_profiles import examples


def as_of_reference(entities, ts, ids, values, window: int, alpha: float) -> pd.DataFrame:
    """One row at a time, from a pandas frame sorted by (time, id); no shared state with the kernel."""
    df = pd.DataFrame({"entity": entities, "ts": ts, "id": ids}).reset_index(names="row")
    df = df.sort_values(["ts", "id"], kind="stable").reset_index(drop=True)
    nf = values.shape[1]
    out = np.full((len(df), 4 * nf), np.nan)
    for k, r in df.iterrows():
        earlier = df[(df["entity"] == r["entity"]) & (df.index < k)]  # sorted: before in (time, id) order
        for j in range(nf):
            x = values[r["row"], j]
            hist = [v for v in values[earlier["row"].to_numpy(), j] if not math.isnan(v)]
            prior = list(hist)
            ewma = None
            for v in prior:
                ewma = v if ewma is None else alpha * v + (1 - alpha) * ewma
            h = prior[-window:]
            mean = float(np.mean(h)) if h else math.nan
            std = float(np.std(h)) if h else math.nan
            if math.isnan(x):
                row = (mean, std, math.nan, math.nan if ewma is None else ewma)
            else:
                if not h:
                    mean, std, z = x, 0.0, 0.0
                else:
                    z = (x - mean) / std if std > 1e-12 else 0.0
                row = (mean, std, z, x if ewma is None else alpha * x + (1 - alpha) * ewma)
            for b, v in enumerate(row):
                out[k, b * nf + j] = v
    return pd.DataFrame(out, index=df["row"]).sort_index()


values_st = st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.just(float("nan")))


@st.composite
def events(draw):
    n = draw(st.integers(0, 40))
    nf = draw(st.integers(1, 3))
    entities = np.array(draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n)), dtype=object)
    ts = np.array(draw(st.lists(st.integers(0, 15), min_size=n, max_size=n)), dtype=np.int64)  # ties on purpose
    ids = np.array([f"e{i:03d}" for i in draw(st.permutations(range(n)))], dtype=object)
    vals = np.array(draw(st.lists(st.lists(values_st, min_size=nf, max_size=nf), min_size=n, max_size=n)),
                    dtype=np.float64).reshape(n, nf)
    return entities, ts, ids, vals, draw(st.integers(1, 5)), draw(st.sampled_from([0.1, 0.5, 1.0]))


@pytest.mark.parametrize("backend", ["numba", "reference"])
@settings(max_examples=examples(60))
@given(events())
def test_batch_features_equal_the_brute_force_as_of(backend, case):
    entities, ts, ids, vals, window, alpha = case
    order, feats = rolling_features(entities, ts, ids, vals, window, alpha, backend=backend)
    assert sorted(order.tolist()) == list(range(len(ts)))
    got = np.empty_like(feats)
    got[order] = feats  # back to input row order
    want = as_of_reference(entities, ts, ids, vals, window, alpha).to_numpy()
    assert got.shape == (len(ts), 4 * vals.shape[1])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_no_value_from_a_later_timestamp_reaches_a_row():
    """A huge value stamped later than every other event, given first: no earlier row sees it."""
    entities = np.array(["a"] * 4, dtype=object)
    ts = np.array([100, 1, 2, 3])
    ids = np.array(["z", "a", "b", "c"], dtype=object)
    vals = np.array([[1e6], [1.0], [2.0], [3.0]])
    order, feats = rolling_features(entities, ts, ids, vals, window=8, alpha=0.5)
    assert order.tolist() == [1, 2, 3, 0]
    assert feats[:3, 0].max() < 10 and feats[:3, 3].max() < 10  # means and EWMAs of rows before t=100
    assert feats[3, 0] == pytest.approx(2.0)  # the late-stamped row sees the three before it


def test_empty_and_single_row():
    order, feats = rolling_features(np.array([], dtype=object), np.array([], dtype=np.int64),
                                    np.array([], dtype=object), np.empty((0, 2)), 4, 0.1)
    assert order.shape == (0,) and feats.shape == (0, 8)
    order, feats = rolling_features(np.array(["a"], dtype=object), np.array([5]), np.array(["x"], dtype=object),
                                    np.array([[3.0, np.nan]]), 4, 0.1)
    np.testing.assert_array_equal(feats[0], [3.0, np.nan, 0.0, np.nan, 0.0, np.nan, 3.0, np.nan])
