"""Nearest chunks by inner product (unit vectors: cosine) with FAISS, filters included.

Exact (``IndexFlatIP``) below ``flat_below`` vectors; HNSW from there to ``ivf_above``, IVF above it
(an HNSW graph over millions of vectors takes tens of minutes to build on a few cores; IVF's k-means
takes about a minute per million). The search knob (HNSW ``efSearch``, IVF ``nprobe``) is tuned at
build time to the smallest value whose recall@10 against exact search reaches ``target_recall`` on
held-out queries — the measured recall is kept with the index (``IndexStats``).

Filters arrive as a boolean mask over ids. A graph index searched with a very selective filter
returns fewer than k hits or misses true neighbours (the graph walk is cut off by rejected nodes), so
when few ids are allowed the search is exact over just those vectors (a matrix product over at most
``exact_below`` rows), and a filtered index search that comes back short is redone exactly: the
top-k is always the true top-k among the allowed ids. Flat and IVF indexes move to the GPU when the
installed faiss was built with GPU support and sees a GPU (a faiss-gpu build); same API otherwise.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# Filtered searches allowing at most this many ids are exact over just those rows (a matrix product,
# or a scan of those rows in PostgreSQL): a graph walk with most nodes rejected misses neighbours.
EXACT_BELOW = 4096


@dataclass(slots=True)
class IndexStats:
    kind: str  # flat | hnsw | ivf
    n: int
    dim: int
    recall_at_10: float  # measured against exact search at build time (1.0 for flat)
    ef_search: int = 0
    m: int = 0
    on_gpu: bool = False
    nlist: int = 0
    nprobe: int = 0


def _faiss():
    import faiss

    return faiss


def gpu_available() -> bool:
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class FaissGpuUnavailableError(RuntimeError):
    """The GPU index was asked for (``rag.index_device: gpu``) but faiss cannot place one."""


def require_faiss_gpu() -> None:
    """Fail now, with what is missing and what to set instead, when a GPU index cannot be built:
    at start, not at the first index build or load (the faiss-gpu wheels are large and are not
    installed on our CI machines or on the lent GPU machines, which can fetch nothing)."""
    faiss = _faiss()
    if not hasattr(faiss, "StandardGpuResources"):
        missing = f"the installed faiss {getattr(faiss, '__version__', '?')} has no GPU support (faiss-cpu build)"
    elif faiss.get_num_gpus() < 1:
        missing = "faiss has GPU support but sees no CUDA GPU"
    else:
        return
    raise FaissGpuUnavailableError(
        f"rag.index_device=gpu needs a faiss-gpu build and a CUDA GPU: {missing}. Install faiss-gpu "
        "(the `gpu` extra) on a GPU machine, or set rag.index_device to auto (GPU when faiss sees one) or cpu"
    )


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int, ids: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """The reference: top-k by inner product over ``vectors`` (rows ``ids`` only, if given).
    Returns (scores [m, k], ids [m, k]) best first, padded with (-inf, -1)."""
    m = len(queries)
    out_s = np.full((m, k), -np.inf, dtype=np.float32)
    out_i = np.full((m, k), -1, dtype=np.int64)
    rows = np.arange(len(vectors)) if ids is None else ids
    if len(rows) == 0 or k == 0 or m == 0:
        return out_s, out_i
    sims = queries @ vectors[rows].T  # [m, r]
    kk = min(k, len(rows))
    part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk] if kk < len(rows) else np.tile(np.arange(len(rows)), (m, 1))
    top = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    out_s[:, :kk] = np.take_along_axis(top, order, axis=1)
    out_i[:, :kk] = rows[np.take_along_axis(part, order, axis=1)]
    return out_s, out_i


class VectorIndex:
    def __init__(self, vectors: np.ndarray, index, stats: IndexStats) -> None:
        self.vectors = vectors
        self.index = index
        self.stats = stats

    # ---- build ------------------------------------------------------------------------------
    @classmethod
    def build(cls, vectors: np.ndarray, flat_below: int = 50_000, target_recall: float = 0.95, m: int = 32,
              ef_construction: int = 128, seed: int = 0, use_gpu: bool | None = None,
              ivf_above: int = 500_000, progress=None) -> VectorIndex:
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be [n, dim], got shape {vectors.shape}")
        n, dim = vectors.shape
        if not np.isfinite(vectors).all():
            raise ValueError("vectors must be finite (NaN or inf in an embedding)")
        if n < flat_below:
            index = faiss.IndexFlatIP(dim)
            index.add(vectors)
            built = cls(vectors, index, IndexStats("flat", n, dim, 1.0))
            built._to_gpu(use_gpu)
            return built
        if n >= ivf_above:
            built = cls._build_ivf(vectors, target_recall, seed, progress)
            built._to_gpu(use_gpu)
            return built
        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(vectors)
        stats = IndexStats("hnsw", n, dim, 0.0, 0, m)
        built = cls(vectors, index, stats)
        built._tune(target_recall, seed)
        return built

    @classmethod
    def _build_ivf(cls, vectors: np.ndarray, target_recall: float, seed: int, progress=None) -> VectorIndex:
        """IVF-Flat with ~4·sqrt(n) lists, k-means on 40 points per list (FAISS's minimum for a
        stable clustering), 10 iterations: the index build is minutes, not hours, at 1M vectors."""
        faiss = _faiss()
        n, dim = vectors.shape
        nlist = int(min(65536, max(16, 4 * np.sqrt(n))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.seed = seed
        rng = np.random.default_rng(seed)
        sample = vectors[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))]
        if progress is not None:
            progress(f"IVF: k-means, {nlist} lists on {len(sample)} vectors")
        index.train(sample)
        if progress is not None:
            progress(f"IVF: adding {n} vectors")
        index.add(vectors)
        built = cls(vectors, index, IndexStats("ivf", n, dim, 0.0, nlist=nlist))
        built._tune(target_recall, seed)
        return built

    def _to_gpu(self, use_gpu: bool | None) -> None:
        """Move a flat or IVF index to GPU 0 when asked (None: when faiss sees a GPU). HNSW stays on
        the CPU: FAISS has no GPU HNSW. The tuned ``nprobe`` travels with the index."""
        if self.stats.kind == "hnsw" or not (use_gpu if use_gpu is not None else gpu_available()):
            return
        if use_gpu:
            require_faiss_gpu()
        faiss = _faiss()
        self.index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, self.index)
        if self.stats.kind == "ivf":
            self.index.nprobe = self.stats.nprobe
        self.stats.on_gpu = True

    def _set_knob(self, value: int) -> None:
        if self.stats.kind == "ivf":
            self.index.nprobe = value
            self.stats.nprobe = value
        else:
            self.index.hnsw.efSearch = value
            self.stats.ef_search = value

    def _tune(self, target: float, seed: int, n_queries: int = 200) -> None:
        """Smallest efSearch / nprobe reaching ``target`` recall@10 on held-out queries (perturbed
        data points: near the data, like real queries, but not in it)."""
        rng = np.random.default_rng(seed)
        picks = rng.choice(self.stats.n, size=min(n_queries, self.stats.n), replace=False)
        q = self.vectors[picks] + rng.normal(0, 0.05, size=(len(picks), self.stats.dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        _, truth = exact_topk(self.vectors, q, 10)
        if self.stats.kind == "ivf":
            knobs = [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if p < self.stats.nlist]
            knobs.append(self.stats.nlist)
        else:
            knobs = [16, 32, 64, 128, 256, 512, 1024, 2048]
        for value in knobs:
            self._set_knob(value)
            _, got = self.index.search(q, 10)
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)]))
            self.stats.recall_at_10 = recall
            if recall >= target:
                return

    # ---- search -----------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               exact_below: int = EXACT_BELOW) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query, best first, padded with (-inf, -1); ``allowed`` is a
        boolean mask over ids (None: all)."""
        if k < 0:
            raise ValueError("k must be >= 0")
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.stats.dim:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.stats.dim}")
        if not np.isfinite(queries).all():
            raise ValueError("queries must be finite (NaN or inf in a query vector)")
        n = self.stats.n
        if allowed is not None and allowed.shape != (n,):
            raise ValueError(f"filter mask has shape {allowed.shape}, the index holds {n} vectors")
        if n == 0 or k == 0:  # FAISS asserts k > 0: nothing to search
            return exact_topk(self.vectors, queries, k)
        if allowed is None:
            scores, ids = self.index.search(queries, min(k, n))
            return _pad(scores, ids, k)
        n_allowed = int(np.count_nonzero(allowed))  # far cheaper than listing the ids at 1M
        # IVF probes n/allowed times more lists under a filter; once that is most of them, testing every
        # id against the filter costs more than comparing the allowed vectors directly
        ivf_scans_all = self.stats.kind == "ivf" and max(1, self.stats.nprobe) * n >= n_allowed * self.stats.nlist / 2
        # GPU indexes take no IDSelector: a filtered search on the GPU is exact over the allowed rows
        if n_allowed <= exact_below or self.stats.on_gpu or ivf_scans_all:
            return exact_topk(self.vectors, queries, k, np.flatnonzero(allowed))
        faiss = _faiss()
        bitmap = np.packbits(allowed, bitorder="little")
        sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
        if self.stats.kind == "hnsw":
            # a filter rejects most nodes the walk visits: widen the beam by the inverse selectivity so
            # filtered recall stays near the tuned unfiltered recall
            share = n_allowed / n
            ef = int(min(8192, max(self.stats.ef_search, 2 * k) / max(share, 1e-3)))
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        elif self.stats.kind == "ivf":
            # the same for IVF: probe n/allowed times more lists, so as many allowed vectors are
            # compared as an unfiltered search compares (a rejected id costs a bit test, no distance)
            nprobe = int(min(self.stats.nlist, np.ceil(max(1, self.stats.nprobe) * n / n_allowed)))
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
        else:
            params = faiss.SearchParameters(sel=sel)
        kk = min(k, n_allowed)
        scores, ids = self.index.search(queries, kk, params=params)
        scores, ids = _pad(scores, ids, k)
        short = np.flatnonzero((ids[:, :kk] < 0).any(axis=1))
        if len(short):  # the walk was cut off by rejected nodes: these rows exactly
            scores[short], ids[short] = exact_topk(self.vectors, queries[short], k, np.flatnonzero(allowed))
        return scores, ids

    # ---- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        faiss = _faiss()
        index = faiss.index_gpu_to_cpu(self.index) if self.stats.on_gpu else self.index
        faiss.write_index(index, str(directory / "index.faiss"))
        np.save(directory / "vectors.npy", self.vectors)
        (directory / "index.json").write_text(json.dumps(asdict(self.stats), indent=2))

    @classmethod
    def load(cls, directory: Path, use_gpu: bool | None = None) -> VectorIndex:
        faiss = _faiss()
        stats = IndexStats(**json.loads((directory / "index.json").read_text()))
        vectors = np.load(directory / "vectors.npy")
        index = faiss.read_index(str(directory / "index.faiss"))
        if index.ntotal != len(vectors) or len(vectors) != stats.n:
            raise ValueError(f"{directory}: index holds {index.ntotal} vectors, vectors.npy {len(vectors)}, "
                             f"index.json {stats.n}")
        stats.on_gpu = False
        if stats.kind == "hnsw":
            index.hnsw.efSearch = stats.ef_search
        elif stats.kind == "ivf":
            index.nprobe = stats.nprobe
        loaded = cls(vectors, index, stats)
        loaded._to_gpu(use_gpu)
        return loaded


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    m, got = ids.shape
    s = np.full((m, k), -np.inf, dtype=np.float32)
    i = np.full((m, k), -1, dtype=np.int64)
    s[:, :got], i[:, :got] = scores, ids
    s[i < 0] = -np.inf
    return s, i
