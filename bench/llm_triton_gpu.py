"""GPU benchmark: the Triton LLM kernels (``kernels/triton``) against PyTorch on SmolLM2-135M shapes.

Why: the quantized decode path promises to beat the obvious GPU alternative, a float16 cuBLAS matmul
on dequantized weights, by reading 4 or 8 bits per weight instead of 16. This script measures exactly
that on the model's linear layers (hidden 576, 9 query / 3 KV heads of 64, FFN 1536, vocab 49152)
for M = 1 (decode), 16 (small batch) and 256 (prefill), plus RMSNorm and rotary embedding against
their PyTorch counterparts.

Method: first every kernel is checked against its PyTorch reference on every benchmarked shape
(float16, plus float32 and bfloat16 on one shape, plus NaN propagation); any mismatch exits 1 before
timing. Then ``triton.testing.do_bench`` times each contender (25 ms warm-up, 100 ms of repetitions,
L2 cache flushed before each call, so weights come from HBM as they do when 30 layers take turns);
reported: median microseconds +- half the 20-80 percentile range, the speed ratio torch / Triton
from the same run, and the bandwidth the Triton kernel achieved (bytes it must read and write /
median time). Each call includes its Python launch cost, as eager serving pays it. Results go to
``bench/results/llm_triton_gpu.json``.

Usage, from the repository root (it imports ``kernels.triton`` and ``bench.report``, so the GPU machine
needs the checkout, ``kernels/`` and ``bench/`` at least, not just this file)::

    python -m bench.llm_triton_gpu               # CUDA: checks + timings (under a minute on an H100)
    python -m bench.llm_triton_gpu --check-only  # CUDA: correctness only (the gpu unit test runs this)
    python -m bench.llm_triton_gpu --smoke       # CPU: tiny shapes in the Triton interpreter; tests
                                                 # this script itself, timings meaningless, no JSON

Without CUDA (and without ``--smoke``) it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB = 576, 9, 3, 64, 1536, 49152
THETA, EPS = 100000.0, 1e-5
#: (N, K) of every quantized linear layer of SmolLM2-135M.
LINEARS = {
    "qkv_proj": (HIDDEN + 2 * KV_HEADS * HEAD_DIM, HIDDEN),
    "o_proj": (HIDDEN, HIDDEN),
    "gate_up_proj": (2 * FFN, HIDDEN),
    "down_proj": (HIDDEN, FFN),
    "lm_head": (VOCAB, HIDDEN),
}
M_VALUES = (1, 16, 256)
#: --smoke: the same code paths (GEMV and tl.dot, masked tiles) on shapes the interpreter runs in seconds.
SMOKE_LINEARS = {"qkv_proj": (160, 64), "down_proj": (64, 96)}
SMOKE_M_VALUES = (1, 16)
#: Allowed |error| per unit of sum(|x| |w|) (see tests/unit/test_triton_kernels.py).
MATMUL_RTOL = {"float32": 1e-4, "float16": 4e-3, "bfloat16": 2e-2}


@dataclass
class Row:
    """One benchmarked (kernel, shape, M): microseconds per call, Triton and the PyTorch baseline."""

    kernel: str
    shape: str
    m: int
    triton_us: float
    triton_spread_us: float
    torch_us: float
    torch_spread_us: float
    baseline: str
    triton_bytes: int

    @property
    def speedup(self) -> float:
        return self.torch_us / self.triton_us

    @property
    def gbps(self) -> float:
        return self.triton_bytes / (self.triton_us * 1e-6) / 1e9


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check-only", action="store_true", help="correctness checks only, no timing")
    parser.add_argument("--smoke", action="store_true", help="CPU interpreter, tiny shapes: test the script")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/llm_triton_gpu.json)")
    return parser.parse_args(argv)


def make_timer(device: str) -> Callable[[Callable[[], Any]], tuple[float, float]]:
    """Return fn -> (median us, half the 20-80 percentile range in us)."""
    if device == "cuda":
        from triton.testing import do_bench

        def cuda_time(fn: Callable[[], Any]) -> tuple[float, float]:
            p50, p20, p80 = do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
            return p50 * 1e3, (p80 - p20) / 2 * 1e3

        return cuda_time

    def cpu_time(fn: Callable[[], Any]) -> tuple[float, float]:
        fn()
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e6)
        return statistics.median(samples), (max(samples) - min(samples)) / 2

    return cpu_time


class Checks:
    """Collects correctness failures so that one run reports all of them."""

    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failed: list[str] = []

    def record(self, what: str, ok: bool, detail: str = "") -> None:
        (self.passed if ok else self.failed).append(what if ok else f"{what}: {detail}")


def check_matmul(checks: Checks, what: str, got: Any, want: Any, x: Any, w: Any) -> None:
    """Triton vs reference within MATMUL_RTOL * (|x| @ |w|^T), NaN in the same places."""
    import torch

    rtol = MATMUL_RTOL[str(x.dtype).removeprefix("torch.")]
    if got.shape != want.shape or got.dtype != want.dtype:
        checks.record(what, False, f"got {got.dtype} {tuple(got.shape)}, want {want.dtype} {tuple(want.shape)}")
        return
    if not torch.equal(got.isnan(), want.isnan()):
        checks.record(what, False, "NaN in different places")
        return
    bound = rtol * (x.float().nan_to_num(0.0).abs() @ w.abs().T) + 1e-6
    excess = ((got.float() - want.float()).abs() - bound).nan_to_num(-1.0)
    worst = float(excess.max()) if excess.numel() else -1.0
    checks.record(what, worst <= 0, f"error exceeds the bound by {worst:.3g}")


def check_close(checks: Checks, what: str, got: Any, want: Any, rtol: float, atol: float) -> None:
    import torch

    try:
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol, equal_nan=True)
    except AssertionError as e:
        checks.record(what, False, str(e).splitlines()[0] + " " + " ".join(str(e).splitlines()[2:4]))
    else:
        checks.record(what, True)


def run_checks(kt: Any, device: str, linears: dict[str, tuple[int, int]], m_values: tuple[int, ...]) -> Checks:
    """Every kernel vs its reference on every benchmarked shape; extra dtypes and NaN on one shape."""
    import torch

    checks = Checks()
    gen = torch.Generator(device=device).manual_seed(0)
    first = next(iter(linears))
    for name, (n, k) in linears.items():
        w = torch.randn(n, k, device=device, generator=gen) * 0.05
        q4, q8 = kt.quantize_int4(w), kt.quantize_int8(w)
        w4, w8 = kt.dequantize_int4(*q4), kt.dequantize_int8(*q8)
        dtypes = (torch.float16, torch.float32, torch.bfloat16) if name == first else (torch.float16,)
        for m in m_values:
            for dtype in dtypes:
                x = torch.randn(m, k, device=device, generator=gen).to(dtype)
                if dtype == torch.float16 and name == first:
                    x[m // 2, k // 3] = float("nan")  # NaN propagation: the whole row m // 2 is NaN
                tag = f"{name} {n}x{k} M={m} {str(dtype).removeprefix('torch.')}"
                got, want = kt.int4_matmul(x, *q4), kt.int4_matmul_reference(x, *q4)
                check_matmul(checks, f"int4_matmul {tag}", got, want, x, w4)
                got, want = kt.int8_matmul(x, *q8), kt.int8_matmul_reference(x, *q8)
                check_matmul(checks, f"int8_matmul {tag}", got, want, x, w8)
    hidden = linears[first][1]
    for m in m_values:
        for dtype, rtol in ((torch.float16, 2e-3), (torch.float32, 1e-5), (torch.bfloat16, 1.6e-2)):
            x = torch.randn(m, hidden, device=device, generator=gen).to(dtype)
            r = torch.randn(m, hidden, device=device, generator=gen).to(dtype)
            weight = (1 + 0.1 * torch.randn(hidden, device=device, generator=gen)).to(dtype)
            tag = f"H={hidden} M={m} {str(dtype).removeprefix('torch.')}"
            check_close(checks, f"rms_norm {tag}", kt.rms_norm(x, weight, EPS), kt.rms_norm_reference(x, weight, EPS),
                        rtol, 1e-5)  # fmt: skip
            got, want = kt.add_rms_norm(x, r, weight, EPS), kt.add_rms_norm_reference(x, r, weight, EPS)
            check_close(checks, f"add_rms_norm {tag}", got[0], want[0], rtol, 1e-5)
            check_close(checks, f"add_rms_norm residual {tag}", got[1], want[1], rtol, 0.0)
    cache = kt.rotary_cos_sin_cache(8192, HEAD_DIM, THETA, device=device)
    for t in m_values:
        positions = torch.randint(0, 8192, (t,), device=device, generator=gen)
        for heads in (HEADS, KV_HEADS):
            x = torch.randn(t, heads, HEAD_DIM, device=device, generator=gen).half()
            want = kt.apply_rotary_reference(x, positions, THETA)
            tag = f"T={t} heads={heads}"
            check_close(checks, f"apply_rotary cache {tag}", kt.apply_rotary(x, positions, cos_sin_cache=cache),
                        want, 2e-3, 1e-5)  # fmt: skip
            check_close(checks, f"apply_rotary {tag}", kt.apply_rotary(x, positions, THETA), want, 2e-3, 1e-5)
    return checks


def run_timings(kt: Any, device: str, linears: dict[str, tuple[int, int]], m_values: tuple[int, ...]) -> list[Row]:
    import torch
    import torch.nn.functional as F

    timer = make_timer(device)
    rows: list[Row] = []
    gen = torch.Generator(device=device).manual_seed(1)
    half = 2  # bytes per float16
    for name, (n, k) in linears.items():
        w = torch.randn(n, k, device=device, generator=gen) * 0.05
        q4, q8 = kt.quantize_int4(w), kt.quantize_int8(w)
        w16 = kt.dequantize_int4(*q4).half()  # the baseline multiplies what the INT4 kernel computes with
        for m in m_values:
            x = torch.randn(m, k, device=device, generator=gen).half()
            act = (m * k + m * n) * half
            torch_us, torch_spread = timer(lambda x=x, w16=w16: x @ w16.T)
            for kernel, fn, weight_bytes in (
                ("int4_matmul", lambda x=x, q4=q4: kt.int4_matmul(x, *q4), n * k // 2 + 2 * n * (k // 32) * 4),
                ("int8_matmul", lambda x=x, q8=q8: kt.int8_matmul(x, *q8), n * k + n * (k // 32) * 4),
            ):
                us, spread = timer(fn)
                rows.append(Row(kernel, f"{name} {n}x{k}", m, us, spread, torch_us, torch_spread,
                                "fp16 x @ W.T (cuBLAS)", weight_bytes + act))  # fmt: skip
    hidden = linears[next(iter(linears))][1]
    weight = torch.ones(hidden, device=device).half()
    for m in m_values:
        x = torch.randn(m, hidden, device=device, generator=gen).half()
        r = torch.randn(m, hidden, device=device, generator=gen).half()
        us, spread = timer(lambda x=x: kt.rms_norm(x, weight, EPS))
        t_us, t_spread = timer(lambda x=x: F.rms_norm(x, (hidden,), weight, EPS))
        rows.append(Row("rms_norm", f"H={hidden}", m, us, spread, t_us, t_spread, "F.rms_norm",
                        2 * m * hidden * half + hidden * half))  # fmt: skip
        us, spread = timer(lambda x=x, r=r: kt.add_rms_norm(x, r, weight, EPS))
        t_us, t_spread = timer(lambda x=x, r=r: F.rms_norm(x + r, (hidden,), weight, EPS))
        rows.append(Row("add_rms_norm", f"H={hidden}", m, us, spread, t_us, t_spread, "x + r; F.rms_norm",
                        4 * m * hidden * half + hidden * half))  # fmt: skip
    cache = kt.rotary_cos_sin_cache(8192, HEAD_DIM, THETA, device=device)
    hd = HEAD_DIM // 2

    def torch_rotary(x: Any, positions: Any) -> Any:
        cs = cache[positions][:, None, :]  # the usual eager path: gather, then rotate_half
        cos, sin = cs[..., :hd], cs[..., hd:]
        x1, x2 = x[..., :hd].float(), x[..., hd:].float()
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).half()

    for t in m_values:
        positions = torch.randint(0, 8192, (t,), device=device, generator=gen)
        for label, heads in (("q", HEADS), ("k", KV_HEADS)):
            x = torch.randn(t, heads, HEAD_DIM, device=device, generator=gen).half()
            us, spread = timer(lambda x=x, p=positions: kt.apply_rotary(x, p, cos_sin_cache=cache))
            t_us, t_spread = timer(lambda x=x, p=positions: torch_rotary(x, p))
            moved = 2 * t * heads * HEAD_DIM * half + t * HEAD_DIM * 4 + t * 8  # x in and out, cos|sin, positions
            rows.append(Row("apply_rotary", f"{label} {heads}x{HEAD_DIM}", t, us, spread, t_us, t_spread,
                            "gather cos/sin, rotate_half", moved))  # fmt: skip
    return rows


def markdown(rows: list[Row], device_name: str) -> str:
    lines = [
        f"Triton vs PyTorch on {device_name} (float16 activations; median +- half the 20-80% range)",
        "",
        "| kernel | shape | M | triton us | torch us | speedup | triton GB/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.kernel} | {r.shape} | {r.m} | {r.triton_us:.1f} +- {r.triton_spread_us:.1f} | "
            f"{r.torch_us:.1f} +- {r.torch_spread_us:.1f} | {r.speedup:.2f}x | {r.gbps:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported (see kernels/triton/__init__.py)
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print("llm_triton_gpu: no CUDA device here, nothing to measure (the Triton kernels need a GPU; "
              "CPU correctness runs in tests/unit/test_triton_kernels.py). Skipped.")  # fmt: skip
        return 0
    import triton

    import kernels.triton as kt

    device = "cpu" if args.smoke else "cuda"
    linears, m_values = (SMOKE_LINEARS, SMOKE_M_VALUES) if args.smoke else (LINEARS, M_VALUES)
    device_name = "CPU (Triton interpreter)" if args.smoke else torch.cuda.get_device_name()
    started = time.perf_counter()
    checks = run_checks(kt, device, linears, m_values)
    print(f"correctness: {len(checks.passed)} checks passed, {len(checks.failed)} failed "
          f"({time.perf_counter() - started:.0f} s including compilation)")  # fmt: skip
    for failure in checks.failed:
        print(f"  FAIL {failure}")
    if checks.failed:
        return 1
    if args.check_only:
        return 0
    rows = run_timings(kt, device, linears, m_values)
    from bench.report import machine, machine_line

    host = machine()
    print()
    print(markdown(rows, device_name))
    print(machine_line(host))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    out = args.out or (None if args.smoke else RESULTS / "llm_triton_gpu.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "device": device_name,
            "machine": host,
            "torch": torch.__version__,
            "triton": triton.__version__,
            "python": platform.python_version(),
            "timer": "triton.testing.do_bench: median of 100 ms of calls, L2 flushed before each",
            "checks_passed": checks.passed,
            "rows": [asdict(r) | {"speedup": r.speedup, "triton_gbps": r.gbps} for r in rows],
        }
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
