"""Benchmark: the C++ quantized LLM kernels (kernels/llm_step.py) vs PyTorch and llama.cpp.

Why: the LLM replica's CPU speed comes from ``CppLlamaStep`` (one C++ call per engine step, Q4_1/Q8_0
weights x int8 activations with AVX-512 VNNI). This script checks the two claims behind it:

* the quantized matmul alone beats the PyTorch alternatives on the model's shapes: fp32 ``F.linear``
  on dequantized weights, ``aten._weight_int8pack_mm`` (int8 per channel) and
  ``aten._weight_int4pack_mm_for_cpu`` (the same Q4_1 numbers, torch's int4 layout);
* the whole step beats llama.cpp (llama-cpp-python, same GGUF, 2 threads) at single-stream decode,
  and reaches the targets for batched decode and prefill; ``LlamaModel`` (fp32 eager) is the
  PyTorch baseline, and "ours, static backend" the same step with barriers between phases
  instead of work stealing (see ``kernels.llm_step.set_backend``).

Method: matmul contenders run in interleaved rounds (a load spike from another process on this
shared machine hits them alike); every call of a layer shape uses the next of the model's 30
layers' matrices, as a decode step does, so weights are not in L1/L2 (but the 30 matrices of the
smaller shapes, 6-17 MB packed, fit the 32 MB L3: their M=1 GB/s exceed DRAM's ~22 GB/s; gate_up's
33 MB and the LM head's 30 MB, one matrix, stream mostly from DRAM). A contender slower than
0.5 s per call gets one sample, and is skipped at the next M when it would take more than 3 s.
Reported: median time per call (and half the inter-quartile range). Decode speed is tokens/s from
wall time over a greedy generation of 64 tokens (argmax and batch building included; llama.cpp
through ``Llama.generate`` with temp=0), median over rounds that alternate the contenders. All
samples go to ``bench/results/llm_kernels.json``.

Usage::

    python -m bench.llm_kernels            # full run (~1.5 minutes on a quiet machine)
    python -m bench.llm_kernels --quick    # fewer rounds and cases
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.report import machine, machine_line, markdown_table, spread, write_json

ROOT = Path(__file__).resolve().parents[1]

SHAPES = {"qkv": (960, 576), "o": (576, 576), "gate_up": (3072, 576), "down": (576, 1536), "lm_head": (49152, 576)}
ROWS = (1, 16, 512)
TARGETS = {"decode_1_tok_s": 130.0, "decode_16_tok_s": 250.0, "prefill_512_tok_s": 800.0}
PROMPT = [504, 3575, 282, 4649, 314, 7042, 30, 378, 3575, 282, 4521, 314, 11452, 28, 284, 260]  # "The capital of..."


def _median_us(samples: list[float]) -> str:
    med, hiqr = spread(samples)
    return f"{med:,.1f} ± {hiqr:,.1f}"


# ------------------------------------------------------------------------------------------------
# Matmuls


def build_matmul_contenders(weights, name: str) -> dict[str, Callable[[torch.Tensor, int], torch.Tensor]]:
    """Callables (x, i) -> y using the i-th (mod #layers) copy of the weight for every contender."""
    from kernels import llm_step

    if name == "lm_head":
        mats = [weights.embedding]
    else:
        attr = {"qkv": "qkv", "o": "o", "gate_up": "gate_up", "down": "down"}[name]
        mats = [getattr(layer, attr) for layer in weights.layers]
    ours = [llm_step.make_linear(w) for w in mats]
    deq = [w.dequantize() for w in mats]
    out: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
        "ours (int8 act, VNNI)": lambda x, i: ours[i % len(ours)](x),
        "torch fp32 F.linear": lambda x, i: F.linear(x, deq[i % len(deq)]),
    }
    # int8 per output channel (symmetric), the format of torch's weight-only int8 CPU kernel
    i8 = []
    for w in deq:
        s = (w.abs().amax(1) / 127.0).clamp_min(1e-12)
        i8.append((torch.round(w / s[:, None]).clamp(-127, 127).to(torch.int8), s))
    out["torch _weight_int8pack_mm"] = lambda x, i: torch.ops.aten._weight_int8pack_mm(x, *i8[i % len(i8)])
    if name != "lm_head" and hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"):
        # The same Q4_1 numbers in torch's int4 layout: w = (q - 8) * scale + zero, zero = min + 8 * scale
        i4 = []
        for w in mats:
            n, k = w.shape
            qw = w.qweight.view(n, k // 32, 16)
            vals = torch.cat([qw & 15, qw >> 4], -1).reshape(n, k).to(torch.int32)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(vals, 2)
            sz = torch.stack([w.scales, w.mins + 8 * w.scales], -1).transpose(0, 1).contiguous()
            i4.append((packed, sz))
        out["torch _weight_int4pack_mm_for_cpu"] = lambda x, i: torch.ops.aten._weight_int4pack_mm_for_cpu(
            x, i4[i % len(i4)][0], 32, i4[i % len(i4)][1]
        )
    return out


def bench_matmuls(weights, rows: tuple[int, ...], rounds: int, shapes: list[str]) -> list[dict[str, Any]]:
    from kernels import llm_step

    results = []
    for name in shapes:
        n, k = SHAPES[name]
        contenders = build_matmul_contenders(weights, name)
        packed_bytes = llm_step.make_linear(
            weights.embedding if name == "lm_head" else getattr(weights.layers[0], name)
        ).nbytes
        prev: dict[str, tuple[int, float]] = {}  # contender -> (M, median seconds) of the last M
        for m in rows:
            call = _Caller(torch.randn(m, k))
            calls = {}
            samples: dict[str, list[float]] = {}
            for cname, fn in contenders.items():
                # Skip a contender whose time at the previous M, scaled by rows, predicts > 3 s per
                # call (torch's int8 kernel on the LM head: ~1 s at M=16).
                if cname in prev and prev[cname][1] * m / prev[cname][0] > 3.0:
                    continue
                first = _time_once(functools.partial(call, fn))  # warm-up
                if first > 0.5:  # very slow: this single sample is all we take
                    samples[cname] = [first * 1e6]
                    continue
                call(fn)
                per = min(_time_once(functools.partial(call, fn)) for _ in range(3))
                calls[cname] = max(1, min(200, int(0.01 / max(per, 1e-7))))  # ~10 ms per sample
                samples[cname] = []
            for _ in range(rounds):
                for cname, fn in contenders.items():
                    if cname not in calls:
                        continue
                    t0 = time.perf_counter()
                    for _ in range(calls[cname]):
                        call(fn)
                    samples[cname].append((time.perf_counter() - t0) / calls[cname] * 1e6)
            for cname, s in samples.items():
                prev[cname] = (m, statistics.median(s) / 1e6)
            for cname, s in samples.items():
                med = statistics.median(s)
                results.append(
                    {
                        "shape": name,
                        "n": n,
                        "k": k,
                        "m": m,
                        "contender": cname,
                        "us": s,
                        "median_us": med,
                        "gflops": 2 * m * n * k / med / 1e3,
                        "weight_gb_s": packed_bytes / med / 1e3 if cname.startswith("ours") else None,
                    }
                )
            print(
                f"  {name:8s} M={m:4d}: "
                + ", ".join(f"{c.split(' (')[0]} {statistics.median(s):,.0f}us" for c, s in samples.items()),
                flush=True,
            )
        del contenders
        gc.collect()
    return results


class _Caller:
    """Calls a contender on x with a new layer index every time (weights come from DRAM)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.i = 0

    def __call__(self, fn: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
        self.i += 1
        return fn(self.x, self.i)


def _time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# Whole model


def _decode_batch(slots: list[int], positions: list[int], tokens: list[int]):
    from server.llm.llama import StepBatch

    n = len(slots)
    return StepBatch(
        token_ids=torch.tensor(tokens, dtype=torch.int64),
        positions=torch.tensor(positions, dtype=torch.int64),
        decode_slots=torch.tensor(slots, dtype=torch.int64),
        decode_lengths=[p + 1 for p in positions],
        prefills=[],
        sample_rows=torch.arange(n, dtype=torch.int64),
    )


def _prefill_batch(slot: int, start: int, tokens: list[int], sample_last: bool = True):
    from server.llm.llama import PrefillSegment, StepBatch

    n = len(tokens)
    return StepBatch(
        token_ids=torch.tensor(tokens, dtype=torch.int64),
        positions=torch.arange(start, start + n, dtype=torch.int64),
        decode_slots=torch.empty(0, dtype=torch.int64),
        decode_lengths=[],
        prefills=[PrefillSegment(slot=slot, start=start, length=n, row=0)],
        sample_rows=torch.tensor([n - 1] if sample_last else [], dtype=torch.int64),
    )


def generate_tok_s(model, cfg, n_tokens: int, n_seqs: int = 1) -> float:
    """Greedy generation of n_tokens per sequence after a 16-token prompt; tokens/s from wall time."""
    from server.llm.kv_cache import PagedKVCache

    cache = PagedKVCache.with_slots(cfg.n_layers, n_seqs, cfg.n_kv_heads, len(PROMPT) + n_tokens + 1, cfg.head_dim,
                                     forward=model)
    nxt = []
    for s in range(n_seqs):
        prompt = PROMPT[s % len(PROMPT) :] + PROMPT[: s % len(PROMPT)]  # a different prompt per slot
        nxt.append(int(model.forward(_prefill_batch(s, 0, prompt), cache)[0].argmax()))
    slots = list(range(n_seqs))
    t0 = time.perf_counter()
    for i in range(n_tokens):
        logits = model.forward(_decode_batch(slots, [len(PROMPT) + i] * n_seqs, nxt), cache)
        nxt = logits.argmax(-1).tolist()
    return n_seqs * n_tokens / (time.perf_counter() - t0)


def prefill_tok_s(model, cfg, n: int) -> float:
    from server.llm.kv_cache import PagedKVCache

    cache = PagedKVCache.with_slots(cfg.n_layers, 1, cfg.n_kv_heads, n, cfg.head_dim, forward=model)
    tokens = (PROMPT * (n // len(PROMPT) + 1))[:n]
    t0 = time.perf_counter()
    model.forward(_prefill_batch(0, 0, tokens), cache)
    return n / (time.perf_counter() - t0)


def llamacpp_contender(path: Path, threads: int):
    try:
        import llama_cpp
    except ImportError:
        return None
    llm = llama_cpp.Llama(model_path=str(path), n_threads=threads, n_threads_batch=threads, n_ctx=1024, verbose=False)

    def decode(n_tokens: int) -> float:
        llm.reset()
        gen = llm.generate(PROMPT, temp=0.0, top_k=1, reset=True)
        next(gen)  # the prompt is evaluated and the first token sampled
        t0 = time.perf_counter()
        for i, _ in enumerate(gen):
            if i + 1 == n_tokens:
                break
        dt = time.perf_counter() - t0
        gen.close()
        return n_tokens / dt

    def prefill(n: int) -> float:
        llm.reset()
        tokens = (PROMPT * (n // len(PROMPT) + 1))[:n]
        t0 = time.perf_counter()
        llm.eval(tokens)
        return n / (time.perf_counter() - t0)

    return decode, prefill


def bench_model(weights, rounds: int, threads: int, with_llamacpp: bool, with_torch: bool) -> dict[str, Any]:
    from kernels import llm_step
    from server.llm.backends.cpu_int4 import CppLlamaStep
    from server.llm.llama import LlamaModel

    cfg = weights.config
    ours = CppLlamaStep(weights, num_threads=threads)

    def with_backend(name: str, fn: Callable[[], float]) -> Callable[[], float]:
        def run() -> float:
            llm_step.set_backend(name)
            try:
                return fn()
            finally:
                llm_step.set_backend(default)

        return run

    default = llm_step.get_backend()
    contenders: dict[str, dict[str, Callable[[], float]]] = {}
    for backend in (default, *(b for b in ("steal", "static") if b != default)):
        name = "ours (CppLlamaStep)" if backend == default else f"ours, {backend} backend"
        contenders[name] = {
            "decode_1_tok_s": with_backend(backend, lambda: generate_tok_s(ours, cfg, 64)),
            "decode_16_tok_s": with_backend(backend, lambda: generate_tok_s(ours, cfg, 32, n_seqs=16)),
            "prefill_512_tok_s": with_backend(backend, lambda: prefill_tok_s(ours, cfg, 512)),
        }
    ours_int8 = CppLlamaStep(weights, num_threads=threads, activations="int8")  # the faster, less accurate mode
    contenders["ours, int8 activations"] = {
        "decode_1_tok_s": lambda: generate_tok_s(ours_int8, cfg, 64),
        "decode_16_tok_s": lambda: generate_tok_s(ours_int8, cfg, 32, n_seqs=16),
        "prefill_512_tok_s": lambda: prefill_tok_s(ours_int8, cfg, 512),
    }
    if with_torch:
        ref = LlamaModel(weights, lambda w: (lambda W: lambda x: F.linear(x, W))(w.dequantize()))
        contenders["torch fp32 LlamaModel"] = {
            "decode_1_tok_s": lambda: generate_tok_s(ref, cfg, 16),
            "decode_16_tok_s": lambda: generate_tok_s(ref, cfg, 8, n_seqs=16),
            "prefill_512_tok_s": lambda: prefill_tok_s(ref, cfg, 512),
        }
    if with_llamacpp:
        lc = llamacpp_contender(weights.path, threads)
        if lc is not None:
            decode, prefill = lc
            contenders["llama.cpp (llama-cpp-python)"] = {
                "decode_1_tok_s": lambda: decode(64),
                "prefill_512_tok_s": lambda: prefill(512),
            }
    samples: dict[str, dict[str, list[float]]] = {c: {k: [] for k in v} for c, v in contenders.items()}
    for fns in contenders.values():  # warm-up (allocations, llama.cpp graph, caches)
        for fn in fns.values():
            fn()
    for r in range(rounds):
        for c, fns in contenders.items():
            for key, fn in fns.items():
                samples[c][key].append(fn())
        print(
            f"  round {r + 1}/{rounds}: "
            + "; ".join(
                f"{c.split(' (')[0]} " + ", ".join(f"{k.split('_tok')[0]} {v[-1]:.0f}" for k, v in s.items())
                for c, s in samples.items()
            ),
            flush=True,
        )
    # per-phase breakdown of our single-token decode (thread 0's wall time between barriers)
    ours.set_profiling(True)
    ours.profile(reset=True)
    generate_tok_s(ours, cfg, 64)
    prof = ours.profile(reset=True)
    ours.set_profiling(False)
    steps = prof.pop("steps")
    return {
        "samples": samples,
        "ours_packed_weight_bytes": ours.packed_bytes,
        "ours_phase_ms_per_step_incl_prompt": {k: v * 1e3 / steps for k, v in prof.items()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, M in {1, 16} only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-llamacpp", action="store_true")
    parser.add_argument("--no-torch-model", action="store_true", help="skip the (slow) fp32 LlamaModel")
    parser.add_argument("--skip-matmuls", action="store_true")
    args = parser.parse_args(argv)

    from kernels import llm_step
    from server.llm.gguf_weights import load_weights

    if not llm_step.available():
        raise SystemExit("kernels.cpp._llm_step is not built: python setup.py build_ext --inplace")
    torch.set_num_threads(args.threads)
    llm_step.set_num_threads(args.threads)
    info = machine()
    info.update(threads=args.threads, torch=torch.__version__, avx512_vnni=llm_step.has_avx512_vnni())
    print(machine_line(info), flush=True)
    weights = load_weights()
    rounds = 3 if args.quick else 7

    matmuls: list[dict[str, Any]] = []
    if not args.skip_matmuls:
        print("matmuls (median us per call):", flush=True)
        matmuls = bench_matmuls(weights, (1, 16) if args.quick else ROWS, rounds, list(SHAPES))
    print("whole model:", flush=True)
    model = bench_model(weights, 2 if args.quick else 3, args.threads, not args.no_llamacpp, not args.no_torch_model)

    # ---- report
    if matmuls:
        names = list(dict.fromkeys(r["contender"] for r in matmuls))
        rows = []
        for shape in SHAPES:
            for m in sorted({r["m"] for r in matmuls}):
                cell = {r["contender"]: r for r in matmuls if r["shape"] == shape and r["m"] == m}
                if not cell:
                    continue
                ours = cell[names[0]]["median_us"]
                row = [f"{shape} {SHAPES[shape][0]}x{SHAPES[shape][1]}", m]
                for c in names:
                    row.append(_median_us(cell[c]["us"]) if c in cell else "-")
                best_other = min((cell[c]["median_us"] for c in names[1:] if c in cell), default=float("nan"))
                gbs = cell[names[0]]["weight_gb_s"]
                row += [f"{best_other / ours:.1f}x", f"{gbs:.1f}" if m == 1 else f"{cell[names[0]]['gflops']:.0f}"]
                rows.append(row)
        print("\n### Quantized matmul, µs per call (median ± half IQR); layer weights rotate over the 30 layers\n")
        print(markdown_table(["shape NxK", "M", *names, "ours vs best torch", "ours GB/s (M=1) / GFLOP/s"], rows))

    sam = model["samples"]
    mrows = []
    for c, s in sam.items():
        mrows.append([c] + [f"{spread(s[k])[0]:,.0f}" if k in s else "-" for k in TARGETS])
    mrows.append(["target"] + [f"≥ {v:.0f}" for v in TARGETS.values()])
    print(f"\n### Whole model, tokens/s (median of rounds), {args.threads} threads\n")
    print(markdown_table(["", "decode 1 seq", "decode 16 seqs (aggregate)", "prefill 512"], mrows))
    phases = model["ours_phase_ms_per_step_incl_prompt"]
    print("\nours, single-token decode, ms per step by phase: " + ", ".join(f"{k} {v:.3f}" for k, v in phases.items()))
    ours_s = sam["ours (CppLlamaStep)"]
    checks = {k: spread(ours_s[k])[0] >= v for k, v in TARGETS.items()}
    lc = sam.get("llama.cpp (llama-cpp-python)")
    if lc:
        checks["decode_1_beats_llamacpp"] = spread(ours_s["decode_1_tok_s"])[0] > spread(lc["decode_1_tok_s"])[0]
    print("\ntargets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in checks.items()))
    payload = {"machine": info, "matmuls": matmuls, "model": model, "targets": TARGETS, "checks": checks}
    path = write_json("llm_kernels", payload)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return payload


if __name__ == "__main__":
    main()
