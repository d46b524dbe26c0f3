"""LLM engine benchmark, llama-bench style, with the peers measured in the same run.

Rows: prompt processing (pp512), single-stream decode (tg128), aggregate decode with N concurrent
streams, for our engine (in-process, the configured backend), llama.cpp on the same GGUF with the
same thread count (llama-bench / llama-batched-bench binaries when built, else llama-cpp-python),
transformers fp32 ``generate`` and vLLM's CPU build (its own virtual environment, ``make
peers-vllm``; bench/peers/vllm_peer.py). Then quantization quality against our fp32 forward:
perplexity on a fixed text from the default corpus and greedy agreement over 50 prompts.

Decode tokens/s means the same thing for every engine: the tokens of the steady-state decode
steps over the time of those same steps. The first token of a stream comes out of its prefill, so
neither it nor the prefill's time is counted: a stream's rate is (tokens after its first) / (time
from its first token to its last); with N streams, the tokens produced after every stream has its
first token over the time from that moment to the last token. llama-bench and
llama-batched-bench time exactly the decode steps they count; transformers and vLLM are timed per
step with the same rule, on our prompt and our decode length.

    python -m bench.llm_bench                 # full run (several minutes)
    python -m bench.llm_bench --quick --check --peers transformers  # CI: fail when a ratio target
                                              # is missed or a named peer cannot run
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch
from rich.console import Console

from bench.report import RESULTS, cpu_info, machine, machine_line, markdown_table, spread, write_json, write_text
from server.config import LLMConfig
from server.llm.backends import build_forward, fp32_linear
from server.llm.engine import LLMEngine
from server.llm.gguf_weights import load_weights
from server.llm.kv_cache import PagedKVCache
from server.llm.llama import LlamaModel, PrefillSegment, StepBatch
from server.llm.params import SamplingParams
from server.llm.registry import MODELS, load_model_weights, model_gguf_path

console = Console(stderr=True)
THREADS = 2
ROOT = Path(__file__).resolve().parent.parent
PEERS = ("llama.cpp", "transformers", "vllm")
PROMPT = "Story {i}: once upon a time"


class PeerMissing(Exception):
    """A peer could not run here; the message says exactly why (printed as a MISS line)."""


def steady_decode(token_ts: dict[object, list[float]]) -> tuple[int, float]:
    """(tokens, seconds) of the steady-state decode steps of streams that ran together.

    Each stream's first token comes from its prefill: the window starts once every stream has its
    first token and ends at the last token; it counts the tokens produced inside it (each step
    after the window opens contributes its tokens, and its time lies inside the window)."""
    start = max(ts[0] for ts in token_ts.values())
    end = max(ts[-1] for ts in token_ts.values())
    tokens = sum(sum(1 for t in ts if t > start) for ts in token_ts.values())
    return tokens, end - start


# ---------------------------------------------------------------- our engine ----------------------
def prefill_tps(forward, cfg, n_tokens: int, reps: int) -> list[float]:
    """pp: one prompt of n_tokens through one forward step (no chunking), tokens/s per repetition."""
    cache = PagedKVCache.with_slots(cfg.n_layers, 1, cfg.n_kv_heads, n_tokens + 8, cfg.head_dim, forward=forward)
    ids = torch.randint(100, 40000, (n_tokens,), generator=torch.Generator().manual_seed(0))
    batch = StepBatch(
        ids,
        torch.arange(n_tokens),
        torch.empty(0, dtype=torch.long),
        [],
        [PrefillSegment(0, 0, n_tokens, 0)],
        torch.tensor([n_tokens - 1]),
    )
    forward(batch, cache)  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        forward(batch, cache)
        out.append(n_tokens / (time.perf_counter() - t))
    return out


def decode_tps(engine: LLMEngine, streams: int, n_tokens: int, reps: int) -> tuple[list[float], list[float]]:
    """tg: `streams` concurrent requests, n_tokens each: aggregate steady-state decode tokens/s per
    repetition, and every request's time to first token (seconds, from submission)."""
    out: list[float] = []
    ttft: list[float] = []
    for r in range(reps + 1):
        done = threading.Event()
        times: dict[str, list[float]] = {}
        finished = [0]
        lock = threading.Lock()

        def sink(c, times=times, finished=finished, lock=lock, done=done):
            with lock:
                times.setdefault(c.request_id, []).extend(c.token_ts)
                if c.finish_reason is not None:
                    finished[0] += 1
                    if finished[0] == streams:
                        done.set()

        params = SamplingParams(temperature=0.0, max_tokens=n_tokens, ignore_eos=True)
        prompts = [engine.encode_prompt(PROMPT.format(i=i)) for i in range(streams)]
        submitted = time.time()  # the engine stamps tokens with time.time()
        for ids in prompts:
            engine.submit(ids, params, sink)
        done.wait()
        tokens, seconds = steady_decode(times)
        # every step produces one token per stream: the count must be streams x (steps after the
        # window opened); a formula that counted tokens of steps whose time it did not (the
        # earlier (len - 1) / span over pooled timestamps) breaks this
        firsts = {v[0] for v in times.values()}
        steps = len({t for ts in times.values() for t in ts if t > max(firsts)})
        lockstep = len(firsts) == 1 and len({len(v) for v in times.values()}) == 1
        if lockstep and tokens != streams * steps:
            raise AssertionError(f"decode accounting: {tokens} tokens over {steps} steps of {streams} streams")
        if r and seconds > 0:
            out.append(tokens / seconds)
            ttft += [ts[0] - submitted for ts in times.values()]
    return out, ttft


