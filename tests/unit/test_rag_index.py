"""The vector index: filtered top-k equals brute force (flat and HNSW, any selectivity), HNSW recall
is measured at build time, the store round-trips (a writer killed mid-save:
tests/integration/test_rag_store_crash.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.rag.filters import ChunkFilter, MetadataColumns, Range
from server.rag.store import Chunk, DocumentRecord, RetrievalStore
from server.rag.vector_index import VectorIndex, exact_topk
from tests.support.hypothesis_profiles import examples

DIM = 32


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    vectors = _unit(rng, 3000)
    return {
        "vectors": vectors,
        "flat": VectorIndex.build(vectors),
        "hnsw": VectorIndex.build(vectors, flat_below=1000, target_recall=0.95),
        "ivf": VectorIndex.build(vectors, flat_below=1000, target_recall=0.95, ivf_above=2000),
        "queries": _unit(rng, 16),
    }


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_recall_is_measured_at_build(data, kind, tmp_path):
    stats = data[kind].stats
    assert stats.kind == kind and stats.recall_at_10 >= 0.95
    assert (stats.ef_search if kind == "hnsw" else stats.nprobe) > 0
    _, truth = exact_topk(data["vectors"], data["queries"], 10)
    _, got = data[kind].search(data["queries"], 10)
    data[kind].save(tmp_path)
    _, reloaded = VectorIndex.load(tmp_path, use_gpu=False).search(data["queries"], 10)
    assert np.array_equal(got, reloaded)  # the tuned knob is saved with the index
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)])
    assert recall >= 0.9  # fresh queries, not the tuning ones


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@given(share=st.sampled_from([0.0, 1 / 3000, 0.001, 0.01, 0.05, 0.3, 1.0]), k=st.integers(0, 25),
       seed=st.integers(0, 2**16))
@settings(max_examples=examples(25), deadline=None)
def test_filtered_top_k_equals_brute_force(data, kind, share, k, seed):
    """Exact for flat at any selectivity; for HNSW and IVF, exact whenever few ids are allowed (the
    selective case where graph search fails) and near-exact otherwise."""
    rng = np.random.default_rng(seed)
    n = len(data["vectors"])
    allowed = rng.random(n) < share
    if share == 1 / 3000:
        allowed[:] = False
        allowed[rng.integers(n)] = True  # exactly one
    # HNSW/IVF: a low exact_below so the bitmap-selector path (and its short-row fallback) is exercised
    exact_below = 4096 if kind == "flat" else 16
    scores, ids = data[kind].search(data["queries"], k, allowed, exact_below=exact_below)
    want_s, want_i = exact_topk(data["vectors"], data["queries"], k, np.flatnonzero(allowed))
    assert ids.shape == (len(data["queries"]), k)
    assert np.all(allowed[ids[ids >= 0]]), "a filtered-out id came back"
    assert np.array_equal(ids < 0, want_i < 0), "wrong number of hits"
    if kind == "flat" or allowed.sum() <= exact_below:
        np.testing.assert_allclose(scores[ids >= 0], want_s[want_i >= 0], rtol=1e-5, atol=1e-5)
    elif k:
        overlap = np.mean([len(set(a) & set(b)) / max(1, k) for a, b in zip(ids, want_i, strict=True)])
        assert overlap >= 0.85


def test_bad_queries_are_refused(data):
    with pytest.raises(ValueError, match="dimensions"):
        data["flat"].search(np.ones((1, DIM + 1), np.float32), 3)
    with pytest.raises(ValueError, match="mask"):
        data["flat"].search(data["queries"], 3, np.ones(5, bool))
    with pytest.raises(ValueError, match="finite"):
        data["flat"].search(np.full((1, DIM), np.nan, np.float32), 3)


def test_empty_index():
    idx = VectorIndex.build(np.empty((0, DIM), np.float32))
    s, i = idx.search(np.ones((2, DIM), np.float32), 3)
    assert (i == -1).all() and np.isneginf(s).all()


def _chunks(n: int, t0: float = 1000.0) -> list[Chunk]:
    return [Chunk(i, f"text {i}", f"doc{i % 7}", f"title {i % 7}", f"sec {i % 3}", (f"t{i % 2}",), t0 + i, f"h{i}")
            for i in range(n)]


def test_metadata_filters():
    cs = _chunks(30)
    cols = MetadataColumns([c.source for c in cs], [c.title for c in cs], [c.section for c in cs],
                           [c.tags for c in cs], [c.ingested_at for c in cs])
    f = ChunkFilter(equals={"section": "sec 1"}, any_of={"source": ["doc1", "doc4"]},
                    range={"ingested_at": Range(gte=1005, lte=1025)})
    want = [c.id for c in cs if c.section == "sec 1" and c.source in ("doc1", "doc4") and 1005 <= c.ingested_at <= 1025]
    assert list(np.flatnonzero(cols.mask(f))) == want and want
    assert cols.mask(ChunkFilter()) is None
    assert list(np.flatnonzero(cols.mask(ChunkFilter(equals={"tag": "t1"})))) == [c.id for c in cs if c.id % 2]
    with pytest.raises(ValueError):
        ChunkFilter.model_validate({"equals": {"author": "x"}})  # not a metadata field
    with pytest.raises(ValueError):
        Range(gte=2, lte=1)


def test_store_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    store = RetrievalStore(tmp_path / "rag")
    assert store.load() is None
    cs = _chunks(50)
    store.save(cs, [DocumentRecord("doc1", "fp", "title 1", 1.0)], VectorIndex.build(_unit(rng, 50)))
    second = store.save(cs[:10], [], VectorIndex.build(_unit(rng, 10)))
    chunks, docs, index = store.load()
    assert chunks == cs[:10] and docs == [] and index.stats.n == 10
    generations = [p for p in (tmp_path / "rag").iterdir() if p.name.startswith("gen-")]
    assert store.current() == second and len(generations) == 2
    with pytest.raises(ValueError, match="ids"):
        store.save(cs[1:], [], VectorIndex.build(_unit(rng, 49)))


def test_gpu_placement_with_a_stand_in_for_faiss_gpu(data, monkeypatch, tmp_path):
    """MOCKED GPU (no GPU here): faiss's GPU entry points are replaced by stand-ins that record the
    move and keep the CPU index, to check what goes to the GPU (flat, IVF with its tuned nprobe;
    never HNSW), that a filtered search on it is exact (GPU indexes take no IDSelector), and that a
    save brings the index back to the CPU first."""
    import faiss

    moved: list[str] = []
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: object(), raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu",
                        lambda res, dev, index: moved.append(type(index).__name__) or index, raising=False)
    monkeypatch.setattr(faiss, "index_gpu_to_cpu", lambda index: moved.append("to_cpu") or index, raising=False)
    vectors = data["vectors"]
    flat = VectorIndex.build(vectors[:500])
    ivf = VectorIndex.build(vectors, flat_below=1000, ivf_above=2000)
    hnsw = VectorIndex.build(vectors, flat_below=1000)
    assert (flat.stats.on_gpu, ivf.stats.on_gpu, hnsw.stats.on_gpu) == (True, True, False)
    assert moved == ["IndexFlatIP", "IndexIVFFlat"]
    assert ivf.index.nprobe == ivf.stats.nprobe > 0
    allowed = np.zeros(len(vectors), bool)
    allowed[::3] = True  # 1000 allowed: above a low exact_below, still exact on the GPU
    _, ids = ivf.search(data["queries"], 5, allowed, exact_below=16)
    _, want_i = exact_topk(vectors, data["queries"], 5, np.flatnonzero(allowed))
    assert np.array_equal(ids, want_i)
    ivf.save(tmp_path)
    assert moved[-1] == "to_cpu"
    assert VectorIndex.load(tmp_path).stats.on_gpu  # faiss "sees" a GPU: loaded onto it
    assert not VectorIndex.load(tmp_path, use_gpu=False).stats.on_gpu
