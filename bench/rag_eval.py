"""Retrieval and chat quality over the evaluation set (bench/data/rag_eval.jsonl), end to end.

Ingests the default corpus (the Python docs' help topics) into a cached store once, then asks every
question through the same ChatPipeline the gateway runs (input rails, retrieval, prompt template, the
real LLM engine in this process, output rails) and scores it (server/rag/evaluation.py). With two
backends (``--backends cpu-int4 torch-fp32``) it prints latency vs quality before and after
quantization in one table. Writes JSON, a Markdown table and a plot under bench/results/.

    python -m bench.rag_eval [--limit N] [--backends cpu-int4 torch-fp32] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from pathlib import Path

from bench.report import RESULTS, machine, machine_line, markdown_table, write_json
from server.rag.eval_runner import ask_all, default_corpus_store
from server.rag.evaluation import Report, load_items, summarize

ROOT = Path(__file__).resolve().parents[1]
EVAL_SET = ROOT / "bench" / "data" / "rag_eval.jsonl"
CACHE = ROOT / ".bench-cache"  # the ingested corpus, keyed by what it depends on (server/rag/eval_runner.py)
TARGETS = {"hit_rate@5": 0.90, "mrr_at_10": 0.75, "grounded_rate": 0.85, "abstention_accuracy": 0.80}


def _row(backend: str, rep: Report) -> list[str]:
    lat = rep.latency_ms
    return [backend, f"{rep.hit_rate.get(1, 0):.3f}", f"{rep.hit_rate.get(5, 0):.3f}", f"{rep.mrr_at_10:.3f}",
            f"{rep.token_f1:.3f}", f"{rep.grounded_rate:.3f}", f"{rep.hallucination_rate:.3f}",
            f"{rep.abstention_accuracy:.3f}", f"{rep.false_abstention:.3f}",
            f"{lat.get('p50', 0):.0f} / {lat.get('p95', 0):.0f}", f"{lat.get('ttft_p50', 0):.0f}"]


def plot(reports: dict[str, Report], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["hit@1", "hit@5", "MRR@10", "token F1", "grounded", "hallucination", "abstention acc."]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / max(1, len(reports))
    for i, (backend, rep) in enumerate(reports.items()):
        vals = [rep.hit_rate.get(1, 0), rep.hit_rate.get(5, 0), rep.mrr_at_10, rep.token_f1, rep.grounded_rate,
                rep.hallucination_rate, rep.abstention_accuracy]
        ax.bar([x + i * width for x in range(len(names))], vals, width, label=backend)
        ax2.bar([i], [rep.latency_ms.get("p50", 0)], 0.6, label=backend)
    ax.set_xticks([x + width * (len(reports) - 1) / 2 for x in range(len(names))], names, rotation=30)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("RAG quality (bench/data/rag_eval.jsonl)")
    ax2.set_xticks(range(len(reports)), list(reports))
    ax2.set_ylabel("ms per question, p50")
    ax2.set_title("latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["cpu-int4"], choices=["cpu-int4", "torch-fp32"])
    ap.add_argument("--limit", type=int, default=0, help="first N questions only (0: all)")
    ap.add_argument("-k", type=int, default=4, help="chunks given to the model")
    ap.add_argument("--check", action="store_true", help="exit 1 if a quality target is missed")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    items = load_items(EVAL_SET)
    if args.limit:
        items = items[: args.limit]
    print(machine_line(), file=sys.stderr)
    reports, raw = {}, {}
    for backend in args.backends:
        t0 = time.perf_counter()
        results = asyncio.run(ask_all(items, backend, args.k, default_corpus_store(CACHE)))
        reports[backend] = summarize(results, items)
        raw[backend] = {"report": dataclasses.asdict(reports[backend]), "seconds": time.perf_counter() - t0,
                        "items": [dataclasses.asdict(r) for r in results]}
    header = ["backend", "hit@1", "hit@5", "MRR@10", "token F1", "grounded", "halluc.", "abstain acc.",
              "false abstain", "ms p50 / p95", "TTFT p50 ms"]
    table = markdown_table(header, [_row(b, r) for b, r in reports.items()])
    n = len(items)
    print(f"\n{n} questions ({sum(i.answerable for i in items)} answerable); {machine_line()}\n{table}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json("rag_eval", {"machine": machine(), "eval_set": str(EVAL_SET.relative_to(ROOT)), "backends": raw})
    (RESULTS / "rag_eval.md").write_text(table + "\n")
    plot(reports, RESULTS / "rag_eval.png")
    if args.check:
        rep = reports[args.backends[0]]
        got = {"hit_rate@5": rep.hit_rate.get(5, 0), "mrr_at_10": rep.mrr_at_10, "grounded_rate": rep.grounded_rate,
               "abstention_accuracy": rep.abstention_accuracy}
        missed = {k: (round(got[k], 3), v) for k, v in TARGETS.items() if got[k] < v}
        if missed:
            print(f"targets missed (got, target): {missed}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