def run_ours(backend: str, pp: int, tg: int, streams: list[int], reps: int, model: str = MODELS[0]) -> dict:
    # the serving defaults (slots, context, step budget): the RSS we report is a replica's
    # speculative decoding off: these rows compare plain decoding with llama.cpp's (it has its own rows)
    cfg = LLMConfig(backend=backend, num_threads=THREADS, speculative_tokens=0, model=model)
    if cfg.max_num_seqs < max(streams) or cfg.max_model_len < max(pp, tg + 64) + 16:
        cfg = cfg.model_copy(update={"max_num_seqs": max(streams), "max_model_len": max(pp, tg + 64) + 16})
    weights = load_model_weights(model_gguf_path(model))
    engine = LLMEngine(cfg, weights=weights)
    res: dict = {
        "backend": engine.backend_name,
        "pp": prefill_tps(engine.forward, weights.config, pp, reps),
        "prompt_ids": [engine.encode_prompt(PROMPT.format(i=i)) for i in range(max(streams))],
    }
    engine.start()
    try:
        for n in streams:
            res[f"tg_x{n}"], res[f"ttft_x{n}"] = decode_tps(engine, n, tg, reps)
    finally:
        engine.shutdown()
    res["rss_bytes"] = psutil.Process().memory_info().rss
    res["kv_cache_bytes"] = engine.cache.nbytes()
    return res


# ---------------------------------------------------------------- llama.cpp ----------------------
LLAMA_BUILD = ROOT / ".peers/llama.cpp/build"  # bench/peers/build_llama_cpp.sh


def find_llama_binary(name: str) -> str | None:
    env = os.environ.get("LLAMA_CPP_BIN")
    for d in filter(None, [env, str(LLAMA_BUILD / "bin")]):
        p = Path(d) / name
        if p.exists():
            return str(p)
    return shutil.which(name)


def llama_build_record() -> dict:
    """How the llama.cpp binaries were built (written by build_llama_cpp.sh), and whether that
    build was made for this CPU (a native build for another CPU may die with SIGILL)."""
    path = LLAMA_BUILD / "stackserve-build.json"
    if not path.exists():
        return {}
    rec = json.loads(path.read_text())
    cpu, flags = cpu_info()
    # the same ISA subset the build script records (the model name alone does not tell Zen 3 from Zen 4)
    isa = {f for f in flags if re.fullmatch(r"avx|avx2|fma|f16c|avx_vnni|avx512.*|amx_.*", f)}
    rec["built_for_this_cpu"] = rec.get("cpu") == cpu and set(rec.get("cpu_isa", "").split()) == isa
    return rec


