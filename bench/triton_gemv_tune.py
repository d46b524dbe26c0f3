"""GPU: measure the split-K GEMV kernels' launch configurations per shape class and record the best
in the table the kernels read (``kernels/triton/gemv_table.json``).

Why a recorded table rather than ``triton.autotune``: serving must not run tuning at start (minutes
of benchmarks on the first request of every shape, and different picks on different runs); the
table is measured once per GPU kind, reviewed, and committed. Each class is timed on the model's
own layers of that class (the sum over them), at M = 1 (decode), with ``triton.testing.do_bench``
(L2 flushed, median); every candidate is first checked against the reference.

    python -m bench.triton_gemv_tune                 # print the table measured here
    python -m bench.triton_gemv_tune --write         # and rewrite kernels/triton/gemv_table.json
    python -m bench.triton_gemv_tune --out DIR       # write DIR/gemv_table.json (bench/gpu_check.sh)

Without CUDA it says so and exits 3 (as bench/gpu_check.py does).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.llm_triton_gpu import LINEARS

BLOCK_N = (8, 16, 32, 64)
BLOCK_K = (64, 128, 256)
SPLIT_K = (1, 2, 4, 6, 8)
EXIT_NO_CUDA = 3


def candidates() -> list[tuple[int, int, int]]:
    return list(itertools.product(BLOCK_N, BLOCK_K, SPLIT_K))


def tune(budget_s: float, kinds: tuple[str, ...] = ("int4", "int8"), log=print) -> dict[str, Any]:
    """The table measured on this GPU (entries not reached within ``budget_s`` keep the recorded
    values, marked ``"measured": false``)."""
    import torch
    import triton
    from triton.testing import do_bench

    from kernels.triton import quant_matmul as qm

    start = time.perf_counter()
    recorded = json.loads(qm.GEMV_TABLE.read_text())
    by_class: dict[str, list[tuple[int, int]]] = {}
    for n, k in LINEARS.values():
        by_class.setdefault(qm.shape_class(n, k), []).append((n, k))
    gen = torch.Generator(device="cuda").manual_seed(0)
    entries = []
    for kind, (cls, shapes) in itertools.product(kinds, by_class.items()):
        old = next(e for e in recorded["entries"] if e["kind"] == kind and e["class"] == cls)
        if time.perf_counter() - start > budget_s:
            entries.append({**old, "measured": False})
            continue
        layers = []
        for n, k in shapes:
            w = torch.randn(n, k, device="cuda", generator=gen) * k**-0.5
            q = qm.quantize_int4(w) if kind == "int4" else qm.quantize_int8(w)
            x = torch.randn(1, k, device="cuda", generator=gen).half()
            fn = qm.int4_matmul if kind == "int4" else qm.int8_matmul
            ref = (qm.int4_matmul_reference if kind == "int4" else qm.int8_matmul_reference)(x, *q)
            w16 = (qm.dequantize_int4(*q) if kind == "int4" else qm.dequantize_int8(*q)).half()
            layers.append((fn, x, q, ref, do_bench(lambda x=x, w16=w16: x @ w16.T, warmup=10, rep=40)))
        best: tuple[float, tuple[int, int, int]] | None = None
        for block_n, block_k, split_k in candidates():
            cfg = qm.LaunchConfig(1, block_n, block_k, num_warps=4, num_stages=2, split_k=split_k)
            total = 0.0
            for fn, x, q, ref, _ in layers:
                got = fn(x, *q, config=cfg)
                if not torch.allclose(got.float(), ref.float(), rtol=1e-2, atol=1e-2):
                    total = float("inf")
                    break
                total += do_bench(lambda fn=fn, x=x, q=q, cfg=cfg: fn(x, *q, config=cfg), warmup=10, rep=40)
            if best is None or total < best[0]:
                best = (total, (block_n, block_k, split_k))
            if time.perf_counter() - start > budget_s:
                break
        assert best is not None
        cublas_us = sum(layer[4] for layer in layers) * 1e3
        (block_n, block_k, split_k), us = best[1], best[0] * 1e3
        entries.append({"kind": kind, "class": cls, "block_n": block_n, "block_k": block_k, "split_k": split_k,
                        "num_warps": 4, "num_stages": 2, "measured": True, "us": round(us, 2),
                        "cublas_fp16_us": round(cublas_us, 2), "layers": [f"{n}x{k}" for n, k in shapes]})
        log(f"{kind} {cls}: block_n={block_n} block_k={block_k} split_k={split_k}: {us:.1f} us "
            f"(cuBLAS fp16 {cublas_us:.1f} us, {cublas_us / us:.2f}x)")
    return {"source": f"measured with bench/triton_gemv_tune.py on {torch.cuda.get_device_name()}, torch "
                      f"{torch.__version__}, triton {triton.__version__}: M = 1, do_bench median (L2 flushed), "
                      "sum over the model's layers of each class",
            "tuned_on": torch.cuda.get_device_name(), "entries": entries}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite kernels/triton/gemv_table.json")
    p.add_argument("--out", type=Path, default=None, help="write DIR/gemv_table.json")
    p.add_argument("--budget-s", type=float, default=240.0)
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("triton_gemv_tune: NO CUDA DEVICE: the GEMV table can only be measured on a GPU. Stopping (exit 3).")
        return EXIT_NO_CUDA
    from kernels.triton import quant_matmul as qm

    table = tune(args.budget_s)
    text = json.dumps(table, indent=2) + "\n"
    print(text)
    for path in ([qm.GEMV_TABLE] if args.write else []) + ([args.out / "gemv_table.json"] if args.out else []):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
