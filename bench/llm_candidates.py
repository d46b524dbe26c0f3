"""Benchmark: CPU candidates for the LLM step, single stream, same GGUF (SmolLM2-135M), 2 threads.

Why: which CPU path to serve with is measured here rather than assumed. Candidates:

* ONNX Runtime on our ONNX export (server/llm/backends/onnx_export.py, full 30 layers, head on the last
  token only): (a) fp32; (b) int8 ``quantize_dynamic`` (per-channel int8 weights, uint8
  activations per call); (c) int4 ``MatMulNBits`` from ORT's quantizer (block 32, asymmetric;
  head int8), when ``onnxruntime.quantization.matmul_nbits_quantizer`` imports (needs ``onnx_ir``);
  (c') ``MatMulNBits`` holding the GGUF's own Q4_1 / Q8_0 blocks (exact weights, float zero points);
* our PyTorch forward (server/llm/llama.py ``LlamaModel``): (d) linears as
  ``aten._weight_int8pack_mm`` (int8 per output channel of the dequantized weights); (e) fp32;
* (f) our C++ step (``build_forward("cpu-int4")``), when ``kernels.llm_step`` is built.

Method: decode = tokens/s of greedy decoding ``--decode-tokens`` tokens after a 16-token prompt
(argmax included, prompt excluded); prefill = tokens/s of one 512-token prompt (one forward,
next-token logits only). Candidates alternate within each round (a load spike on this shared
machine hits them alike); reported: the median over rounds. "greedy = fp32" counts how many of
the first decoded tokens equal the PyTorch fp32 reference's. "MB of weights" is what the
candidate holds: ONNX initializers (incl. the fp32 embedding table the Gather reads and the RoPE
tables), PyTorch tensors, or the C++ packed bytes. Exported graphs are cached under
``$STACKSERVE_DATA_DIR/onnx`` (default ``.data/onnx``). All samples go to
``bench/results/llm_candidates.json``.

Usage::

    python -m bench.llm_candidates            # full run: ~6 min on 2 cores (+~1 min for the first export)
    python -m bench.llm_candidates --quick    # ~3 min: 2 rounds, 8 decode tokens, no (c')
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.report import machine, machine_line, markdown_table, spread, write_json

ROOT = Path(__file__).resolve().parents[1]

PROMPT = [504, 3575, 282, 4649, 314, 7042, 30, 378, 3575, 282, 4521, 314, 11452, 28, 284, 260]
PREFILL = 512


@dataclass
class Candidate:
    name: str
    weights: str
    nbytes: int
    prefill: Callable[[list[int]], int]  # fresh sequence: prompt -> next token (argmax)
    decode: Callable[[int], int]  # one token -> next token
    decode_tok_s: list[float] = field(default_factory=list)
    prefill_tok_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# ONNX Runtime candidates


def ort_candidate(name: str, weights_desc: str, path: Path, threads: int) -> Candidate:
    from bench.candidates.onnx_quantize import weight_bytes
    from bench.candidates.onnx_runtime_step import OrtLlamaStep

    step = OrtLlamaStep(path, threads=threads)
    return Candidate(
        name,
        weights_desc,
        weight_bytes(path),
        prefill=lambda ids: int(step.prefill_logits(ids)[-1].argmax()),
        decode=lambda t: int(step.step([t])[-1].argmax()),
    )


def onnx_files(weights, work: Path, want_int4: bool, want_gguf: bool) -> dict[str, Path]:
    """Export / quantize once; files are reused while the GGUF and this module's exporter match."""
    from bench.candidates import onnx_quantize
    from server.llm.backends import onnx_export

    src = Path(onnx_export.__file__).read_bytes() + Path(onnx_quantize.__file__).read_bytes()
    st = os.stat(weights.path)
    key = hashlib.sha256(src + f"{weights.path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:10]
    work.mkdir(parents=True, exist_ok=True)
    files = {"fp32": work / f"step-{key}-fp32.onnx", "int8": work / f"step-{key}-int8.onnx"}
    if want_int4:
        files["int4"] = work / f"step-{key}-int4.onnx"
    if want_gguf:
        files["gguf"] = work / f"step-{key}-gguf.onnx"
    makers = {
        "fp32": lambda p: onnx_export.export_onnx(weights, p, last_logits_only=True),
        "int8": lambda p: onnx_quantize.quantize_onnx_int8(files["fp32"], p),
        "int4": lambda p: onnx_quantize.quantize_onnx_int4(files["fp32"], p),
        "gguf": lambda p: onnx_quantize.gguf_matmulnbits(weights, files["fp32"], p),
    }
    for kind, path in files.items():
        if not path.exists():
            t0 = time.perf_counter()
            tmp = path.with_suffix(".tmp.onnx")
            makers[kind](tmp)
            tmp.replace(path)
            print(f"  {kind}: {path.name} in {time.perf_counter() - t0:.0f} s", flush=True)
            gc.collect()
    return files


# ------------------------------------------------------------------------------------------------
# PyTorch / C++ candidates (our StepBatch forward with a one-slot cache)


def step_candidate(name: str, weights_desc: str, nbytes: int, forward, cfg) -> Candidate:
    from server.llm.kv_cache import PagedKVCache
    from server.llm.llama import PrefillSegment, StepBatch

    cache = PagedKVCache.with_slots(cfg.n_layers, 1, cfg.n_kv_heads, PREFILL + 256, cfg.head_dim, forward=forward)
    state = {"len": 0}

    def prefill(ids: list[int]) -> int:
        n = len(ids)
        batch = StepBatch(
            torch.tensor(ids),
            torch.arange(n),
            torch.empty(0, dtype=torch.long),
            [],
            [PrefillSegment(0, 0, n, 0)],
            torch.tensor([n - 1]),
        )
        state["len"] = n
        return int(forward(batch, cache)[0].argmax())

    def decode(t: int) -> int:
        p = state["len"]
        batch = StepBatch(torch.tensor([t]), torch.tensor([p]), torch.tensor([0]), [p + 1], [], torch.tensor([0]))
        state["len"] = p + 1
        return int(forward(batch, cache)[0].argmax())

    return Candidate(name, weights_desc, nbytes, prefill, decode)


def torch_candidates(weights) -> list[Candidate]:
    from server.llm.llama import LlamaModel

    cfg = weights.config
    emb_bytes = weights.embedding.qweight.nbytes + weights.embedding.scales.nbytes  # embed() lookup table
    sizes = {"fp32": emb_bytes, "int8": emb_bytes}

    def fp32_linear(w):
        W = w.dequantize()
        sizes["fp32"] += W.nbytes
        return lambda x: F.linear(x, W)

    def int8pack_linear(w):
        W = w.dequantize()
        s = (W.abs().amax(1) / 127.0).clamp_min(1e-12)
        q = torch.round(W / s[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        sizes["int8"] += q.nbytes + s.nbytes
        return lambda x: torch.ops.aten._weight_int8pack_mm(x, q, s)

    int8 = LlamaModel(weights, int8pack_linear)
    fp32 = LlamaModel(weights, fp32_linear)
    sizes = {k: v + 4 * cfg.hidden * (2 * cfg.n_layers + 1) for k, v in sizes.items()}  # norms
    return [
        step_candidate(
            "(d) PyTorch, aten._weight_int8pack_mm", "int8 per channel (weight-only)", sizes["int8"], int8.forward, cfg
        ),
        step_candidate("(e) PyTorch fp32 (LlamaModel)", "fp32 (dequantized GGUF)", sizes["fp32"], fp32.forward, cfg),
    ]


def cpp_candidate(weights, threads: int) -> Candidate | None:
    from kernels import llm_step
    from server.llm.backends import build_forward

    if not llm_step.available():
        return None
    forward, _ = build_forward("cpu-int4", weights, threads)
    return step_candidate(
        "(f) ours C++ (cpu-int4)",
        "GGUF Q4_1 layers + Q8_0 head, as they are",
        forward.__self__.packed_bytes,
        forward,
        weights.config,
    )


# ------------------------------------------------------------------------------------------------


def run_round(c: Candidate, n_decode: int, record_tokens: bool) -> None:
    nxt = c.prefill(PROMPT)
    toks = [nxt]
    t0 = time.perf_counter()
    for _ in range(n_decode):
        nxt = c.decode(nxt)
        toks.append(nxt)
    c.decode_tok_s.append(n_decode / (time.perf_counter() - t0))
    if record_tokens:
        c.tokens = toks
    long_prompt = (PROMPT * (PREFILL // len(PROMPT) + 1))[:PREFILL]
    t0 = time.perf_counter()
    c.prefill(long_prompt)
    c.prefill_tok_s.append(PREFILL / (time.perf_counter() - t0))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 8 decode tokens, no exact-GGUF ORT graph")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--decode-tokens", type=int, default=None)
    parser.add_argument("--work-dir", type=Path, default=None, help="where exported ONNX graphs are cached")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    n_decode = args.decode_tokens or (8 if args.quick else 32)

    from bench.candidates.onnx_quantize import int4_available
    from server.config import default_data_dir
    from server.llm.gguf_weights import load_weights

    torch.set_num_threads(args.threads)
    info = machine()
    info.update(threads=args.threads, torch=torch.__version__)
    print(machine_line(info), flush=True)
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        raise SystemExit("onnxruntime is not installed: pip install -e '.[bench]'") from None
    weights = load_weights()
    int4_ok, int4_why = int4_available()
    print("exporting / quantizing (cached):", flush=True)
    files = onnx_files(weights, args.work_dir or default_data_dir() / "onnx", int4_ok, not args.quick)

    cands: list[Candidate] = [
        ort_candidate("(a) ONNX Runtime fp32", "fp32", files["fp32"], args.threads),
        ort_candidate(
            "(b) ONNX Runtime int8 (quantize_dynamic)",
            "int8 per channel, uint8 act. per call",
            files["int8"],
            args.threads,
        ),
    ]
    if "int4" in files:
        cands.append(
            ort_candidate(
                "(c) ONNX Runtime int4 MatMulNBits",
                "int4 block 32 (re-quantized), int8 head",
                files["int4"],
                args.threads,
            )
        )
    if "gguf" in files:
        cands.append(
            ort_candidate(
                "(c') ONNX Runtime MatMulNBits, GGUF blocks",
                "GGUF Q4_1 / Q8_0 as they are",
                files["gguf"],
                args.threads,
            )
        )
    cands += torch_candidates(weights)
    cpp = cpp_candidate(weights, args.threads)
    if cpp is not None:
        cands.append(cpp)
    skipped = {}
    if not int4_ok:
        skipped["(c) ONNX Runtime int4 MatMulNBits"] = int4_why
    if cpp is None:
        skipped["(f) ours C++ (cpu-int4)"] = "kernels.llm_step is not built (python setup.py build_ext --inplace)"

    for c in cands:  # warm-up: allocations, ORT's first-run prepacking
        c.decode(c.prefill(PROMPT))
    for r in range(rounds):
        for c in cands:
            run_round(c, n_decode, record_tokens=r == 0)
        print(
            f"  round {r + 1}/{rounds}: "
            + "; ".join(f"{c.name.split(' ')[0]} {c.decode_tok_s[-1]:.1f}/{c.prefill_tok_s[-1]:.0f}" for c in cands),
            flush=True,
        )

    ref = next(c for c in cands if c.name.startswith("(e)")).tokens
    rows = []
    for c in cands:
        same = next((i for i, (a, b) in enumerate(zip(c.tokens, ref, strict=True)) if a != b), len(ref))
        dm, dh = spread(c.decode_tok_s)
        pm, ph = spread(c.prefill_tok_s)
        rows.append(
            [
                c.name,
                c.weights,
                f"{dm:.1f} ± {dh:.1f}",
                f"{pm:.0f} ± {ph:.0f}",
                f"{c.nbytes / 1e6:.0f}",
                f"{same}/{len(ref)}",
            ]
        )
    print(f"\n### CPU candidates, single stream, {args.threads} threads (median ± half IQR of {rounds} rounds)\n")
    print(
        markdown_table(
            [
                "candidate",
                "weights",
                "decode tok/s",
                f"prefill {PREFILL} tok/s",
                "MB of weights",
                "greedy = fp32 (first tokens)",
            ],
            rows,
        )
    )
    for name, why in skipped.items():
        print(f"\nskipped {name}: {why}")
    payload = {
        "machine": info,
        "rounds": rounds,
        "decode_tokens": n_decode,
        "prefill_tokens": PREFILL,
        "candidates": [
            {
                "name": c.name,
                "weights": c.weights,
                "weight_bytes": c.nbytes,
                "decode_tok_s": c.decode_tok_s,
                "prefill_tok_s": c.prefill_tok_s,
                "decode_tok_s_median": statistics.median(c.decode_tok_s),
                "prefill_tok_s_median": statistics.median(c.prefill_tok_s),
                "greedy_tokens": c.tokens,
            }
            for c in cands
        ],
        "reference_tokens": ref,
        "skipped": skipped,
    }
    path = write_json("llm_candidates", payload)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return payload


if __name__ == "__main__":
    main()
