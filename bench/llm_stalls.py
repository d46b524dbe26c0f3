"""Do running streams stall while new prompts prefill? The gap between a stream's tokens under
arrivals, with a fixed prefill budget per step and with the time-budgeted one (llm.prefill_stall_factor).

The workload of ``vllm bench serve``'s random dataset, in process: `concurrency` clients each send
requests back to back, a unique ~256-token prompt and 128 output tokens (``ignore_eos``), so new
prompts keep arriving while the other streams decode. Reported per setting: the gap between
consecutive tokens of a stream (p50, p99 and their ratio: the target is p99 ≤ 2x p50), TTFT p50 /
p99 and output tokens/s; settings run interleaved, medians over rounds; the CPU and the kernel path
are printed (``--avx2`` forces our AVX2 path on a CPU with AVX-512, to measure that tier).

    python -m bench.llm_stalls [--quick] [--avx2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import numpy as np
from rich.console import Console

from bench.report import machine, machine_line, markdown_table, write_json
from server.llm.params import SamplingParams

console = Console(stderr=True)
SETTINGS = {"fixed budget (256 tokens/step)": None, "time budget (stall factor 2)": 2.0}


def prompt_ids(i: int, n: int = 256) -> list[int]:
    g = np.random.default_rng(1000 + i)
    return [int(t) for t in g.integers(100, 40000, n)]


async def load(engine, conc: int, per_client: int, max_tokens: int, offset: int) -> dict:
    gaps: list[float] = []
    ttft: list[float] = []
    tokens = 0
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)

    async def client(c: int) -> None:
        nonlocal tokens
        for j in range(per_client):
            t0 = time.perf_counter()
            stamps: list[float] = []
            async for chunk in engine.generate(prompt_ids(offset + c * per_client + j), params):
                now = time.perf_counter()
                stamps += [now] * len(chunk.token_ids)
            tokens += len(stamps)
            if stamps:
                ttft.append(stamps[0] - t0)
                gaps.extend(np.diff(np.unique(stamps)).tolist())

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(conc)))
    wall = time.perf_counter() - t0
    g = np.array(gaps) * 1e3
    return {"gap_p50_ms": float(np.percentile(g, 50)), "gap_p99_ms": float(np.percentile(g, 99)),
            "ttft_p50_ms": float(np.percentile(ttft, 50) * 1e3), "ttft_p99_ms": float(np.percentile(ttft, 99) * 1e3),
            "output_tok_s": tokens / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, fewer requests")
    parser.add_argument("--avx2", action="store_true", help="force our AVX2 kernel path (on an AVX-512 CPU)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16])
    args = parser.parse_args(argv)
    from kernels import llm_step
    from server.config import load_settings
    from server.llm.engine import LLMEngine

    info = machine()
    if args.avx2:
        llm_step.native().set_force_avx2(True)
    path = llm_step.isa() if llm_step.available() else "torch"
    console.print(machine_line(info) + f"; kernel path: {path}")
    base = load_settings(None).llm
    engines = {name: LLMEngine(base.model_copy(update={"prefill_stall_factor": f})).start()
               for name, f in SETTINGS.items()}
    rounds = 1 if args.quick else 3
    results: dict[tuple[str, int], list[dict]] = {}
    try:
        for r in range(rounds):
            for conc in args.concurrency:
                per_client = 2 if args.quick else 3
                for name, eng in engines.items():  # interleaved: drift in machine load hits both alike
                    res = asyncio.run(load(eng, conc, per_client, 128, offset=r * 1000 + conc * 100))
                    results.setdefault((name, conc), []).append(res)
                    console.print(f"round {r + 1} c={conc} {name}: gap p50 {res['gap_p50_ms']:.0f} ms, "
                                  f"p99 {res['gap_p99_ms']:.0f} ms, TTFT p50 {res['ttft_p50_ms']:.0f} ms, "
                                  f"{res['output_tok_s']:.1f} tok/s")
    finally:
        for eng in engines.values():
            eng.shutdown()
    rows = []
    for (name, conc), rs in results.items():
        med = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
        ratio = med["gap_p99_ms"] / med["gap_p50_ms"]
        rows.append({"setting": name, "concurrency": conc, **med, "p99_over_p50": ratio})
    console.print(markdown_table(
        ["setting", "c", "gap p50 ms", "gap p99 ms", "p99/p50", "TTFT p50 ms", "TTFT p99 ms", "out tok/s"],
        [[r["setting"], r["concurrency"], f"{r['gap_p50_ms']:.0f}", f"{r['gap_p99_ms']:.0f}",
          f"{r['p99_over_p50']:.1f}", f"{r['ttft_p50_ms']:.0f}", f"{r['ttft_p99_ms']:.0f}",
          f"{r['output_tok_s']:.1f}"] for r in sorted(rows, key=lambda r: (r["concurrency"], r["setting"]))]))
    out = write_json("llm_stalls_avx2" if args.avx2 else "llm_stalls",
                     {"machine": info, "kernel_path": path, "rows": rows, "target_p99_over_p50": 2.0})
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
