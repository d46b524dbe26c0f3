"""GPU backend: a TensorRT engine built from our ONNX step graph (server/llm/backends/onnx_export.py).

**Not exercised on CI**: our CI machines have neither the ``tensorrt`` package nor a CUDA GPU.
Without them ``tensorrt_forward`` raises ``TensorRTUnavailableError`` (a
``BackendUnavailableError``) with a message that says so; the ONNX side (the graphs below, run by
ONNX Runtime on the CPU) is tested, the TensorRT calls are not. The one test that builds an engine
is marked ``gpu`` and skips unless ``tensorrt`` and CUDA are present.

Precision lives in the ONNX graph, not in builder flags. ``BuilderFlag.FP16/INT8/FP8`` (weak
typing) were deprecated in TensorRT 10.12 and are removed in 11.x, so the engine is built from a
*strongly typed* network (``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` on 10.x, the only mode
on 11.x) whose types are the graph's:

* ``fp16``: the mixed-precision export (``OnnxLlamaStep(dtype=float16)``): fp16 weights, matmuls
  and KV cache; residual stream, RMSNorm, RoPE and softmax in fp32; fp32 logits.
* ``int8``: the same graph with weight-only int8 (``qdq_weight_only``): every weight is an int8
  initializer (symmetric, per output channel) behind a ``DequantizeLinear`` with an fp16 scale, so
  TensorRT stores int8 weights and runs the GEMMs in fp16 (explicit quantization, weight-only).
* ``fp8``: likewise with float8 e4m3 weights and one scale per tensor (needs compute capability
  >= 8.9: Ada, Hopper or newer).

Engine shape: one optimization profile over the dynamic axes (B = 1, T in [1, max_new_tokens],
P in [0, max_len - 1]; opt = a decode step at half the context), head on the last token only.
Limitation, by design of this first version: the engine runs **one sequence per step**, so the
serving config must set ``llm.max_num_seqs: 1``; its KV cache lives in the engine's own GPU buffers
(present -> past), not in ``PagedKVCache``.

What the serving config may ask for, checked by :func:`validate_config` when the LLM engine starts
(before ``tensorrt`` is imported, so a wrong setting is refused on any machine, naming the setting
and the value this backend supports):

* ``llm.max_num_seqs`` must be 1 (refused otherwise);
* ``llm.max_model_len`` is served: the engine's profile is built for that context (capped by the
  model's), so a sequence never outgrows it;
* ``llm.max_num_batched_tokens`` is served: the profile's widest step is that budget (capped by the
  context), and a longer chunk would be split into several engine calls;
* ``llm.activation_precision`` is a cpu-int4 setting: TensorRT runs fp16 activations whatever the
  weights (``STACKSERVE_TRT_PRECISION`` = fp16 / int8 / fp8, checked too), so ``int8`` is refused;
  the default ``int8x2`` is taken as unset;
* sampling (temperature, top-k, top-p, repetition penalty, seed, stop strings) runs in the engine on
  the logits this backend returns, so every sampling feature is served.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from server.llm.errors import BackendUnavailableError
from server.llm.gguf_weights import LlamaConfig, LlamaWeights
from server.llm.llama import StepBatch

PRECISIONS = ("fp16", "int8", "fp8")
OPSET = 19  # DequantizeLinear with fp16 scales and float8 weights needs opset >= 19
UNAVAILABLE = (
    "backend 'tensorrt' needs the `tensorrt` package and a CUDA GPU; not installed here — "
    "this path is not exercised on CI"
)


class TensorRTUnavailableError(BackendUnavailableError):
    """``tensorrt`` is not importable or there is no CUDA GPU (a RuntimeError, like its base)."""


class TensorRTConfigError(ValueError):
    """A serving setting the TensorRT backend cannot honour (the message names it and what works)."""


def validate_config(config, precision: str | None = None) -> str:
    """Refuse every ``llm.*`` setting this backend cannot serve; return the weight precision to build.

    ``config`` is an ``LLMConfig`` (anything with its attributes). Runs before ``tensorrt`` is
    imported: a config mistake is reported as such on any machine, GPU or not.
    """
    problems = []
    if config.max_num_seqs != 1:
        problems.append(
            f"llm.max_num_seqs={config.max_num_seqs}: the TensorRT engine runs one sequence per step; "
            f"the supported value is 1"
        )
    if getattr(config, "activation_precision", "int8x2") != "int8x2":
        problems.append(
            f"llm.activation_precision={config.activation_precision!r} is a cpu-int4 setting: TensorRT runs "
            f"fp16 activations; leave it at its default 'int8x2' (ignored here) and choose the weight "
            f"precision with STACKSERVE_TRT_PRECISION ({', '.join(PRECISIONS)})"
        )
    precision = precision or os.environ.get("STACKSERVE_TRT_PRECISION", "fp16")
    if precision not in PRECISIONS:
        problems.append(
            f"STACKSERVE_TRT_PRECISION={precision!r}: the supported values are {', '.join(PRECISIONS)}"
        )
    if problems:
        raise TensorRTConfigError("backend 'tensorrt' cannot serve this config: " + "; ".join(problems))
    return precision


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


# ------------------------------------------------------------------------------------------------
# ONNX side (runs anywhere; tested with ONNX Runtime)


def export_for_tensorrt(weights: LlamaWeights, path: str | Path, precision: str = "fp16") -> Path:
    """The step graph TensorRT builds for ``precision``: fp16 mixed precision, opset 19, last-token
    logits; ``int8`` / ``fp8`` add weight-only DequantizeLinear nodes (see the module docstring)."""
    from server.llm.backends.onnx_export import export_onnx, qdq_weight_only

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    path = Path(path)
    export_onnx(weights, path, opset=OPSET, last_logits_only=True, dtype=torch.float16)
    if precision != "fp16":
        qdq_weight_only(path, path, dtype=precision)
    return path


def profile_shapes(
    cfg: LlamaConfig, max_new_tokens: int = 256, max_len: int = 2048, max_batch: int = 1
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) per input for the optimization profile. opt is a single-token decode step
    (the common case) with half the context in the cache; P may be 0 (first prefill chunk)."""
    L, kv, hd = cfg.n_layers, cfg.n_kv_heads, cfg.head_dim
    max_len = min(max_len, cfg.context_length)
    max_new_tokens = min(max_new_tokens, max_len)
    opt_past = max_len // 2
    tok = ((1, 1), (1, 1), (max_batch, max_new_tokens))
    past = ((L, 1, kv, 0, hd), (L, 1, kv, opt_past, hd), (L, max_batch, kv, max_len - 1, hd))
    return {
        "input_ids": tok,
        "position_ids": tok,
        "attention_mask": ((1, 1), (1, opt_past + 1), (max_batch, max_len)),
        "past_key": past,
        "past_value": past,
    }