def run_peer_command(what: str, cmd: list[str], timeout: float = 1800) -> str:
    """stdout of a peer's command; a crash (SIGILL on an unsupported instruction...) is a PeerMissing."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        rc = proc.returncode
        how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PeerMissing(f"{what} {how}: {' | '.join(tail)}")
    return proc.stdout


def run_llama_bench(gguf: str, pp: int, tg: int, reps: int) -> dict | None:
    exe = find_llama_binary("llama-bench")
    if exe is None:
        return None
    cmd = [exe, "-m", gguf, "-t", str(THREADS), "-p", str(pp), "-n", str(tg), "-r", str(reps), "-o", "json"]
    out = json.loads(run_peer_command("llama-bench", cmd))
    res: dict = {"tool": "llama-bench"}
    for row in out:
        key = "pp" if row["n_prompt"] else "tg_x1"
        res[key] = [float(x) for x in row.get("samples_ts", [row["avg_ts"]])]
        res["cpu_info"] = row.get("cpu_info")
        res["build_commit"] = row.get("build_commit")
        res["backends"] = row.get("backends")
    return res


def run_llama_batched(gguf: str, tg: int, streams: list[int]) -> dict | None:
    exe = find_llama_binary("llama-batched-bench")
    if exe is None:
        return None
    npl = ",".join(str(n) for n in streams)
    cmd = [
        exe,
        "-m",
        gguf,
        "-t",
        str(THREADS),
        "-c",
        str(max(streams) * (tg + 64)),
        "-b",
        "512",
        "-ub",
        "512",
        "-npp",
        "32",
        "-ntg",
        str(tg),
        "-npl",
        npl,
        "--output-format",
        "jsonl",
    ]
    stdout = run_peer_command("llama-batched-bench", cmd)
    res: dict = {"tool": "llama-batched-bench"}
    for line in stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            # speed_tg = pl * ntg / t_tg: the decode steps' tokens over those steps' time
            res[f"tg_x{row['pl']}"] = [float(row["speed_tg"])]
    if len(res) == 1:
        raise PeerMissing(f"llama-batched-bench printed no JSONL rows: {stdout[-500:]}")
    return res


def run_llama_cpp_python(gguf: str, pp: int, tg: int, reps: int) -> dict | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(
        model_path=gguf, n_threads=THREADS, n_threads_batch=THREADS, n_ctx=pp + tg + 16, n_batch=pp, verbose=False
    )
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
        for _ in range(tg):  # tg decode steps, tg tokens
            llm.eval([int(llm.scores[llm.n_tokens - 1].argmax())])
        if r:
            res["tg_x1"].append(tg / (time.perf_counter() - t))
    return res


# ---------------------------------------------------------------- transformers --------------------
def run_transformers(prompt_ids: list[int], tg: int, reps: int) -> dict | None:
    """fp32 ``generate`` on our prompt, timed per step (a stopping criterion stamps every new token):
    steady-state decode as for ours, tokens 2..tg over the time from token 1 to token tg."""
    try:
        import transformers
    except ImportError:
        return None
    path = load_weights().path
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    ids = torch.tensor([prompt_ids])

    class Stamp(transformers.StoppingCriteria):
        def __init__(self) -> None:
            self.ts: list[float] = []

        def __call__(self, input_ids, scores, **kwargs):
            self.ts.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    out = []
    with torch.no_grad():
        model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)  # warm-up
        for _ in range(reps):
            stamp = Stamp()
            model.generate(
                ids,
                max_new_tokens=tg,
                min_new_tokens=tg,
                do_sample=False,
                pad_token_id=0,
                stopping_criteria=transformers.StoppingCriteriaList([stamp]),
            )
            tokens, seconds = steady_decode({0: stamp.ts})
            if len(stamp.ts) != tg:
                raise PeerMissing(f"transformers produced {len(stamp.ts)} tokens, expected {tg}")
            out.append(tokens / seconds)
    return {"tool": f"transformers {transformers.__version__} fp32 generate", "tg_x1": out}


# ---------------------------------------------------------------- vLLM -----------------------------
VLLM_PYTHON = ROOT / ".venv-vllm/bin/python"  # make peers-vllm (bench/peers/install_vllm.sh)


def run_vllm(
    gguf: str, prompt_ids: list[list[int]], tg: int, streams: list[int], reps: int, budget_s: float = 600
) -> dict:
    """vLLM's CPU build in its own virtual environment (bench/peers/vllm_peer.py), same model,
    same prompts, same decode length and threads; raises PeerMissing with the exact reason."""
    if not VLLM_PYTHON.exists():
        raise PeerMissing(f"vLLM is not installed: {VLLM_PYTHON} missing (run `make peers-vllm`)")
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        out = Path(tmp) / "out.json"
        spec.write_text(
            json.dumps(
                {
                    "gguf": gguf,
                    "prompt_ids": prompt_ids,
                    "tg": tg,
                    "streams": streams,
                    "reps": reps,
                    "threads": THREADS,
                    "budget_s": budget_s,
                }
            )
        )
        cmd = [str(VLLM_PYTHON), str(ROOT / "bench/peers/vllm_peer.py"), str(spec), str(out)]
        try:
            run_peer_command("vllm_peer.py", cmd, timeout=1800)
        except subprocess.TimeoutExpired as exc:
            raise PeerMissing(f"vLLM did not finish in {exc.timeout:.0f} s") from exc
        res = json.loads(out.read_text()) if out.exists() else {"error": "vllm_peer.py wrote no result"}
    if res.get("error"):
        raise PeerMissing(res["error"])
    return res


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
            cache = PagedKVCache.with_slots(cfg.n_layers, 1, cfg.n_kv_heads, window + 2, cfg.head_dim, forward=forward)
            b = StepBatch(
                torch.tensor(chunk[:-1]),
                torch.arange(n),
                torch.empty(0, dtype=torch.long),
                [],
                [PrefillSegment(0, 0, n, 0)],
                torch.arange(n),
            )
            logp = torch.log_softmax(forward(b, cache).double(), -1)
            nll -= float(logp[torch.arange(n), torch.tensor(chunk[1:])].sum())
            count += n
        return math.exp(nll / count)

    names = sorted(topics.topics)[:n_prompts]
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": f"Explain the Python topic '{n}' briefly."}])
        for n in names
    ]

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
def _parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default=LLMConfig().backend)
    ap.add_argument("--quick", action="store_true", help="short run for CI")
    ap.add_argument("--check", action="store_true", help="exit 1 when a ratio target is missed or a peer is missing")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument(
        "--skip-features", action="store_true",
        help="skip the feature rows (prefix caching, structured output, speculative decoding, AMX)",
    )
    ap.add_argument(
        "--peers",
        nargs="*",
        choices=PEERS,
        default=list(PEERS),
        help="peers to measure (default all); a named peer that cannot run is a MISS",
    )
    ap.add_argument(
        "--models", nargs="*", choices=MODELS, default=list(MODELS),
        help="models besides SmolLM2 (always measured, against every peer) measured against llama.cpp on the same GGUF",
    )
    return ap.parse_args()


class _Peers:
    """The peers' results, and why a peer could not run (``missing``: its comparison is a MISS)."""

    def __init__(self) -> None:
        self.missing: dict[str, str] = {}
        self.llama = self.batched = self.hf = self.vllm = None
        self.build = llama_build_record()

    def attempt(self, name: str, fn):
        try:
            return fn()
        except PeerMissing as exc:
            self.missing[name] = str(exc)
            return None

    def measure(self, args: argparse.Namespace, info: dict, gguf: str, ours: dict, pp: int, tg: int,
                streams: list[int], reps: int) -> None:
        """llama.cpp (llama-bench, else llama-cpp-python; and batched-bench), transformers, vLLM."""
        missing, build = self.missing, self.build
        if "llama.cpp" in args.peers:
            console.print("[bold]llama.cpp[/]")
            if build and not build["built_for_this_cpu"]:
                missing["llama.cpp"] = (f"the binaries were built for {build.get('cpu')!r} ({build.get('cpu_isa')}), "
                                        f"this is {info['cpu']!r} ({' '.join(info['isa'])}): a native build may "
                                        "SIGILL here; rebuild with `make peers`")  # fmt: skip
            else:
                self.llama = self.attempt("llama.cpp", lambda: run_llama_bench(gguf, pp, tg, reps)
                                          or run_llama_cpp_python(gguf, pp, tg, reps))  # fmt: skip
                if self.llama is None and "llama.cpp" not in missing:
                    missing["llama.cpp"] = "no llama-bench binary (`make peers`) and llama-cpp-python is not importable"
                self.batched = self.attempt("llama.cpp batched", lambda: run_llama_batched(gguf, tg, streams))
                if self.batched is None and "llama.cpp batched" not in missing:
                    missing["llama.cpp batched"] = "no llama-batched-bench binary (`make peers`)"
        if "transformers" in args.peers:
            console.print("[bold]transformers[/]")
            self.hf = self.attempt("transformers",
                                   lambda: run_transformers(ours["prompt_ids"][0], tg, 1 if args.quick else 2))
            if self.hf is None and "transformers" not in missing:
                missing["transformers"] = "transformers is not importable"
        if "vllm" in args.peers:
            console.print("[bold]vLLM[/]")
            self.vllm = self.attempt("vllm", lambda: run_vllm(gguf, ours["prompt_ids"], tg, streams, reps))

    def by_name(self, ours: dict) -> dict[str, dict]:
        return {"ours": ours, "llama.cpp": self.llama or {}, "llama.cpp batched": self.batched or {},
                "transformers": self.hf or {}, "vLLM": self.vllm or {}}  # fmt: skip


