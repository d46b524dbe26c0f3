"""Embedder benchmark: texts/s of our all-MiniLM-L6-v2 against sentence-transformers, same texts.

Two workloads, the two the retriever has:

* **batch 1, queries**: the evaluation set's questions (bench/data/rag_eval.jsonl), one per call, as a
  search embeds them;
* **batch 64, chunks**: the default corpus's chunks as ingestion embeds them (title + section + text,
  ~150-220 tokens each), 64 per call.

Contenders, in interleaved rounds in one process (a load spike hits all alike): ``sentence-transformers``
(``SentenceTransformer.encode``, the baseline), ours in fp32, in int8 (our Q8_0 kernel) and in
"auto" (int8 for small forward passes, fp32 for large: the served default). Each
cell is the median of the rounds; ratios are against sentence-transformers in the same run. The
worst cosine of ours to sentence-transformers on the chunks is printed and stored (must be ≥ 0.99).

``--serving`` adds the Embedder deployment on a local Ray instance: 16 concurrent callers, one query
each per call, with Serve's dynamic batching on (batches of up to 32 texts, 2 ms wait) and off
(batches of one), texts/s and latency percentiles.

    python -m bench.embedder [--quick] [--serving] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.report import RESULTS, machine, machine_line, markdown_table, spread, write_json

ROOT = Path(__file__).resolve().parents[1]
TARGET_SPEEDUP = 2.0  # ours fp32 vs sentence-transformers, texts/s, per workload


def load_texts(n_chunks: int) -> tuple[list[str], list[str]]:
    """(queries, chunk texts as ingestion embeds them) from the evaluation set and the default corpus."""
    from bench.rag_eval import CACHE, EVAL_SET
    from server.rag.eval_runner import default_corpus_store
    from server.rag.evaluation import load_items
    from server.rag.ingest import embedding_text
    from server.rag.store import RetrievalStore

    queries = [it.question for it in load_items(EVAL_SET)]
    loaded = RetrievalStore(default_corpus_store(CACHE)).load()
    assert loaded is not None
    chunks = [embedding_text(c.title, c.section, c.text) for c in loaded[0]]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(chunks), size=min(n_chunks, len(chunks)), replace=False)
    return queries, [chunks[i] for i in picks]


def rate(encode: Callable[[list[str], int], np.ndarray], texts: list[str], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        encode(texts[i : i + batch], batch)
    return len(texts) / (time.perf_counter() - t0)


def in_process(queries: list[str], chunks: list[str], rounds: int) -> tuple[list[list], dict]:
    from sentence_transformers import SentenceTransformer

    from server.rag.embedder import Embedder, cosine_floor, model_dir

    st = SentenceTransformer(str(model_dir()), device="cpu")
    contenders: dict[str, Callable[[list[str], int], np.ndarray]] = {
        "sentence-transformers": lambda t, b: st.encode(t, batch_size=b, convert_to_numpy=True),
    }
    for precision in ("fp32", "int8", "auto"):
        e = Embedder(precision=precision)
        contenders[f"ours {precision}"] = lambda t, b, e=e: e.encode(t, batch_size=b)
    reference = st.encode(chunks, batch_size=64, convert_to_numpy=True)
    cosine = {name: cosine_floor(fn(chunks, 64), reference) for name, fn in contenders.items()}
    workloads = {"batch 1, queries": (queries, 1), "batch 64, chunks": (chunks, 64)}
    samples: dict[str, dict[str, list[float]]] = {w: {c: [] for c in contenders} for w in workloads}
    for fn in contenders.values():  # warm-up: first calls allocate and pick kernels
        fn(queries[:4], 1)
    for r in range(rounds):
        for w, (texts, batch) in workloads.items():
            for name, fn in contenders.items():
                samples[w][name].append(rate(fn, texts, batch))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    rows, out = [], {"cosine_floor_vs_st": cosine, "samples": samples, "speedup": {}}
    for w in workloads:
        base = statistics.median(samples[w]["sentence-transformers"])
        for name in contenders:
            med, half_iqr = spread(samples[w][name])
            ratio = med / base
            out["speedup"][f"{w} | {name}"] = ratio
            rows.append([w, name, f"{med:.1f} ± {half_iqr:.1f}", f"{ratio:.2f}x", f"{cosine[name]:.5f}"])
    return rows, out


async def _serve_load(handle, queries: list[str], callers: int, per_caller: int) -> tuple[float, list[float]]:
    lat: list[float] = []

    async def caller(c: int) -> None:
        for i in range(per_caller):
            q = queries[(c * per_caller + i) % len(queries)]
            t0 = time.perf_counter()
            await handle.encode.remote([q])
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in range(callers)))
    return callers * per_caller / (time.perf_counter() - t0), lat


def serving(queries: list[str], callers: int, per_caller: int) -> tuple[list[list], dict]:

    import ray
    from ray import serve

    from deployments.app import build_embedder_app
    from server.config import load_settings

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows, out = [], {}
    try:
        serve.start(proxy_location="Disabled")
        for label, batch in (("dynamic batching (≤32 texts, 2 ms)", 32), ("no batching", 1)):
            settings = load_settings(None, rag={"embedder": {"max_batch_size": batch, "batch_wait_ms": 2.0,
                                                              "num_cpus": 1.0}})
            handle = serve.run(build_embedder_app(settings), name="embedder-bench", route_prefix=None,
                               logging_config={"enable_access_log": False, "log_level": "WARNING"})
            asyncio.run(_serve_load(handle, queries, 4, 4))  # warm-up
            passes0, texts0 = handle.stats.remote().result()
            tput, lat = asyncio.run(_serve_load(handle, queries, callers, per_caller))
            passes1, texts1 = handle.stats.remote().result()
            mean_batch = (texts1 - texts0) / max(1, passes1 - passes0)
            p50, p95 = np.percentile(np.asarray(lat) * 1e3, [50, 95])
            out[label] = {"texts_per_s": tput, "p50_ms": p50, "p95_ms": p95, "mean_batch": mean_batch}
            rows.append([label, f"{tput:.1f}", f"{p50:.1f}", f"{p95:.1f}", f"{mean_batch:.1f}"])
            serve.delete("embedder-bench")
    finally:
        serve.shutdown()
        ray.shutdown()
    base = out["no batching"]["texts_per_s"]
    for r in rows:
        r.insert(2, f"{out[r[0]]['texts_per_s'] / base:.2f}x")
    return rows, out


def plot(rows: list[list], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = plt.subplots(1, len(workloads), figsize=(5 * len(workloads), 3.6))
    for ax, w in zip(np.atleast_1d(axes), workloads, strict=True):
        mine = [r for r in rows if r[0] == w]
        ax.bar([r[1] for r in mine], [float(r[2].split(" ")[0]) for r in mine], color=["#999", "#2a7", "#27a", "#a72"])
        ax.set_title(w)
        ax.set_ylabel("texts/s (median)")
        ax.tick_params(axis="x", rotation=15)
    fig.suptitle(f"all-MiniLM-L6-v2 embedding — {machine_line()[:80]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer texts and rounds (CI)")
    ap.add_argument("--serving", action="store_true", help="also the Embedder deployment on Ray")
    ap.add_argument("--check", action="store_true", help=f"exit 1 if ours fp32 is < {TARGET_SPEEDUP}x in a workload")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    print(machine_line(), file=sys.stderr)
    queries, chunks = load_texts(64 if args.quick else 256)
    if args.quick:
        queries = queries[:48]
    rows, result = in_process(queries, chunks, 3 if args.quick else 5)
    table = markdown_table(["workload", "embedder", "texts/s", "vs sentence-transformers", "cosine floor"], rows)
    print(f"\n{machine_line()}\n{len(queries)} queries, {len(chunks)} chunks\n{table}")
    text = f"{machine_line()}\n\n{table}\n"
    payload = {"machine": machine(), "in_process": result}
    if args.serving:
        srows, sres = serving(queries, 16, 8 if args.quick else 24)
        stable = markdown_table(["Embedder deployment, 16 callers x 1 query", "texts/s", "vs no batching",
                                 "p50 ms", "p95 ms", "mean batch"], srows)
        print(f"\n{stable}")
        text += f"\n{stable}\n"
        payload["serving"] = sres
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json("embedder", payload)
    (RESULTS / "embedder.md").write_text(text)
    plot(rows, RESULTS / "embedder.png")
    if args.check:
        missed = {k: round(v, 2) for k, v in result["speedup"].items()
                  if k.endswith("ours fp32") and v < TARGET_SPEEDUP}
        if missed:
            print(f"speed-up target {TARGET_SPEEDUP}x missed: {missed}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
