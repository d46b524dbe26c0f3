"""CPU benchmark: one decode step of the ``torch-fp32`` backend, eager forward vs the static step
(server/llm/static_step.py) run eagerly and compiled with ``torch.compile(fullgraph=True)``.

Why: the static step exists so that a GPU can capture it; on the CPU it is worth using only if the
compiled step is faster than the eager forward, and this measures exactly that, on the real model
(all 30 layers by default) at batch 1 and 16 with the same KV cache contents for every contender.

Method: each batch size gets a cache whose sequences hold ``--context`` prompt tokens (prefilled by
the eager forward); then rounds interleave the contenders (``--steps`` decode steps each per
round, the same step repeated: it rewrites the same cell), median ms per step over rounds, ratio
against eager from the same run. Compile time (first call per bucket) is reported apart.

    python -m bench.llm_static_step                  # 30 layers, batch 1 and 16 (~5 min on 2 cores)
    python -m bench.llm_static_step --layers 2 --batches 1 --rounds 2   # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.report import machine, machine_line, markdown_table, write_json
from server.llm.backends import fp32_linear
from server.llm.gguf_weights import load_weights, truncate_weights
from server.llm.kv_cache import PagedKVCache
from server.llm.llama import LlamaModel, PrefillSegment, StepBatch
from server.llm.static_step import StaticDecodeStep


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=0, help="truncate to this many layers (0: all)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--context", type=int, default=128, help="prompt tokens already in each sequence's cache")
    p.add_argument("--steps", type=int, default=5, help="decode steps per contender per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--freezing", action="store_true",
                   help="torch._inductor.config.freezing: weights become constants (prepacked for oneDNN)")
    p.add_argument("--no-json", action="store_true")
    return p.parse_args(argv)


def prefilled_cache(model: LlamaModel, batch: int, context: int) -> PagedKVCache:
    """``batch`` sequences of ``context`` random tokens each, prefilled by the eager forward."""
    cfg = model.config
    cache = PagedKVCache.with_slots(cfg.n_layers, batch, cfg.n_kv_heads, context + 64, cfg.head_dim)
    gen = torch.Generator().manual_seed(0)
    for slot in range(batch):
        ids = torch.randint(0, cfg.vocab_size, (context,), generator=gen)
        model.forward(StepBatch(ids, torch.arange(context), torch.empty(0, dtype=torch.long), [],
                                [PrefillSegment(slot, 0, context, 0)], torch.tensor([context - 1])), cache)
    return cache


def timed(fn: Callable[[], Any], n: int) -> float:
    """Milliseconds per call over ``n`` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e3


def measure(model: LlamaModel, batch: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    cache = prefilled_cache(model, batch, args.context)
    tokens = torch.arange(batch) % model.config.vocab_size
    positions = torch.full((batch,), args.context)
    slots = torch.arange(batch)
    step_batch = StepBatch(tokens, positions, slots, [args.context + 1] * batch, [], torch.arange(batch))
    static = StaticDecodeStep(model, cache, max_batch=max(args.batches))
    compiled = StaticDecodeStep(model, cache, max_batch=max(args.batches), compile_mode="default")
    contenders: dict[str, Callable[[], Any]] = {
        "eager forward": lambda: model.forward(step_batch, cache),
        "static step, eager": lambda: static(tokens, positions, slots, args.context + 1),
        "static step, torch.compile": lambda: compiled(tokens, positions, slots, args.context + 1),
    }
    start = time.perf_counter()
    compiled(tokens, positions, slots, args.context + 1)
    compile_s = time.perf_counter() - start
    ref = model.forward(step_batch, cache)
    max_abs = float((compiled(tokens, positions, slots, args.context + 1).float() - ref).abs().max())
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            samples[name].append(timed(fn, args.steps))
    eager = statistics.median(samples["eager forward"])
    rows = []
    for name, s in samples.items():
        ms = statistics.median(s)
        rows.append({"contender": name, "batch": batch, "context": args.context, "ms_per_step": ms,
                     "spread_ms": (max(s) - min(s)) / 2, "tokens_per_s": batch / ms * 1e3,
                     "vs_eager": eager / ms, "samples_ms": s,
                     "compile_s": compile_s if "compile" in name else None,
                     "max_abs_vs_eager": max_abs if "compile" in name else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.freezing:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    weights = load_weights()
    if args.layers:
        weights = truncate_weights(weights, args.layers, weights.config.vocab_size)
    model = LlamaModel(weights, fp32_linear)
    rows = [r for b in args.batches for r in measure(model, b, args)]
    host = machine()
    table = markdown_table(
        ["contender", "layers", "batch", "context", "ms/step", "tok/s", "vs eager", "compile s", "max |diff|"],
        [[r["contender"], weights.config.n_layers, r["batch"], r["context"],
          f"{r['ms_per_step']:.2f} ± {r['spread_ms']:.2f}", f"{r['tokens_per_s']:.1f}", f"{r['vs_eager']:.2f}x",
          f"{r['compile_s']:.0f}" if r["compile_s"] is not None else "",
          f"{r['max_abs_vs_eager']:.1e}" if r["max_abs_vs_eager"] is not None else ""] for r in rows],
    )
    print(table)
    print(machine_line(host), f"torch {torch.__version__}, {args.threads} threads")
    if not args.no_json:
        print("wrote", write_json("llm_static_step", {"args": vars(args), "torch": torch.__version__, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