def _features(args: argparse.Namespace) -> dict | None:
    """The feature rows (full runs only): prefix caching, structured output, speculative decoding, AMX."""
    if args.skip_features or args.quick:
        return None
    from bench import llm_features

    console.print("[bold]features[/]: prefix caching, structured output, speculative decoding, AMX")
    r = 3
    return {"prefix_caching": llm_features.prefix_caching(args.backend, r),
            "structured_output": llm_features.structured_cost(args.backend, r),
            "speculative": llm_features.speculative(args.backend, 2),
            "amx_prefill": llm_features.amx_prefill(args.backend, r)}  # fmt: skip


def _other_models(args: argparse.Namespace, peers: _Peers, pp: int, tg: int, streams: list[int],
                  reps: int) -> dict[str, dict]:
    """Models besides SmolLM2: ours and llama.cpp on the same GGUF."""
    others: dict[str, dict] = {}  # model -> {"ours": ..., "llama.cpp": ..., "llama.cpp batched": ...}
    for name in [m for m in args.models if m != MODELS[0]]:  # SmolLM2's rows are measured first
        console.print(f"[bold]{name}[/]: ours ({args.backend}) and llama.cpp on the same GGUF")
        path = str(model_gguf_path(name))
        res = {"ours": run_ours(args.backend, pp, tg, streams, reps, model=name)}
        gc.collect()
        if "llama.cpp" in args.peers and "llama.cpp" not in peers.missing:
            res["llama.cpp"] = peers.attempt(f"llama.cpp ({name})",
                                             lambda p=path: run_llama_bench(p, pp, tg, reps)) or {}
            res["llama.cpp batched"] = peers.attempt(f"llama.cpp batched ({name})",
                                                     lambda p=path: run_llama_batched(p, tg, streams)) or {}
        others[name] = res
    return others


