"""Vector search benchmark: our index over 1M x 384 synthetic vectors against exact (Flat) search.

Why synthetic: the corpus we ship is a few thousand chunks; the index must hold a million. The
vectors have sentence embeddings' shape where it matters to an index: a low intrinsic dimension
(16 latent dimensions mapped into 384, plus isotropic noise), no tidy clusters. Uniform random
vectors have no neighbourhood structure at all and clustered ones make IVF look better than it is.
Queries are held-out perturbed data points.

Measured in one run, one query per call (as the retriever searches):

* **Flat** (``IndexFlatIP``): the exact baseline; its answers are the ground truth;
* **ours** (``VectorIndex.build``: IVF at this size, ``nprobe`` tuned at build time to recall@10
  ≥ 0.95): build seconds, p50/p95 latency, recall@10 against Flat on fresh queries;
* **ours, filtered at 1 %** (a random mask allowing 1 % of ids, as a metadata filter does): latency
  and recall@10 against exact search over the allowed ids; target within 3x of unfiltered.

Targets: p95 ≤ 5 ms at recall@10 ≥ 0.95; filtered p95 ≤ 3x unfiltered p95 with recall ≥ 0.95.

    python -m bench.vector_search [--quick] [--check]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from bench.report import RESULTS, machine, machine_line, markdown_table, write_json

LATENT, NOISE = 16, 0.3  # intrinsic dimension; isotropic noise norm (relative to the signal's ~1)
TARGETS = {"p95_ms": 5.0, "recall_at_10": 0.95, "filtered_over_unfiltered_p95": 3.0}


def synthetic_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors from a LATENT-dimensional Gaussian mapped into ``dim`` dimensions, plus a little
    isotropic noise: continuous structure with a low intrinsic dimension, as sentence embeddings have
    (no tidy clusters for an IVF index to exploit)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((LATENT, dim)).astype(np.float32) / LATENT**0.5
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for a in range(0, n, step):
        b = min(n, a + step)
        x = rng.standard_normal((b - a, LATENT)).astype(np.float32) @ basis
        x += rng.standard_normal((b - a, dim)).astype(np.float32) * (NOISE / dim**0.5)
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def held_out_queries(vectors: np.ndarray, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = vectors[rng.choice(len(vectors), m, replace=False)]
    q = q + rng.standard_normal(q.shape).astype(np.float32) * (0.3 / q.shape[1] ** 0.5)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def per_query(search, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(latencies in ms, ids [m, 10]) searching one query per call."""
    lat = np.empty(len(queries))
    ids = np.empty((len(queries), 10), dtype=np.int64)
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        ids[i] = search(q[None, :])
        lat[i] = (time.perf_counter() - t0) * 1e3
    return lat, ids


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                          for a, b in zip(got, truth, strict=True)]))


def plot(lat: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, v in lat.items():
        s = np.sort(v)
        ax.plot(s, np.arange(1, len(s) + 1) / len(s), label=name)
    ax.set_xscale("log")
    ax.set_xlabel("ms per query (log)")
    ax.set_ylabel("fraction of queries")
    ax.axvline(TARGETS["p95_ms"], color="grey", ls=":", label="5 ms")
    ax.axhline(0.95, color="grey", ls="--", lw=0.5)
    ax.legend()
    ax.set_title(machine_line()[:90], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k vectors (CI)")
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()
    import faiss

    from server.rag.vector_index import VectorIndex, exact_topk

    n = 200_000 if args.quick else args.n
    dim, m_flat, m_ours = 384, 40 if args.quick else 60, 300 if args.quick else 500
    print(machine_line(), file=sys.stderr)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads", file=sys.stderr)
    with Progress(transient=True) as bar:
        task = bar.add_task("vectors", total=None)
        vectors = synthetic_unit_vectors(n, dim, seed=1)
        queries = held_out_queries(vectors, m_ours, seed=2)
        bar.update(task, description="building our index (IVF k-means, add, recall tuning)")
        t0 = time.perf_counter()
        ours = VectorIndex.build(vectors, flat_below=50_000, target_recall=0.95, ivf_above=min(n, 500_000),
                                 progress=lambda msg: bar.update(task, description=msg))
        build_s = time.perf_counter() - t0
        bar.update(task, description="ground truth (exact, batched)")
        flat = faiss.IndexFlatIP(dim)
        flat.add(vectors)
        _, truth = flat.search(queries, 10)
        allowed = np.random.default_rng(3).random(n) < 0.01
        allowed_ids = np.flatnonzero(allowed)
        _, truth_f = exact_topk(vectors, queries, 10, allowed_ids)
        bar.update(task, description="timing Flat")
        lat_flat, got_flat = per_query(lambda q: flat.search(q, 10)[1][0], queries[:m_flat])
        bar.update(task, description="timing ours")
        lat_ours, got_ours = per_query(lambda q: ours.search(q, 10)[1][0], queries)
        bar.update(task, description="timing ours, filtered")
        lat_filt, got_filt = per_query(lambda q: ours.search(q, 10, allowed)[1][0], queries)
    st = ours.stats
    rows, res = [], {}
    for name, lat, got, want in (("Flat (exact)", lat_flat, got_flat, truth[:m_flat]),
                                 (f"ours: {st.kind} nlist={st.nlist} nprobe={st.nprobe}", lat_ours, got_ours, truth),
                                 ("ours, filter allows 1%", lat_filt, got_filt, truth_f)):
        p50, p95 = np.percentile(lat, [50, 95])
        r = recall(got, want)
        res[name] = {"p50_ms": p50, "p95_ms": p95, "recall_at_10": r, "queries": len(lat)}
        rows.append([name, f"{p50:.2f}", f"{p95:.2f}", f"{r:.3f}", len(lat)])
    p95_flat, p95_ours, p95_filt = (res[k]["p95_ms"] for k in res)
    table = markdown_table(["search", "p50 ms", "p95 ms", "recall@10", "queries"], rows)
    summary = (f"{n:,} x {dim}; build {build_s:.0f} s (recall@10 at build {st.recall_at_10:.3f}); "
               f"ours vs Flat p95: {p95_flat / p95_ours:.0f}x faster; filtered / unfiltered p95: "
               f"{p95_filt / p95_ours:.2f}x")
    print(f"\n{machine_line()}\n{summary}\n{table}")
    write_json("vector_search", {"machine": machine(), "n": n, "dim": dim, "build_s": build_s,
                                 "index": {"kind": st.kind, "nlist": st.nlist, "nprobe": st.nprobe,
                                           "recall_at_build": st.recall_at_10},
                                 "results": res, "filtered_over_unfiltered_p95": p95_filt / p95_ours})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vector_search.md").write_text(f"{machine_line()}\n\n{summary}\n\n{table}\n")
    plot({r[0]: lat for r, lat in zip(rows, (lat_flat, lat_ours, lat_filt), strict=True)},
         RESULTS / "vector_search.png")
    if args.check:
        ours_res = list(res.values())[1]
        filt_res = list(res.values())[2]
        missed = []
        if ours_res["p95_ms"] > TARGETS["p95_ms"] or ours_res["recall_at_10"] < TARGETS["recall_at_10"]:
            missed.append(f"unfiltered p95 {ours_res['p95_ms']:.2f} ms, recall {ours_res['recall_at_10']:.3f}")
        if p95_filt / p95_ours > TARGETS["filtered_over_unfiltered_p95"] or filt_res["recall_at_10"] < 0.95:
            missed.append(f"filtered {p95_filt / p95_ours:.2f}x, recall {filt_res['recall_at_10']:.3f}")
        if missed:
            print("targets missed: " + "; ".join(missed), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
