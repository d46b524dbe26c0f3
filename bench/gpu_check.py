"""The whole GPU check in one run (``bench/gpu_check.sh`` calls this): correctness on a truncated real
model carried from the CPU machine, then speed on random weights of the full model's shapes made on
the device, against fp16 eager, fp16 ``torch.compile`` and transformers ``generate`` in the same run.

Why one prepared script: a GPU machine, when one is lent, gives about 15 minutes for everything:
enough for one run and one rerun, not for development. Everything that can be prepared on the CPU
is (the truncated model, the reference logits, this script's own code paths up to the first CUDA
call, which ``tests/unit/test_gpu_check.py`` dry-runs), and every section on the device has a time
budget and catches its own failure, so one broken contender costs a line in the report, not the run.

Steps (on the CPU machine, then on the device)::

    python -m bench.gpu_check prepare            # writes .bench-cache/gpu_check/ (model.pt <= 16 MB (15.6 MB), gguf/)
    bash bench/gpu_check.sh                      # on the device, carrying .bench-cache/gpu_check

Sections on the device, in order (each skipped, with a line saying so, when the budget is spent):

1. versions: GPU, driver, CUDA, torch, triton, transformers;
2. correctness, truncated real model (4 layers, 7,168-token head): the ``triton`` backend (fp16) and
   the static decode step (eager, CUDA graph, ``torch.compile(mode="reduce-overhead")``) against the
   fp32 CPU reference logits stored in ``model.pt``; kernels against their references on every layer
   shape (bench/llm_triton_gpu.py's checks);
3. kernels: microseconds per call of the int4/int8 kernels vs cuBLAS fp16 at M = 1, 16, 64, 256;
4. decode tokens/s at batch 1, 16 and 64 (context 128) and TTFT at 512 prompt tokens, full-size
   random weights: ours (triton kernels: eager forward, static step in a CUDA graph, static step
   compiled) and peers (fp16 eager forward, fp16 static step with ``torch.compile`` reduce-overhead
   as gpt-fast runs it, transformers ``generate`` fp16);
5. with the budget left: the split-K GEMV configs per shape class measured (bench/triton_gemv_tune.py),
   the table written to ``$OUT/gemv_table.json`` for review (kernels/triton/gemv_table.json).

Exit codes: 0 done (sections may be skipped, the report says which), 1 a correctness check failed,
2 the carried model is missing or malformed, 3 no CUDA device: the CPU part passed and the run stops
where it needs a GPU (the dry run on the CPU machine ends here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CARRY_DIR = ROOT / ".bench-cache" / "gpu_check"
MODEL_FILE = CARRY_DIR / "model.pt"
MAX_MODEL_BYTES = 16_000_000
EXIT_CHECK_FAILED, EXIT_BAD_MODEL, EXIT_NO_CUDA = 1, 2, 3
TRUNC_LAYERS, TRUNC_VOCAB = 4, 7168
#: "The capital of France is Paris. The capital of Germany is" (every id inside the truncated head)
PROMPT = [1, 504, 3575, 282, 4649, 314, 7042, 30, 378, 3575, 282, 4521, 314]
DECODE_STEPS = 8
BATCHES = (1, 16, 64)
CONTEXT = 128
TTFT_TOKENS = 512
#: --rehearse-cpu: a tiny random Llama, so that every device section runs here in about a minute
REHEARSAL_CONFIG = {"n_layers": 2, "hidden": 64, "ffn": 128, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 512,
                    "context_length": 256, "rope_theta": 10000.0, "rms_eps": 1e-5}
#: |logit - fp32 reference| allowed for the fp16 paths, per unit of the reference's largest |logit|.
FP16_LOGIT_RTOL = 2e-2


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------------
# CPU side: the carried artifact
# ---------------------------------------------------------------------------------------------------
def weights_to_dict(weights: Any) -> dict[str, Any]:
    """A LlamaWeights as plain tensors and numbers (``torch.load(weights_only=True)`` reads it back).
    Every tensor is cloned: torch.save writes a view's whole storage, and the loaded tensors are
    views into larger buffers (the GGUF's, the full vocabulary's)."""
    cfg = weights.config
    layers = []
    for layer in weights.layers:
        d: dict[str, Any] = {"attn_norm": layer.attn_norm.clone(), "ffn_norm": layer.ffn_norm.clone()}
        for name in ("qkv", "o", "gate_up", "down"):
            w = getattr(layer, name)
            d[name] = {f: getattr(w, f).clone() for f in w.__slots__}
        layers.append(d)
    return {"config": {f: getattr(cfg, f) for f in cfg.__slots__},
            "embedding": {"qweight": weights.embedding.qweight.clone(), "scales": weights.embedding.scales.clone()},
            "layers": layers, "final_norm": weights.final_norm.clone()}


def weights_from_dict(d: dict[str, Any]) -> Any:
    from kernels.quant_reference import Int4Weight, Int8Weight
    from server.llm.gguf_weights import LayerWeights, LlamaConfig, LlamaWeights

    def quant(q: dict[str, Any]) -> Any:
        return Int4Weight(**q) if "mins" in q else Int8Weight(**q)

    layers = [LayerWeights(L["attn_norm"], L["ffn_norm"], quant(L["qkv"]), quant(L["o"]), quant(L["gate_up"]),
                           quant(L["down"])) for L in d["layers"]]  # fmt: skip
    return LlamaWeights(LlamaConfig(**d["config"]), Int8Weight(**d["embedding"]), layers, d["final_norm"],
                        Path("(carried)"))


def reference_run(model: Any, prompt: list[int], steps: int) -> tuple[Any, list[int]]:
    """Logits ``[1 + steps, vocab]`` of a prefill of ``prompt`` then ``steps`` greedy decode steps,
    and the greedy tokens: what every backend must reproduce."""
    import torch

    from server.llm.kv_cache import PagedKVCache
    from server.llm.llama import PrefillSegment, StepBatch

    cfg = model.config
    cache = PagedKVCache.with_slots(cfg.n_layers, 1, cfg.n_kv_heads, len(prompt) + steps + 1, cfg.head_dim,
                                    forward=model.forward)
    n = len(prompt)
    rows = [model.forward(StepBatch(torch.tensor(prompt), torch.arange(n), torch.empty(0, dtype=torch.long), [],
                                    [PrefillSegment(0, 0, n, 0)], torch.tensor([n - 1])), cache)[0]]
    tokens = [int(rows[-1].argmax())]
    for i in range(steps):
        pos = n + i
        rows.append(model.forward(StepBatch(torch.tensor([tokens[-1]]), torch.tensor([pos]), torch.tensor([0]),
                                            [pos + 1], [], torch.tensor([0])), cache)[0])
        tokens.append(int(rows[-1].argmax()))
    return torch.stack(rows), tokens


def prepare(out_dir: Path, n_layers: int, vocab: int) -> int:
    """Write the carried artifact: the truncated real model, the fp32 reference run, and the pure
    Python packages the device lacks (``gguf``: our weight modules import it; the device has torch,
    triton and transformers only, and can fetch nothing)."""
    import torch

    from server.llm.backends import fp32_linear
    from server.llm.gguf_weights import load_weights, truncate_weights
    from server.llm.llama import LlamaModel

    full = load_weights()
    if max(PROMPT) >= vocab:
        raise ValueError(f"the prompt uses token {max(PROMPT)}: keep at least {max(PROMPT) + 1} tokens")
    small = truncate_weights(full, n_layers, vocab)
    logits, tokens = reference_run(LlamaModel(small, fp32_linear), PROMPT, DECODE_STEPS)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.pt"
    torch.save({"weights": weights_to_dict(small), "full_config": {f: getattr(full.config, f)
                                                                   for f in full.config.__slots__},
                "prompt": PROMPT, "ref_logits": logits, "ref_tokens": tokens}, path)
    import gguf

    site = out_dir / "site"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(Path(gguf.__file__).parent, site / "gguf", ignore=shutil.ignore_patterns("__pycache__"))
    size = path.stat().st_size
    log(f"wrote {path} ({size / 2**20:.1f} MiB, {n_layers} layers, {vocab} tokens) and {site}/gguf")
    if size > MAX_MODEL_BYTES:
        log(f"  larger than {MAX_MODEL_BYTES / 1e6:.0f} MB: use fewer layers or tokens")
        return EXIT_BAD_MODEL
    return 0


def load_carried(path: Path) -> dict[str, Any]:
    """The artifact, checked for what the device sections need (a clear message, not a KeyError)."""
    import torch

    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m bench.gpu_check prepare` on the CPU machine "
                                "and carry .bench-cache/gpu_check with the run")
    data = torch.load(path, weights_only=True)
    missing = {"weights", "full_config", "prompt", "ref_logits", "ref_tokens"} - set(data)
    if missing:
        raise ValueError(f"{path}: missing {sorted(missing)} (written by an older version? run prepare again)")
    data["weights"] = weights_from_dict(data["weights"])
    cfg = data["weights"].config
    if data["ref_logits"].shape != (DECODE_STEPS + 1, cfg.vocab_size):
        raise ValueError(f"{path}: reference logits {tuple(data['ref_logits'].shape)} do not match the model")
    return data


# ---------------------------------------------------------------------------------------------------
# Device side
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What the device sections run: the real plan on CUDA, a tiny one for the CPU rehearsal (the same
    code, so a typo in a section fails here rather than on a 15-minute GPU lend)."""

    device: Any
    batches: tuple[int, ...] = BATCHES
    context: int = CONTEXT
    ttft_tokens: int = TTFT_TOKENS
    linears: dict[str, tuple[int, int]] | None = None  # None: bench/llm_triton_gpu.py's LINEARS
    m_values: tuple[int, ...] = (1, 16, 64, 256)
    decode_reps: int = 20

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def mode(self, wanted: str | None) -> str | None:
        """A static-step mode that runs here: on the CPU a CUDA graph becomes the eager step and
        reduce-overhead plain compilation."""
        if self.cuda or wanted is None:
            return wanted
        return None if wanted == "cuda-graph" else "default"


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