def _cell(samples, scale: float = 1.0) -> str:
    if not samples:
        return "n/a"
    m, s = spread([x * scale for x in samples])
    return f"{m:,.1f} ± {s:,.1f}"


def _med(samples) -> float:
    return spread(samples)[0] if samples else float("nan")


def _throughput_table(peers_by: dict[str, dict], others: dict[str, dict], tests: list[tuple[str, str]]) -> str:
    """Tokens/s per model, engine and test, with ours ÷ each peer."""
    rows = []
    labels = {MODELS[0]: "SmolLM2-135M Q4_1", "gemma3-270m": "Gemma-3-270M Q4_K_M"}
    for name, res_by in [(MODELS[0], peers_by), *others.items()]:
        for key, label in tests:
            for who, res in res_by.items():
                if res.get(key):
                    ratio = _med(res_by["ours"].get(key, [])) / _med(res[key]) if who != "ours" else float("nan")
                    rows.append([labels.get(name, name), who, res.get("backend", res.get("tool", "")), THREADS, label,
                                 _cell(res[key]), "" if who == "ours" else f"{ratio:.2f}x"])  # fmt: skip
    headers = ["model", "engine", "backend", "threads", "test", "t/s (median ± IQR/2)", "ours ÷ this"]
    return markdown_table(headers, rows)


