"""LLM engine benchmark, llama-bench style, with the peers measured in the same run.

Rows: prompt processing (pp512), single-stream decode (tg128), aggregate decode with N concurrent
streams, for our engine (in-process, the configured backend), llama.cpp on the same GGUF with the
same thread count (llama-bench / llama-batched-bench binaries when built, else llama-cpp-python)
and transformers fp32 ``generate``. Then quantization quality against our fp32 forward:
perplexity on a fixed text from the default corpus and greedy agreement over 50 prompts.

    python bench/llm_bench.py                 # full run (several minutes)
    python bench/llm_bench.py --quick --check # CI: short run, fail when a ratio target is missed
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import RESULTS, machine, markdown_table, spread, write_json, write_text
from server.config import LLMConfig
from server.llm.backends import build_forward, fp32_linear
from server.llm.engine import LLMEngine
from server.llm.gguf_weights import load_weights
from server.llm.kv_cache import SlotKVCache
from server.llm.model import LlamaModel, PrefillSegment, StepBatch
from server.llm.params import SamplingParams

console = Console(stderr=True)
THREADS = 2


# ---------------------------------------------------------------- our engine ----------------------
def prefill_tps(forward, cfg, n_tokens: int, reps: int) -> list[float]:
    """pp: one prompt of n_tokens through one forward step (no chunking), tokens/s per repetition."""
    cache = SlotKVCache(cfg.n_layers, 1, cfg.n_kv_heads, n_tokens + 8, cfg.head_dim)
    ids = torch.randint(100, 40000, (n_tokens,), generator=torch.Generator().manual_seed(0))
    batch = StepBatch(ids, torch.arange(n_tokens), torch.empty(0, dtype=torch.long), [],
                      [PrefillSegment(0, 0, n_tokens, 0)], torch.tensor([n_tokens - 1]))
    cache.allocate()
    forward(batch, cache)  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        forward(batch, cache)
        out.append(n_tokens / (time.perf_counter() - t))
    return out


def decode_tps(engine: LLMEngine, streams: int, n_tokens: int, reps: int) -> list[float]:
    """tg: `streams` concurrent requests, n_tokens each; aggregate tokens/s over the decode phase."""
    out = []
    for r in range(reps + 1):
        done = threading.Event()
        times: list[float] = []
        finished = [0]
        lock = threading.Lock()

        def sink(c, times=times, finished=finished, lock=lock, done=done):
            with lock:
                times.extend(c.token_ts)
                if c.finish_reason is not None:
                    finished[0] += 1
                    if finished[0] == streams:
                        done.set()

        params = SamplingParams(temperature=0.0, max_tokens=n_tokens, ignore_eos=True)
        for i in range(streams):
            engine.submit(engine.encode_prompt(f"Story {i}: once upon a time"), params, sink)
        done.wait()
        times.sort()
        # drop each stream's first token (it comes from prefill); measure steady decode
        decode_times = times[streams:]
        if r and len(decode_times) > 1:
            out.append((len(decode_times) - 1) / (decode_times[-1] - decode_times[0]))
    return out


def run_ours(backend: str, pp: int, tg: int, streams: list[int], reps: int) -> dict:
    # the serving defaults (slots, context, step budget): the RSS we report is a replica's
    cfg = LLMConfig(backend=backend, num_threads=THREADS)
    if cfg.max_num_seqs < max(streams) or cfg.max_model_len < max(pp, tg + 64) + 16:
        cfg = cfg.model_copy(update={"max_num_seqs": max(streams), "max_model_len": max(pp, tg + 64) + 16})
    weights = load_weights()
    engine = LLMEngine(cfg, weights=weights)
    res: dict = {"backend": engine.backend_name, "pp": prefill_tps(engine.forward, weights.config, pp, reps)}
    engine.start()
    try:
        for n in streams:
            res[f"tg_x{n}"] = decode_tps(engine, n, tg, reps)
    finally:
        engine.shutdown()
    res["rss_bytes"] = psutil.Process().memory_info().rss
    res["kv_cache_bytes"] = engine.cache.nbytes()
    return res


# ---------------------------------------------------------------- llama.cpp ----------------------
def find_llama_binary(name: str) -> str | None:
    env = os.environ.get("LLAMA_CPP_BIN")
    built = Path(__file__).resolve().parent.parent / ".peers/llama.cpp/build/bin"  # bench/peers/build_llama_cpp.sh
    for d in filter(None, [env, str(built)]):
        p = Path(d) / name
        if p.exists():
            return str(p)
    return shutil.which(name)


def run_llama_bench(gguf: str, pp: int, tg: int, reps: int) -> dict | None:
    exe = find_llama_binary("llama-bench")
    if exe is None:
        return None
    cmd = [exe, "-m", gguf, "-t", str(THREADS), "-p", str(pp), "-n", str(tg), "-r", str(reps), "-o", "json"]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    res = {"tool": "llama-bench"}
    for row in out:
        key = "pp" if row["n_prompt"] else "tg_x1"
        res[key] = [float(x) for x in row.get("samples_ts", [row["avg_ts"]])]
    return res


def run_llama_batched(gguf: str, tg: int, streams: list[int]) -> dict | None:
    exe = find_llama_binary("llama-batched-bench")
    if exe is None:
        return None
    npl = ",".join(str(n) for n in streams)
    cmd = [exe, "-m", gguf, "-t", str(THREADS), "-c", str(max(streams) * (tg + 64)), "-b", "512", "-ub", "512",
           "-npp", "32", "-ntg", str(tg), "-npl", npl, "--output-format", "jsonl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    res: dict = {"tool": "llama-batched-bench"}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            res[f"tg_x{row['pl']}"] = [float(row["speed_tg"])]
    if len(res) == 1:
        raise RuntimeError(f"llama-batched-bench printed no JSONL rows: {proc.stdout[-500:]}")
    return res


def run_llama_cpp_python(gguf: str, pp: int, tg: int, reps: int) -> dict | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=gguf, n_threads=THREADS, n_threads_batch=THREADS, n_ctx=pp + tg + 16, n_batch=pp,
                verbose=False)
    ids = torch.randint(100, 40000, (pp,), generator=torch.Generator().manual_seed(0)).tolist()
    res: dict = {"tool": "llama-cpp-python", "pp": [], "tg_x1": []}
    for r in range(reps + 1):
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        if r:
            res["pp"].append(pp / (time.perf_counter() - t))
        llm.reset()
        llm.eval(ids[:8])
        t = time.perf_counter()
        for _ in range(tg):
            llm.eval([int(llm.scores[llm.n_tokens - 1].argmax())])
        if r:
            res["tg_x1"].append(tg / (time.perf_counter() - t))
    return res


# ---------------------------------------------------------------- transformers --------------------
def run_transformers(tg: int, reps: int) -> dict | None:
    try:
        import transformers
    except ImportError:
        return None
    path = load_weights().path
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                              dtype=torch.float32).eval()
    ids = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356]])
    out = []
    with torch.no_grad():
        for r in range(reps + 1):
            t = time.perf_counter()
            model.generate(ids, max_new_tokens=tg, min_new_tokens=tg, do_sample=False, pad_token_id=0)
            if r:
                out.append(tg / (time.perf_counter() - t))
    return {"tool": "transformers fp32 generate", "tg_x1": out}


# ---------------------------------------------------------------- quality ------------------------
def quality(
    backend: str, n_prompts: int, n_tokens: int, ppl_tokens: int, activation_precision: str | None = None
) -> dict:
    """Perplexity on a fixed corpus text and greedy agreement, backend vs our fp32 forward.

    activation_precision: cpu-int4's activation mode (None: LLMConfig's default).
    """
    import pydoc_data.topics as topics

    weights = load_weights()
    cfg = weights.config
    fp32 = LlamaModel(weights, fp32_linear).forward
    quant, _ = build_forward(backend, weights, THREADS, activation_precision)
    from server.llm.gguf_weights import open_reader
    from server.llm.tokenizer import GGUFTokenizer

    tok = GGUFTokenizer(open_reader(str(weights.path)))
    text = topics.topics["assignment"] + topics.topics["exprlists"]
    ids = tok.encode(text)[:ppl_tokens]
    window = 256

    def ppl(forward) -> float:
        nll, count = 0.0, 0
        for s in range(0, len(ids) - 1, window):
            chunk = ids[s : s + window + 1]
            n = len(chunk) - 1
            cache = SlotKVCache(cfg.n_layers, 1, cfg.n_kv_heads, window + 2, cfg.head_dim)
            cache.allocate()
            b = StepBatch(torch.tensor(chunk[:-1]), torch.arange(n), torch.empty(0, dtype=torch.long), [],
                          [PrefillSegment(0, 0, n, 0)], torch.arange(n))
            logp = torch.log_softmax(forward(b, cache).double(), -1)
            nll -= float(logp[torch.arange(n), torch.tensor(chunk[1:])].sum())
            count += n
        return math.exp(nll / count)

    names = sorted(topics.topics)[:n_prompts]
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Explain the Python topic '{n}' briefly."}])
               for n in names]

    def greedy(forward) -> list[list[int]]:
        cfg_e = LLMConfig(backend="torch-fp32", max_num_seqs=16, max_model_len=256, max_num_batched_tokens=512)
        eng = LLMEngine(cfg_e, weights=weights, forward=forward).start()
        outs: dict[int, list[int]] = {i: [] for i in range(len(prompts))}
        done = threading.Semaphore(0)
        params = SamplingParams(temperature=0.0, max_tokens=n_tokens, ignore_eos=True)
        for i, p in enumerate(prompts):
            def sink(c, i=i):
                outs[i].extend(c.token_ids)
                if c.finish_reason is not None:
                    done.release()
            eng.submit(eng.encode_prompt(p), params, sink)
        for _ in prompts:
            done.acquire()
        eng.shutdown()
        return [outs[i] for i in range(len(prompts))]

    ppl_fp32, ppl_q = ppl(fp32), ppl(quant)
    g32, gq = greedy(fp32), greedy(quant)
    same = sum(a == b for x, y in zip(g32, gq, strict=True) for a, b in zip(x, y, strict=True))
    prefix = [
        next((i for i, (a, b) in enumerate(zip(x, y, strict=True)) if a != b), len(x))
        for x, y in zip(g32, gq, strict=True)
    ]
    return {
        "ppl_tokens": len(ids),
        "ppl_fp32": ppl_fp32,
        "ppl_backend": ppl_q,
        "ppl_increase": ppl_q / ppl_fp32 - 1,
        "greedy_agreement": same / (len(prompts) * n_tokens),
        "prompts_identical": sum(p == n_tokens for p in prefix),
        "mean_common_prefix": sum(prefix) / len(prefix),
        "n_prompts": len(prompts),
        "n_tokens": n_tokens,
    }


# ---------------------------------------------------------------- report -------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default=LLMConfig().backend)
    ap.add_argument("--quick", action="store_true", help="short run for CI")
    ap.add_argument("--check", action="store_true", help="exit 1 when a ratio target is missed")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    pp, tg = (128, 32) if args.quick else (512, 128)
    reps = 2 if args.quick else 5
    streams = [1, 4, 16]
    gguf = str(load_weights().path)
    torch.set_num_threads(THREADS)

    console.print(f"[bold]ours[/] ({args.backend}) pp{pp} / tg{tg} x {streams}")
    ours = run_ours(args.backend, pp, tg, streams, reps)
    gc.collect()
    console.print("[bold]llama.cpp[/]")
    llama = run_llama_bench(gguf, pp, tg, reps) or run_llama_cpp_python(gguf, pp, tg, reps)
    batched = run_llama_batched(gguf, tg, streams)
    console.print("[bold]transformers[/]")
    hf = run_transformers(min(tg, 32), 1 if args.quick else 2)
    qual = None
    if not args.skip_quality:
        console.print("[bold]quality[/] vs fp32")
        qual = quality(args.backend, 10 if args.quick else 50, 32, 512 if args.quick else 2048)

    def cell(samples):
        if not samples:
            return "n/a"
        m, s = spread(samples)
        return f"{m:,.1f} ± {s:,.1f}"

    def med(samples):
        return spread(samples)[0] if samples else float("nan")

    rows = []
    peers = {"ours": ours, "llama.cpp": llama or {}, "llama.cpp batched": batched or {}, "transformers": hf or {}}
    tests = [("pp", f"pp{pp}")] + [(f"tg_x{n}", f"tg{tg} x{n} streams") for n in streams]
    for key, label in tests:
        for who, res in peers.items():
            if res.get(key):
                ratio = med(ours.get(key, [])) / med(res[key]) if who != "ours" else float("nan")
                rows.append(["SmolLM2-135M Q4_1", who, res.get("backend", res.get("tool", "")), THREADS, label,
                             cell(res[key]), "" if who == "ours" else f"{ratio:.2f}x"])
    table = markdown_table(["model", "engine", "backend", "threads", "test", "t/s (median ± IQR/2)",
                            "ours ÷ this"], rows)
    print(table)
    rss_mb = ours["rss_bytes"] / 2**20
    print(f"\nengine process RSS after the run: {rss_mb:,.0f} MiB (KV cache {ours['kv_cache_bytes'] / 2**20:,.0f} MiB)")
    if qual:
        print("\n" + markdown_table(
            ["backend", "ppl fp32", "ppl backend", "Δ ppl", "greedy agreement (first 32)", "identical prompts",
             "mean common prefix"],
            [[args.backend, f"{qual['ppl_fp32']:.3f}", f"{qual['ppl_backend']:.3f}", f"{qual['ppl_increase']:+.2%}",
              f"{qual['greedy_agreement']:.1%}", f"{qual['prompts_identical']}/{qual['n_prompts']}",
              f"{qual['mean_common_prefix']:.1f}"]]))
    payload = {"machine": machine(), "ours": ours, "llama_cpp": llama, "llama_batched": batched, "transformers": hf,
               "quality": qual, "quick": args.quick}
    write_json("llm_bench", payload)
    write_text("llm_bench.md", table + "\n")
    plot(ours, batched, streams)

    checks = []
    if hf:
        checks.append(("≥ 7x transformers fp32 single stream", med(ours["tg_x1"]) / med(hf["tg_x1"]), 7.0))
    if llama:
        checks.append(("single-stream decode ≥ 1.0x llama.cpp", med(ours["tg_x1"]) / med(llama["tg_x1"]), 1.0))
        checks.append(("prefill ≥ 1.0x llama.cpp", med(ours["pp"]) / med(llama["pp"]), 1.0))
    if batched and batched.get(f"tg_x{max(streams)}"):
        checks.append((f"{max(streams)} streams ≥ 2x llama.cpp batched",
                       med(ours[f"tg_x{max(streams)}"]) / med(batched[f"tg_x{max(streams)}"]), 2.0))
    checks.append(("replica RSS ≤ 1.5 GB", 1.5e9 / ours["rss_bytes"], 1.0))
    if qual:
        checks.append(("perplexity increase vs fp32 ≤ +3% (value = -increase)", -qual["ppl_increase"], -0.03))
        checks.append(("greedy agreement ≥ 90%", qual["greedy_agreement"] / 0.9, 1.0))
    failed = False
    for name, value, target in checks:
        ok = value >= target
        failed |= not ok
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value:.2f} (target {target})")
    return 1 if (args.check and failed) else 0


def plot(ours: dict, batched: dict | None, streams: list[int]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(streams, [spread(ours[f"tg_x{n}"])[0] for n in streams], "o-", label="stackserve")
    if batched:
        xs = [n for n in streams if batched.get(f"tg_x{n}")]
        ax.plot(xs, [batched[f"tg_x{n}"][0] for n in xs], "s--", label="llama.cpp (batched-bench)")
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("aggregate decode tokens/s")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "llm_decode_vs_streams.png", dpi=120)


if __name__ == "__main__":
    sys.exit(main())