@dataclass
class Report:
    """Everything the run found: printed as it goes and written as JSON at the end."""

    started: float = field(default_factory=time.perf_counter)
    budget_s: float = 450.0
    versions: dict[str, str] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"check": what, "ok": ok, "detail": detail})
        log(f"  {'ok  ' if ok else 'FAIL'} {what} {detail}")

    def section(self, name: str, need_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` if ``need_s`` seconds are left; a failure is reported and the run goes on."""
        if self.left() < need_s:
            self.skipped.append(f"{name}: {self.left():.0f} s left of the budget, needs ~{need_s:.0f} s")
            log(f"-- {name}: SKIPPED ({self.skipped[-1]})")
            return
        log(f"-- {name} ({self.left():.0f} s of budget left)")
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # one broken section must not cost the rest of the run
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            log(f"  ERROR {name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")
        log(f"   ({time.perf_counter() - start:.0f} s)")

    def row(self, **kw: Any) -> None:
        self.rows.append(kw)
        log("  " + " | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in kw.items()))


def versions() -> dict[str, str]:
    import torch

    v = {"python": platform.python_version(), "torch": torch.__version__, "cuda_runtime": str(torch.version.cuda)}
    for mod in ("triton", "transformers"):
        try:
            v[mod] = __import__(mod).__version__
        except ImportError as exc:
            v[mod] = f"absent ({exc})"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        v["nvidia-smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        v["nvidia-smi"] = f"unavailable ({exc})"
    if torch.cuda.is_available():
        v["gpu"] = torch.cuda.get_device_name()
        v["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    return v


def timed_ms(fn: Callable[[], Any], device: Any, reps: int, warmup: int = 2) -> list[float]:
    """Milliseconds of each of ``reps`` calls, synchronised (one sample per call)."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync(device)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def fp16_linear(device: Any) -> Callable[[Any], Callable[[Any], Any]]:
    """The fp16 peers' linears: the GGUF weights dequantized once to fp16 on the device (cuBLAS)."""
    import torch
    import torch.nn.functional as F

    def make(w: Any) -> Callable[[Any], Any]:
        W = w.dequantize().to(device, torch.float16)
        return lambda x: F.linear(x, W)

    return make


def random_weights(cfg_dict: dict[str, Any], device: Any) -> Any:
    """Random weights of the full model's shapes, quantized to the GGUF's formats on the device
    (Q4_1 layers, Q8_0 embedding/head): speed does not depend on the values, and the 92 MB GGUF
    does not travel."""
    import torch

    from kernels.quant_reference import quantize_int4, quantize_int8
    from server.llm.gguf_weights import LayerWeights, LlamaConfig, LlamaWeights

    cfg = LlamaConfig(**cfg_dict)
    gen = torch.Generator(device=device).manual_seed(0)
    hd = cfg.head_dim

    def w4(n: int, k: int) -> Any:
        return quantize_int4(torch.randn(n, k, device=device, generator=gen) * k**-0.5)

    def norm() -> Any:
        return torch.ones(cfg.hidden, device=device)

    layers = [LayerWeights(norm(), norm(), w4((cfg.n_heads + 2 * cfg.n_kv_heads) * hd, cfg.hidden),
                           w4(cfg.hidden, cfg.hidden), w4(2 * cfg.ffn, cfg.hidden), w4(cfg.hidden, cfg.ffn))
              for _ in range(cfg.n_layers)]  # fmt: skip
    emb = quantize_int8(torch.randn(cfg.vocab_size, cfg.hidden, device=device, generator=gen))
    return LlamaWeights(cfg, emb, layers, norm(), Path("(random)"))


def correctness(rep: Report, data: dict[str, Any], plan: Plan) -> None:
    """Truncated real model: every path against the fp32 CPU reference run."""
    import torch

    from server.llm.backends.triton import triton_model
    from server.llm.kv_cache import PagedKVCache
    from server.llm.llama import LlamaModel
    from server.llm.static_step import StaticDecodeStep

    device = plan.device
    w, ref, ref_tokens, prompt = data["weights"], data["ref_logits"], data["ref_tokens"], data["prompt"]
    tol = FP16_LOGIT_RTOL * float(ref.abs().max())

    def compare(what: str, logits: Any, tokens: list[int] | None = None) -> None:
        err = float((logits.float().cpu() - ref[: len(logits)]).abs().max())
        agree = sum(a == b for a, b in zip(tokens or [], ref_tokens, strict=False))
        ok = err <= tol and (tokens is None or tokens[0] == ref_tokens[0])
        rep.check(what, ok, f"max |logit - fp32| {err:.3g} (allowed {tol:.3g})"
                  + (f"; greedy tokens equal to fp32's: {agree}/{len(ref_tokens)}" if tokens else ""))

    tri = triton_model(w, device)
    logits, tokens = reference_run(tri, prompt, DECODE_STEPS)
    compare("triton backend forward fp16 (prefill + 8 decode steps)", logits, tokens)
    compare("fp16 cuBLAS forward (prefill + 8 decode steps)",
            *reference_run(LlamaModel(w, fp16_linear(device), torch.float16, device), prompt, DECODE_STEPS))
    cfg = w.config
    n = len(prompt)
    for model_name, model in (("triton", tri), ("fp16", LlamaModel(w, fp16_linear(device), torch.float16, device))):
        for mode in dict.fromkeys(plan.mode(m) for m in (None, "cuda-graph", "reduce-overhead")):
            label = f"static decode step, {model_name} linears, {mode or 'eager'}"
            try:
                cache = PagedKVCache.with_slots(cfg.n_layers, 2, cfg.n_kv_heads, n + DECODE_STEPS + 1, cfg.head_dim,
                                                forward=model.forward)
                step = StaticDecodeStep(model, cache, max_batch=2, compile_mode=mode)
                from server.llm.llama import PrefillSegment, StepBatch

                first = model.forward(StepBatch(torch.tensor(prompt), torch.arange(n), torch.empty(0, dtype=torch.long),
                                                [], [PrefillSegment(0, 0, n, 0)], torch.tensor([n - 1])), cache)
                rows, toks = [first[0]], [int(first[0].argmax())]
                watch_syncs = mode is None and plan.cuda  # the eager step: any host sync in it raises
                with torch.inference_mode():
                    for i in range(DECODE_STEPS):
                        args = (torch.tensor([toks[-1]], device=device), torch.tensor([n + i], device=device),
                                torch.tensor([0], device=device))  # made before the watch: H2D copies sync
                        if watch_syncs:
                            torch.cuda.set_sync_debug_mode("error")
                        try:
                            out = step(*args, n + i + 1)
                        finally:
                            if watch_syncs:
                                torch.cuda.set_sync_debug_mode("default")
                        rows.append(out[0].float().cpu())
                        toks.append(int(rows[-1].argmax()))
                compare(label + (", no host sync inside" if watch_syncs else ""), torch.stack(rows), toks)
            except Exception as exc:  # report and go on to the next contender
                rep.check(label, False, f"{type(exc).__name__}: {str(exc)[:300]}")


def kernels_section(rep: Report, plan: Plan) -> None:
    """bench/llm_triton_gpu.py's checks and timings on the model's layer shapes, M = 1/16/64/256."""
    import kernels.triton as kt
    from bench import llm_triton_gpu as ktb

    linears = plan.linears or ktb.LINEARS
    checks = ktb.run_checks(kt, plan.device.type, linears, plan.m_values)
    rep.check(f"kernels vs references ({len(checks.passed)} checks)", not checks.failed, "; ".join(checks.failed[:5]))
    for r in ktb.run_timings(kt, plan.device.type, linears, plan.m_values):
        rep.row(section="kernel", kernel=r.kernel, shape=r.shape, m=r.m, us=r.triton_us, cublas_fp16_us=r.torch_us,
                speedup_vs_baseline=r.speedup, baseline=r.baseline, gbps=r.gbps)  # fmt: skip


def step_call(model: Any, cache: Any, step: Any, batch: Any) -> Callable[[], Any]:
    """One decode step of ``batch``: the eager forward (``step`` None) or the static step."""
    if step is None:
        return lambda: model.forward(batch, cache)
    length = max(batch.decode_lengths)
    return lambda: step(batch.token_ids, batch.positions, batch.decode_slots, length)


def decode_section(rep: Report, data: dict[str, Any], plan: Plan) -> None:
    """Decode tokens/s at each batch size and TTFT at 512 tokens, full-size random weights."""
    import torch

    from server.llm.backends.triton import triton_model
    from server.llm.kv_cache import PagedKVCache
    from server.llm.llama import LlamaModel, PrefillSegment, StepBatch
    from server.llm.static_step import StaticDecodeStep

    device = plan.device
    w = random_weights(data["full_config"], device)
    cfg = w.config
    models = {"triton": triton_model(w, device), "fp16": LlamaModel(w, fp16_linear(device), torch.float16, device)}
    contenders = [("ours: triton eager forward", "triton", "forward"),
                  ("ours: triton static step, CUDA graph", "triton", "cuda-graph"),
                  ("ours: triton static step, torch.compile reduce-overhead", "triton", "reduce-overhead"),
                  ("peer: fp16 eager forward", "fp16", "forward"),
                  ("peer: fp16 static step, torch.compile reduce-overhead", "fp16", "reduce-overhead")]
    max_b = max(plan.batches)
    caches = {k: PagedKVCache.with_slots(cfg.n_layers, max_b, cfg.n_kv_heads, max(plan.context, plan.ttft_tokens) + 16,
                                         cfg.head_dim, forward=m.forward) for k, m in models.items()}  # fmt: skip
    for name, model_key, mode in contenders:
        if rep.left() < 45:
            rep.skipped.append(f"decode {name}: budget spent")
            continue
        model, cache = models[model_key], caches[model_key]
        step = None if mode == "forward" else StaticDecodeStep(model, cache, max_batch=max_b,
                                                               compile_mode=plan.mode(mode))
        ctx = plan.context
        for b in plan.batches:
            tokens, positions, slots = (torch.arange(b, device=device), torch.full((b,), ctx, device=device),
                                        torch.arange(b, device=device))  # fmt: skip
            batch = StepBatch(tokens, positions, slots, [ctx + 1] * b, [], torch.arange(b, device=device))
            try:
                t0 = time.perf_counter()
                fn = step_call(model, cache, step, batch)
                fn()
                sync(device)
                first_s = time.perf_counter() - t0
                ms = timed_ms(fn, device, reps=plan.decode_reps)
                med = statistics.median(ms)
                rep.row(section="decode", contender=name, mode=plan.mode(mode) if step else "forward", batch=b,
                        context=ctx, ms_per_step=med,
                        tokens_per_s=b / med * 1e3, first_call_s=first_s)  # fmt: skip
            except Exception as exc:  # report, then the next contender
                rep.errors.append(f"decode {name} batch {b}: {type(exc).__name__}: {str(exc)[:300]}")
                log(f"  ERROR {rep.errors[-1]}")
                break
    n = plan.ttft_tokens
    ids = torch.randint(0, cfg.vocab_size, (n,))
    for model_key, model in models.items():
        pre = StepBatch(ids, torch.arange(n), torch.empty(0, dtype=torch.long), [], [PrefillSegment(0, 0, n, 0)],
                        torch.tensor([n - 1]))
        ms = timed_ms(lambda pre=pre, model=model, cache=caches[model_key]: model.forward(pre, cache).argmax(), device,
                      reps=5)
        rep.row(section="ttft", contender=f"{model_key} eager forward", prompt_tokens=n, ttft_ms=statistics.median(ms))
    del models, caches
    if plan.cuda:
        torch.cuda.empty_cache()


def transformers_section(rep: Report, data: dict[str, Any], plan: Plan) -> None:
    """The transformers peer: LlamaForCausalLM with random weights, fp16, ``generate`` greedy.
    Decode tokens/s = batch x (N - 1) / (time of N new tokens - time of 1), so its prefill is out."""
    import torch
    import transformers

    c, device = data["full_config"], plan.device
    hf_cfg = transformers.LlamaConfig(
        hidden_size=c["hidden"], intermediate_size=c["ffn"], num_hidden_layers=c["n_layers"],
        num_attention_heads=c["n_heads"], num_key_value_heads=c["n_kv_heads"], vocab_size=c["vocab_size"],
        rope_theta=c["rope_theta"], rms_norm_eps=c["rms_eps"], max_position_embeddings=c["context_length"],
        tie_word_embeddings=True,
    )
    with torch.device(device):
        model = transformers.LlamaForCausalLM(hf_cfg).to(torch.float16).eval()
    new = 32
    for b in plan.batches:
        if rep.left() < 30:
            rep.skipped.append(f"transformers generate batch {b}: budget spent")
            break
        ids = torch.randint(0, c["vocab_size"], (b, plan.context), device=device)

        def gen(n: int, ids: Any = ids) -> Any:
            return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, pad_token_id=0)

        with torch.inference_mode():
            produced = gen(new).shape[1] - plan.context
            t1 = statistics.median(timed_ms(lambda: gen(1), device, reps=5, warmup=2))
            tn = statistics.median(timed_ms(lambda: gen(new), device, reps=5, warmup=2))
        if produced != new:
            raise RuntimeError(f"generate made {produced} tokens, asked for exactly {new}")
        per_step = (tn - t1) / (new - 1)
        if per_step <= 0:
            raise RuntimeError(f"{new} tokens took {tn:.2f} ms, 1 token {t1:.2f} ms: too noisy to subtract")
        rep.row(section="decode", contender="peer: transformers generate fp16", batch=b, context=plan.context,
                ms_per_step=per_step, tokens_per_s=b / per_step * 1e3)
    ids = torch.randint(0, c["vocab_size"], (1, plan.ttft_tokens), device=device)
    with torch.inference_mode():
        ms = timed_ms(lambda: model(ids).logits[:, -1].argmax(), device, reps=5)
    rep.row(section="ttft", contender="transformers fp16 forward", prompt_tokens=plan.ttft_tokens,
            ttft_ms=statistics.median(ms))


def tune_section(rep: Report, out: Path) -> None:
    """Measure the split-K GEMV configs per shape class with what budget is left; the table goes to
    ``out/gemv_table.json`` (review it, then commit it as kernels/triton/gemv_table.json)."""
    from bench.triton_gemv_tune import tune

    table = tune(budget_s=max(20.0, rep.left() - 15), log=lambda line: log("  " + line))
    out.mkdir(parents=True, exist_ok=True)
    (out / "gemv_table.json").write_text(json.dumps(table, indent=2) + "\n")
    for e in table["entries"]:
        if e.get("measured"):
            rep.row(section="gemv_table", kind=e["kind"], shape_class=e["class"], us=e["us"],
                    cublas_fp16_us=e["cublas_fp16_us"], block_n=e["block_n"], block_k=e["block_k"],
                    split_k=e["split_k"])


def summary(rep: Report) -> str:
    lines = ["", "## gpu_check summary", "", *(f"- {k}: {v}" for k, v in rep.versions.items()), "",
             "| contender | batch | ms/step | tokens/s |", "|---|---:|---:|---:|"]
    lines += [f"| {r['contender']} | {r['batch']} | {r['ms_per_step']:.3f} | {r['tokens_per_s']:.0f} |"
              for r in rep.rows if r.get("section") == "decode"]
    lines += ["", "| TTFT (prefill + first token) | prompt tokens | ms |", "|---|---:|---:|"]
    lines += [f"| {r['contender']} | {r['prompt_tokens']} | {r['ttft_ms']:.2f} |" for r in rep.rows
              if r.get("section") == "ttft"]
    lines += ["", "| kernel | shape | M | us | cuBLAS fp16 us | speedup |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['kernel']} | {r['shape']} | {r['m']} | {r['us']:.1f} | {r['cublas_fp16_us']:.1f} | "
              f"{r['speedup_vs_baseline']:.2f}x |" for r in rep.rows if r.get("section") == "kernel"]
    lines += ["", "| GEMV table (M = 1, tuned here) | class | us | cuBLAS fp16 us | block_n / block_k / split_k |",
              "|---|---|---:|---:|---|"]
    lines += [f"| {r['kind']} | {r['shape_class']} | {r['us']:.1f} | {r['cublas_fp16_us']:.1f} | "
              f"{r['block_n']} / {r['block_k']} / {r['split_k']} |"
              for r in rep.rows if r.get("section") == "gemv_table"]
    failed = [c for c in rep.checks if not c["ok"]]
    lines += ["", f"checks: {len(rep.checks) - len(failed)} passed, {len(failed)} failed",
              *(f"- FAIL {c['check']}: {c['detail']}" for c in failed),
              *(f"- skipped {s}" for s in rep.skipped), *(f"- error {e}" for e in rep.errors),
              f"total {time.perf_counter() - rep.started:.0f} s"]
    return "\n".join(lines)


def rehearsal_data() -> dict[str, Any]:
    """A stand-in for the carried artifact: a tiny random Llama in the GGUF's formats, with its fp32
    reference run (the truncated real model is too big for the Triton interpreter)."""
    import torch

    from server.llm.backends import fp32_linear
    from server.llm.llama import LlamaModel

    weights = random_weights(REHEARSAL_CONFIG, torch.device("cpu"))
    prompt = [t % REHEARSAL_CONFIG["vocab_size"] for t in PROMPT]
    logits, tokens = reference_run(LlamaModel(weights, fp32_linear), prompt, DECODE_STEPS)
    return {"weights": weights, "full_config": REHEARSAL_CONFIG, "prompt": prompt, "ref_logits": logits,
            "ref_tokens": tokens}


def run(args: argparse.Namespace) -> int:
    rep = Report(budget_s=args.budget_s)
    import torch

    rep.versions = versions()
    for k, v in rep.versions.items():
        log(f"{k}: {v}")
    if args.rehearse_cpu:
        from bench.llm_triton_gpu import SMOKE_LINEARS

        data = rehearsal_data()
        plan = Plan(torch.device("cpu"), batches=(1, 2), context=16, ttft_tokens=32, linears=SMOKE_LINEARS,
                    m_values=(1, 16), decode_reps=2)
        log("gpu_check: CPU REHEARSAL (tiny random model, Triton interpreter): tests this script, numbers meaningless")
    else:
        try:
            data = load_carried(args.model)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log(f"gpu_check: the carried model is unusable: {exc}")
            return EXIT_BAD_MODEL
        plan = Plan(torch.device("cuda"))
    cfg = data["weights"].config
    log(f"carried model: {cfg.n_layers} layers, {cfg.vocab_size} tokens, reference greedy {data['ref_tokens']}")
    import kernels.triton as kt

    if not kt.triton_available():
        log("gpu_check: triton is not importable here; the triton backend cannot run")
    if plan.cuda and not torch.cuda.is_available():
        log("gpu_check: NO CUDA DEVICE: the CPU part passed (versions, carried model, imports); every section "
            "from here on needs a CUDA GPU. Stopping (exit code 3).")
        return EXIT_NO_CUDA
    torch.backends.cuda.matmul.allow_tf32 = True
    rep.section("correctness, truncated real model", 60, lambda: correctness(rep, data, plan))
    rep.section("kernels vs cuBLAS fp16", 60, lambda: kernels_section(rep, plan))
    rep.section("decode tokens/s and TTFT, full-size random weights", 90, lambda: decode_section(rep, data, plan))
    rep.section("transformers generate fp16", 45, lambda: transformers_section(rep, data, plan))
    out = Path(args.out) if args.out else (Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" /
                                           "results")  # fmt: skip
    if plan.cuda:
        rep.section("GEMV autotune table (bench/triton_gemv_tune.py)", 40, lambda: tune_section(rep, out))
    text = summary(rep)
    log(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps({"versions": rep.versions, "checks": rep.checks, "rows": rep.rows,
                                                    "skipped": rep.skipped, "errors": rep.errors}, indent=2))
    (out / "gpu_check.md").write_text(text + "\n")
    log(f"wrote {out / 'gpu_check.json'} and gpu_check.md")
    if any(not c["ok"] for c in rep.checks) or (args.rehearse_cpu and (rep.errors or rep.skipped)):
        return EXIT_CHECK_FAILED
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")
    prep = sub.add_parser("prepare", help="CPU machine: write the carried artifact")
    prep.add_argument("--out-dir", type=Path, default=CARRY_DIR)
    prep.add_argument("--layers", type=int, default=TRUNC_LAYERS)
    prep.add_argument("--vocab", type=int, default=TRUNC_VOCAB)
    p.add_argument("--model", type=Path, default=MODEL_FILE, help="the carried model.pt")
    p.add_argument("--budget-s", type=float, default=450.0, help="stop starting sections after this (default 7.5 min)")
    p.add_argument("--out", default=None, help="report directory (default $OUT, else bench/results)")
    p.add_argument("--rehearse-cpu", action="store_true",
                   help="run every device section on the CPU on a tiny random model (Triton interpreter): tests "
                   "this script; the numbers mean nothing")
    args = p.parse_args(argv)
    if args.rehearse_cpu:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton decorates our kernels (kernels/triton/__init__.py)
    if args.cmd == "prepare":
        return prepare(args.out_dir, args.layers, args.vocab)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