def _ttft_table(peers_by: dict[str, dict], n_max: int) -> str:
    rows = [[who, res.get("backend", res.get("tool", "")), n_max, _cell(res[f"ttft_x{n_max}"], 1e3),
             f"{1e3 * float(torch.tensor(res[f'ttft_x{n_max}']).quantile(0.95)):,.1f}"]
            for who, res in peers_by.items() if res.get(f"ttft_x{n_max}")]  # fmt: skip
    return markdown_table(["engine", "backend", "concurrency", "TTFT ms (median ± IQR/2)", "TTFT p95 ms"], rows)


def _print_details(info: dict, peers: _Peers, ours: dict, features: dict | None, qual: dict | None,
                   backend: str) -> None:
    """The machine, the peers' builds and versions, the feature rows, memory, quality."""
    print(f"\n{machine_line(info)}")
    build, llama, vllm = peers.build, peers.llama, peers.vllm
    if build:
        print(f"llama.cpp build: {build.get('source')}; cmake {' '.join(build.get('cmake_args', []))}; "
              f"extra C/C++ flags: {build.get('extra_c_flags') or 'none'}; built for {build.get('cpu')} "
              f"({build.get('cpu_isa')}); {build.get('compiler')}")  # fmt: skip
    if llama and llama.get("cpu_info"):
        print(f"llama-bench reports: cpu_info {llama['cpu_info']!r}, backends {llama.get('backends')}, "
              f"commit {llama.get('build_commit')}")  # fmt: skip
    if vllm:
        print(f"vLLM: {vllm.get('version')}; {vllm.get('config')}"
              + (f"; TRUNCATED: {vllm['truncated']}" if vllm.get("truncated") else ""))
    if features:
        from bench import llm_features

        rows_f = llm_features.feature_rows(features["prefix_caching"], features["structured_output"],
                                           features["speculative"], features["amx_prefill"])  # fmt: skip
        print("\n" + markdown_table(["feature (SmolLM2-135M Q4_1, ours)", "baseline", "with the feature", "ratio",
                                     "notes"], rows_f))  # fmt: skip
    rss_mb = ours["rss_bytes"] / 2**20
    print(f"\nengine process RSS after the run: {rss_mb:,.0f} MiB (KV cache {ours['kv_cache_bytes'] / 2**20:,.0f} MiB)")
    if qual:
        print("\n" + markdown_table(
            ["backend", "ppl fp32", "ppl backend", "Δ ppl", "greedy agreement (first 32)", "identical prompts",
             "mean common prefix"],
            [[backend, f"{qual['ppl_fp32']:.3f}", f"{qual['ppl_backend']:.3f}", f"{qual['ppl_increase']:+.2%}",
              f"{qual['greedy_agreement']:.1%}", f"{qual['prompts_identical']}/{qual['n_prompts']}",
              f"{qual['mean_common_prefix']:.1f}"]]))  # fmt: skip