# ------------------------------------------------------------------------------------------------
# TensorRT side (needs tensorrt + CUDA; not run on CI)


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str = "fp16",
    *,
    cfg: LlamaConfig,
    max_new_tokens: int = 256,
    max_len: int = 2048,
    workspace_bytes: int = 4 << 30,
) -> Path:
    """Parse ``onnx_path`` (from ``export_for_tensorrt`` with the same ``precision``) into a
    strongly typed network and write the serialized engine to ``engine_path``."""
    if not tensorrt_available():
        raise TensorRTUnavailableError(UNAVAILABLE)
    import tensorrt as trt

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "fp8" and torch.cuda.get_device_capability() < (8, 9):
        raise BackendUnavailableError(
            f"fp8 weights need compute capability >= 8.9; this GPU is {torch.cuda.get_device_name()}"
        )
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:  # 10.x: opt in; 11.x: always strongly typed
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile_shapes(cfg, max_new_tokens, max_len).items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    engine_path = Path(engine_path)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_suffix(".tmp")
    tmp.write_bytes(memoryview(plan))
    tmp.replace(engine_path)  # a crash mid-write never leaves a truncated engine in the cache
    return engine_path


def _torch_dtype(trt, dt) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.INT64: torch.int64}
    if dt not in table:
        raise TypeError(f"unexpected TensorRT I/O type {dt}")
    return table[dt]


