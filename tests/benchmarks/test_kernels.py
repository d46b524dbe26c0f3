"""pytest-benchmark: each compiled kernel family against its reference implementation, same inputs.

``make test`` runs these once each as a smoke test (``--benchmark-disable``: results are still
checked against the reference); ``make bench-kernels`` times them (``--benchmark-enable``) and writes
bench/results/kernels_pytest.json. Groups are kernel families; within a group, compare rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernels import drift
from kernels import stream_features as sf
from kernels import tree_ensemble as te
from tests.support import compiled

pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def forest_and_batch():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 9))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=4000) > 0).astype(int)
    rf = RandomForestClassifier(n_estimators=50, max_depth=12, random_state=0, n_jobs=1).fit(X, y)
    return te.compile_forest(rf), rng.normal(size=(4096, 9))


@pytest.mark.parametrize("backend", te.available_backends())
def test_tree_ensemble(benchmark, forest_and_batch, backend):
    forest, X = forest_and_batch
    benchmark.group = "tree ensemble: 50 trees, 4096 rows"
    got = benchmark(te.score, forest, X, backend)
    np.testing.assert_allclose(got, te.score_reference(forest, X), rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def stream_events():
    rng = np.random.default_rng(2)
    keys = [f"e{k}" for k in rng.integers(0, 200, 2048)]
    return keys, rng.normal(size=(2048, 9))


@pytest.mark.parametrize("backend", sf.available_backends())
def test_stream_features(benchmark, stream_events, backend):
    """A fresh state per round, so every round does the same work (2,048 events, 200 entities)."""
    keys, X = stream_events
    benchmark.group = "stream features: 2048 events, 200 entities, window 32"
    got = benchmark(lambda: sf.StreamFeatureState(9, window=32, alpha=0.1).transform(keys, X, backend))
    want, _ = sf.stream_features_reference(keys, X, window=32, alpha=0.1)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)


@pytest.fixture(scope="module")
def drift_data():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(100_000, 20))
    current = reference[rng.integers(0, len(reference), len(reference))] + 0.05
    edges, counts = drift.psi_fit(reference)
    return reference, current, edges, counts, drift.KSReference.fit(reference)


@pytest.mark.parametrize("backend", drift.available_backends())
def test_drift_psi(benchmark, drift_data, backend):
    _, current, edges, counts, _ = drift_data
    benchmark.group = "drift PSI: 100k x 20"
    got = benchmark(drift.psi_matrix, edges, counts, current, backend=backend)
    np.testing.assert_allclose(got, drift.psi_matrix(edges, counts, current, backend="reference"), rtol=1e-9)


@pytest.mark.parametrize("backend", drift.available_backends())
def test_drift_ks(benchmark, drift_data, backend):
    _, current, _, _, ks_ref = drift_data
    benchmark.group = "drift KS: 100k x 20"
    stat, _ = benchmark(drift.ks_matrix, ks_ref, current, backend=backend)
    want, _ = drift.ks_matrix(ks_ref, current, backend="reference")
    np.testing.assert_allclose(stat, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rows", [1, 64])
@pytest.mark.parametrize("impl", ["ours q8 (C++)", "reference (dequantize + torch fp32)"])
def test_llm_q8_matmul(benchmark, rows, impl):
    from kernels import llm_step
    from kernels.quant_reference import dequantize_int8_tensors, quantize_int8_tensors

    compiled.require("kernels.cpp._llm_step")
    torch.manual_seed(0)
    w = torch.randn(1536, 576)
    q, d = quantize_int8_tensors(w)
    x = torch.randn(rows, 576)
    reference = x @ dequantize_int8_tensors(q, d).T
    benchmark.group = f"LLM Q8_0 matmul: [{rows}, 576] x [576, 1536]"
    if impl.startswith("ours"):
        packed = llm_step.pack_q8(q, d)
        got = benchmark(packed, x)
        torch.testing.assert_close(got, reference, rtol=0.02, atol=0.05 * float(reference.abs().mean()))
    else:
        w_deq = dequantize_int8_tensors(q, d)
        got = benchmark(lambda: x @ w_deq.T)
        torch.testing.assert_close(got, reference)


@pytest.mark.parametrize("impl", ["ours int8 (Q8Linear)", "reference (torch fp32 Linear)"])
def test_embedder_linear(benchmark, impl):
    from server.rag.embedder import Q8Linear

    compiled.require("kernels.cpp._llm_step")
    torch.manual_seed(0)
    lin = torch.nn.Linear(384, 1152)
    x = torch.randn(1, 12, 384)  # one query of 12 tokens: where the int8 path is used
    benchmark.group = "embedder linear: [12, 384] x [384, 1152]"
    with torch.inference_mode():
        want = lin(x)
        layer = Q8Linear(lin) if impl.startswith("ours") else lin
        got = benchmark(layer, x)
    cos = torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0)
    assert float(cos) > 0.999
