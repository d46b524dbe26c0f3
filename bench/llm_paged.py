"""What the paged KV cache buys and what it costs: long contexts in a small pool, shared prefixes held
once, and the price of reading attention through block tables.

Three measurements, the CPU printed:

1. **Long context in the memory of short slots** (Gemma 3 270M, the packaged model with a 32k
   context): ``max_model_len`` 8,192 with 16 sequences in a pool of 16 x 1,024 positions (the
   positions a slot cache gives 16 x 1k contexts; in fp16, half its fp32 bytes). One ~6,000-token
   prompt and 15 short ones (~200 tokens) run at once; all must finish (preempting when the pool
   runs out, with the answers they give alone).
2. **A shared system prompt held once**: 16 concurrent requests that start with the same 512-token
   system prompt; peak blocks in use and TTFT with prefix caching on (blocks shared, indexed as they
   fill) vs off (each request holds and prefills its own copy).
3. **The indirection's price**: 16 decode streams at ~512 tokens of context through the C++ step,
   each sequence's blocks contiguous (the layout of a slot cache) vs interleaved with the other
   sequences' (what a server that allocates as streams grow gets); tokens/s ratio, medians of
   interleaved rounds.

    python -m bench.llm_paged [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import numpy as np
import torch
from rich.console import Console

from bench.report import machine, machine_line, markdown_table, write_json
from server.llm.params import SamplingParams

console = Console(stderr=True)


def _ids(seed: int, n: int) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(100, 40000, n)]


def _run_concurrently(
    engine, prompts: list[list[int]], params: SamplingParams
) -> tuple[list[list[int]], list[float], float, float]:
    """Submit all at once; (token ids per request, TTFT per request, wall seconds, peak KV usage)."""
    outs: list[list[int]] = [[] for _ in prompts]
    ttft = [0.0] * len(prompts)
    peak = 0.0
    done = threading.Event()
    t0 = time.perf_counter()

    def ask(i: int) -> None:
        for c in engine.generate_blocking(prompts[i], params, timeout_s=1200):
            if c.token_ids and not outs[i]:
                ttft[i] = time.perf_counter() - t0
            outs[i] += c.token_ids

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, engine.cache.usage())
            time.sleep(0.005)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    w = threading.Thread(target=watch)
    w.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done.set()
    w.join()
    return outs, ttft, wall, peak


def long_context(quick: bool) -> dict:
    from server.config import load_settings
    from server.llm.engine import LLMEngine

    base = load_settings(None).llm.model_copy(update={"model": "gemma3-270m", "speculative_tokens": 0})
    long_len = 3000 if quick else 6000
    prompts = [_ids(1, long_len)] + [_ids(10 + i, 200) for i in range(15)]
    params = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)
    cfg = base.model_copy(update={"max_model_len": 8192, "max_num_seqs": 16, "kv_cache_tokens": 16 * 1024,
                                  "prefix_cache_entries": 0})
    eng = LLMEngine(cfg).start()
    try:
        mc = eng.model_config  # the slot cache this replaced held fp32 K/V: 2 x layers x heads x dim x 4 B
        per_token = 2 * mc.n_layers * mc.n_kv_heads * mc.head_dim * 4
        outs, ttft, wall, peak = _run_concurrently(eng, prompts, params)
        preempted = eng.scheduler.preemptions
        pool = eng.cache.nbytes()
    finally:
        eng.shutdown()
    alone = LLMEngine(cfg.model_copy(update={"max_num_seqs": 1}), weights=eng.weights).start()
    try:
        same = sum(outs[i] == [t for c in alone.generate_blocking(prompts[i], params, timeout_s=1200)
                               for t in c.token_ids] for i in (0, 1))
    finally:
        alone.shutdown()
    return {"model": "gemma3-270m", "max_model_len": 8192, "sequences": 16, "pool_tokens": 16 * 1024,
            "pool_mib": pool / 2**20, "slot_cache_16x1k_mib": per_token * 16 * 1024 / 2**20,
            "slot_cache_16x8k_mib": per_token * 16 * 8192 / 2**20, "long_prompt_tokens": long_len,
            "completed": sum(len(o) == params.max_tokens for o in outs), "requests": len(prompts),
            "preemptions": preempted, "peak_usage": peak, "wall_s": wall,
            "long_ttft_s": ttft[0], "short_ttft_p50_s": statistics.median(ttft[1:]),
            "identical_to_alone_of_2_checked": same}


def shared_prefix(quick: bool) -> dict:
    from server.config import load_settings
    from server.llm.engine import LLMEngine

    base = load_settings(None).llm.model_copy(update={"speculative_tokens": 0})
    system = _ids(7, 512)
    n = 8 if quick else 16
    prompts = [system + _ids(100 + i, 32) for i in range(n)]
    params = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)
    res = {}
    weights = None
    for name, entries in (("prefix caching on", 4), ("prefix caching off", 0)):
        eng = LLMEngine(base.model_copy(update={"prefix_cache_entries": entries}), weights=weights).start()
        weights = eng.weights
        try:
            _outs, ttft, wall, peak = _run_concurrently(eng, prompts, params)
            res[name] = {"peak_blocks": round(peak * eng.cache.n_blocks), "wall_s": wall,
                         "ttft_p50_ms": statistics.median(ttft) * 1e3,
                         "hit_tokens": eng.counters()["prefix_cache_hit_tokens"]}
        finally:
            eng.shutdown()
    return {"requests": n, "system_tokens": len(system), **res}


def indirection(quick: bool) -> dict:
    from kernels import llm_step
    from server.llm.backends.cpu_int4 import CppLlamaStep
    from server.llm.gguf_weights import load_weights
    from server.llm.kv_cache import PagedKVCache
    from server.llm.llama import StepBatch

    w = load_weights()
    cfg = w.config
    step = CppLlamaStep(w)
    n_seq, ctx, steps = 16, 512, 16 if quick else 32

    def cache(interleaved: bool) -> PagedKVCache:
        c = PagedKVCache(cfg.n_layers, n_seq, cfg.n_kv_heads, ctx + steps + 16, cfg.head_dim, step.kv_dtype)
        slots = [c.allocate() for _ in range(n_seq)]
        if interleaved:  # streams grow together: block by block, round robin
            for end in range(16, ctx + steps + 16, 16):
                for s in slots:
                    c.make_writable(s, end - 16, end)
        else:
            for s in slots:
                c.make_writable(s, 0, ctx + steps + 16)
        c.k.normal_()
        c.v.normal_()
        return c

    caches = {"contiguous blocks": cache(False), "interleaved blocks": cache(True)}

    def decode(c: PagedKVCache) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            pos = torch.full((n_seq,), ctx + i, dtype=torch.long)
            step.forward(StepBatch(torch.full((n_seq,), 100, dtype=torch.long), pos, torch.arange(n_seq),
                                   [ctx + i + 1] * n_seq, [], torch.arange(n_seq)), c)
        return n_seq * steps / (time.perf_counter() - t0)

    rounds = 3 if quick else 7
    tps: dict[str, list[float]] = {k: [] for k in caches}
    for _ in range(rounds):
        for name, c in caches.items():
            tps[name].append(decode(c))
    med = {k: statistics.median(v) for k, v in tps.items()}
    return {"kernel_path": llm_step.isa(), "streams": n_seq, "context": ctx,
            **{f"{k} tok/s": v for k, v in med.items()},
            "interleaved_over_contiguous": med["interleaved blocks"] / med["contiguous blocks"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (3,000-token long prompt, 8 requests)")
    args = parser.parse_args(argv)
    info = machine()
    console.print(machine_line(info))
    ind = indirection(args.quick)
    layouts = ("contiguous blocks", "interleaved blocks")
    console.print(markdown_table(["layout (16 streams, 512 context)", "decode tok/s"],
                                 [[k, f"{ind[k + ' tok/s']:.1f}"] for k in layouts]))
    console.print(f"interleaved / contiguous: {ind['interleaved_over_contiguous']:.3f}")
    sp = shared_prefix(args.quick)
    console.print(markdown_table(
        [f"{sp['requests']} requests, {sp['system_tokens']}-token shared prompt", "peak blocks", "TTFT p50 ms",
         "wall s", "hit tokens"],
        [[k, sp[k]["peak_blocks"], f"{sp[k]['ttft_p50_ms']:.0f}", f"{sp[k]['wall_s']:.1f}", sp[k]["hit_tokens"]]
         for k in ("prefix caching on", "prefix caching off")]))
    lc = long_context(args.quick)
    console.print(markdown_table(
        ["Gemma 3, max_model_len 8,192, 16 sequences", "value"],
        [["KV pool (16 x 1,024 positions, fp16)", f"{lc['pool_mib']:.0f} MiB"],
         ["fp32 slot cache, 16 x 1k / 16 x 8k",
          f"{lc['slot_cache_16x1k_mib']:.0f} / {lc['slot_cache_16x8k_mib']:.0f} MiB"],
         ["requests completed", f"{lc['completed']} / {lc['requests']} (one of {lc['long_prompt_tokens']} tokens)"],
         ["preemptions", lc["preemptions"]], ["peak pool usage", f"{lc['peak_usage']:.0%}"],
         ["long prompt TTFT / short TTFT p50", f"{lc['long_ttft_s']:.1f} s / {lc['short_ttft_p50_s']:.1f} s"],
         ["answers identical to a lone run (2 checked)", lc["identical_to_alone_of_2_checked"]],
         ["wall", f"{lc['wall_s']:.1f} s"]]))
    out = write_json("llm_paged", {"machine": info, "indirection": ind, "shared_prefix": sp, "long_context": lc})
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