class TensorRTLlamaStep:
    """Runs the engine for one sequence: a prefill chunk or a decode token per call, carrying the
    ``present_*`` outputs back in as ``past_*``; serves ``forward(batch, cache)`` for the engine."""

    device = torch.device("cpu")  # the LLMEngine's PagedKVCache stays on the CPU: KV lives in here

    def __init__(self, engine_path: str | Path, cfg: LlamaConfig, max_new_tokens: int, max_len: int) -> None:
        import tensorrt as trt

        self._trt = trt
        self.cfg = cfg
        self.max_new_tokens = max_new_tokens
        self.max_len = max_len
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"could not deserialize {engine_path} (built by another TensorRT version/GPU?)")
        self.context = self.engine.create_execution_context()
        self.cuda = torch.device("cuda")
        self._dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n))
                        for n in (self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors))}
        self._dummy = torch.empty(256, dtype=torch.uint8, device=self.cuda)  # address for empty tensors
        self.reset()

    def reset(self) -> None:
        c = self.cfg
        shape = (c.n_layers, 1, c.n_kv_heads, 0, c.head_dim)
        self._k = torch.empty(shape, dtype=self._dtypes["past_key"], device=self.cuda)
        self._v = torch.empty(shape, dtype=self._dtypes["past_value"], device=self.cuda)

    @property
    def length(self) -> int:
        return int(self._k.shape[3])

    def _addr(self, t: torch.Tensor) -> int:
        return t.data_ptr() if t.numel() else self._dummy.data_ptr()

    def step(self, ids: list[int]) -> torch.Tensor:
        """Append ``ids`` (<= max_new_tokens) to the sequence; next-token logits [vocab] on the GPU."""
        p, t = self.length, len(ids)
        if p + t > self.max_len:
            raise ValueError(f"sequence of {p + t} tokens exceeds the engine's max_len {self.max_len}")
        dev = self.cuda
        inputs = {
            "input_ids": torch.tensor([ids], dtype=self._dtypes["input_ids"], device=dev),
            "position_ids": torch.arange(p, p + t, dtype=self._dtypes["position_ids"], device=dev)[None],
            "attention_mask": torch.ones((1, p + t), dtype=self._dtypes["attention_mask"], device=dev),
            "past_key": self._k,
            "past_value": self._v,
        }
        ctx = self.context
        for name, tensor in inputs.items():
            if not ctx.set_input_shape(name, tuple(tensor.shape)):
                raise RuntimeError(f"TensorRT rejected shape {tuple(tensor.shape)} for {name}")
            ctx.set_tensor_address(name, self._addr(tensor))
        outputs = {}
        for name in ("logits", "present_key", "present_value"):
            shape = tuple(ctx.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=self._dtypes[name], device=dev)
            ctx.set_tensor_address(name, self._addr(outputs[name]))
        stream = torch.cuda.current_stream(dev)  # same stream as the torch ops that made the inputs
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self._k, self._v = outputs["present_key"], outputs["present_value"]
        return outputs["logits"][0, -1]

    @torch.inference_mode()
    def forward(self, batch: StepBatch, cache) -> torch.Tensor:
        if cache.n_slots != 1:  # validate_config refuses this at engine start; kept for direct callers
            raise ValueError(
                f"backend 'tensorrt' runs one sequence per step: set llm.max_num_seqs: 1 "
                f"(the KV cache has {cache.n_slots} slots)"
            )
        n_seqs = int(batch.decode_slots.shape[0]) + len(batch.prefills)
        if n_seqs != 1:
            raise ValueError(f"backend 'tensorrt' runs one sequence per step, this step has {n_seqs}")
        ids = batch.token_ids.tolist()
        start = int(batch.positions[0])
        if start == 0:
            self.reset()  # a new sequence in the one slot
        elif start != self.length:
            raise RuntimeError(f"TensorRT KV state holds {self.length} tokens but the step starts at {start}")
        for i in range(0, len(ids), self.max_new_tokens):  # chunks the profile allows
            logits = self.step(ids[i : i + self.max_new_tokens])
        rows = batch.sample_rows.tolist()
        if not rows:
            return torch.empty(0, self.cfg.vocab_size, dtype=torch.float32)
        if rows != [len(ids) - 1]:
            raise ValueError(f"backend 'tensorrt' samples only the step's last token, asked for rows {rows}")
        return logits.float().cpu()[None]


def _cache_key(weights: LlamaWeights) -> str:
    st = os.stat(weights.path)
    c = weights.config
    text = f"{Path(weights.path).resolve()}:{st.st_size}:{st.st_mtime_ns}:{c}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def tensorrt_forward(
    weights: LlamaWeights,
    precision: str | None = None,
    cache_dir: str | Path | None = None,
    max_new_tokens: int = 256,
    max_len: int = 2048,
    config=None,
):
    """Export (cached), build (cached per TensorRT version and GPU) and load the engine; returns
    ``forward(batch, cache)``. ``precision`` defaults to $STACKSERVE_TRT_PRECISION or ``fp16``.

    ``config`` (the engine's ``LLMConfig``): validated first (:func:`validate_config`), and its
    ``max_model_len`` / ``max_num_batched_tokens`` size the engine's profile instead of
    ``max_len`` / ``max_new_tokens``."""
    if config is not None:
        precision = validate_config(config, precision)
        max_len = min(config.max_model_len, weights.config.context_length)
        max_new_tokens = min(config.max_num_batched_tokens, max_len)
    if not tensorrt_available():
        raise TensorRTUnavailableError(UNAVAILABLE)
    import tensorrt as trt

    from server.config import default_data_dir

    precision = precision or os.environ.get("STACKSERVE_TRT_PRECISION", "fp16")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    root = Path(cache_dir) if cache_dir else default_data_dir() / "tensorrt"
    stem = f"{Path(weights.path).stem}-{_cache_key(weights)}-{precision}"
    onnx_path = root / f"{stem}.onnx"
    gpu = re.sub(r"[^A-Za-z0-9_.-]+", "_", torch.cuda.get_device_name())
    engine_path = root / f"{stem}-t{max_new_tokens}-l{max_len}-trt{trt.__version__}-{gpu}.engine"
    if not engine_path.exists():
        if not onnx_path.exists():
            tmp = onnx_path.with_suffix(".tmp.onnx")
            export_for_tensorrt(weights, tmp, precision)
            tmp.replace(onnx_path)
        build_engine(onnx_path, engine_path, precision, cfg=weights.config,
                     max_new_tokens=max_new_tokens, max_len=max_len)
    step = TensorRTLlamaStep(engine_path, weights.config, max_new_tokens, min(max_len, weights.config.context_length))
    return step.forward