def _checks(ours: dict, peers: _Peers, qual: dict | None, n_max: int) -> list[tuple[str, float, float]]:
    """(target, measured value, threshold): each passes when value >= threshold."""
    hf, llama, batched, vllm = peers.hf, peers.llama, peers.batched, peers.vllm
    checks = []
    if hf:
        checks.append(("≥ 7x transformers fp32 single stream", _med(ours["tg_x1"]) / _med(hf["tg_x1"]), 7.0))
    if llama:
        checks.append(("single-stream decode ≥ 1.0x llama.cpp", _med(ours["tg_x1"]) / _med(llama["tg_x1"]), 1.0))
        checks.append(("prefill ≥ 1.0x llama.cpp", _med(ours["pp"]) / _med(llama["pp"]), 1.0))
    if batched and batched.get(f"tg_x{n_max}"):
        checks.append((f"{n_max} streams ≥ 2x llama.cpp batched",
                       _med(ours[f"tg_x{n_max}"]) / _med(batched[f"tg_x{n_max}"]), 2.0))
    if vllm:  # a key it did not reach in its time budget gives NaN: a MISS
        checks.append(("single-stream decode ≥ 1.0x vLLM", _med(ours["tg_x1"]) / _med(vllm.get("tg_x1")), 1.0))
        checks.append((f"{n_max} streams ≥ 1.0x vLLM",
                       _med(ours[f"tg_x{n_max}"]) / _med(vllm.get(f"tg_x{n_max}")), 1.0))
        checks.append((f"TTFT at {n_max} streams ≤ vLLM's (value = vLLM / ours)",
                       _med(vllm.get(f"ttft_x{n_max}")) / _med(ours[f"ttft_x{n_max}"]), 1.0))
    checks.append(("replica RSS ≤ 1.5 GB", 1.5e9 / ours["rss_bytes"], 1.0))
    if qual:
        checks.append(("perplexity increase vs fp32 ≤ +3% (value = -increase)", -qual["ppl_increase"], -0.03))
        checks.append(("greedy agreement ≥ 90%", qual["greedy_agreement"] / 0.9, 1.0))
    return checks


def _verdict(checks: list[tuple[str, float, float]], missing: dict[str, str], requested: list[str]) -> bool:
    """Print PASS/MISS per target and per missing peer; True when anything missed."""
    failed = False
    for name, value, target in checks:
        ok = value >= target
        failed |= not ok
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value:.2f} (target {target})")
    for name, why in missing.items():  # a peer that could not run: its comparison was not made
        failed = True
        print(f"MISS  peer {name}: {why}")
    for name in PEERS:
        if name not in requested:
            print(f"SKIP  peer {name}: not requested (--peers)")
    return failed


def main() -> int:
    """Measure ours, then each peer, then quality and features; print the tables, write JSON,
    Markdown and a plot; check the targets."""
    args = _parse_args()
    pp, tg = (128, 32) if args.quick else (512, 128)
    reps = 2 if args.quick else 5
    streams = [1, 4, 16]
    gguf = str(load_weights().path)
    torch.set_num_threads(THREADS)
    info = machine()
    print(machine_line(info))
    console.print(f"[bold]ours[/] ({args.backend}) pp{pp} / tg{tg} x {streams}")
    ours = run_ours(args.backend, pp, tg, streams, reps)
    gc.collect()
    peers = _Peers()
    peers.measure(args, info, gguf, ours, pp, tg, streams, reps)
    qual = None
    if not args.skip_quality:
        console.print("[bold]quality[/] vs fp32")
        qual = quality(args.backend, 10 if args.quick else 50, 32, 512 if args.quick else 2048)
    features = _features(args)
    others = _other_models(args, peers, pp, tg, streams, reps)

    n_max = max(streams)
    tests = [("pp", f"pp{pp}")] + [(f"tg_x{n}", f"tg{tg} x{n} streams") for n in streams]
    table = _throughput_table(peers.by_name(ours), others, tests)
    ttft_table = _ttft_table(peers.by_name(ours), n_max)
    print(table)
    print("\n" + ttft_table)
    _print_details(info, peers, ours, features, qual, args.backend)
    payload = {
        "machine": info, "ours": ours, "llama_cpp": peers.llama, "llama_batched": peers.batched,
        "llama_build": peers.build, "transformers": peers.hf, "vllm": peers.vllm, "missing_peers": peers.missing,
        "quality": qual, "features": features,
        "other_models": {k: {w: {kk: vv for kk, vv in r.items() if kk != "prompt_ids"} for w, r in v.items()}
                         for k, v in others.items()},
        "quick": args.quick,
    }  # fmt: skip
    write_json("llm_bench", payload)
    write_text("llm_bench.md", table + "\n\n" + ttft_table + "\n\n" + machine_line(info) + "\n")
    plot(ours, peers.batched, streams)
    failed = _verdict(_checks(ours, peers, qual, n_max), peers.missing, args.peers)
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
