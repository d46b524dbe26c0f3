"""Whole-step Llama forward in C++ (``kernels/cpp/llm_step.cpp``): one Python -> C++ call per engine step.

Why: running SmolLM2-135M in PyTorch eager costs ~7 ms per token in per-op overhead alone (30 layers
x ~20 ops), more than its arithmetic. :class:`CppLlamaStep` has the signature and semantics of
:meth:`server.llm.model.LlamaModel.forward` but makes a single call into C++, which runs every layer
with quantized matmuls (GGUF Q4_1 / Q8_0 weights x int8 activations, AVX-512 VNNI, OpenMP) and
fp32 attention, writing the KV cache in place.

Numerics: activations are quantized per block of 32 before every matmul. ``"int8"``: one int8 term
(scale absmax / 127, as llama.cpp does); logits differ from the fp32 reference by ~1e-2..1e-1 and
greedy decoding follows the fp32 forward for only ~64% of tokens (the down projection's inputs have
huge outliers). ``"int8x2"`` (the model default): a second int8 term holds the residual
x - d q with its own scale (~d / 254), W x ~= d1 (W q1) + d2 (W q2); the kernel reads each weight
block once for both terms. A row holding NaN or inf gives NaN outputs for that row.
``matmul_q4`` / ``matmul_q8`` expose the same matmuls alone (tests, benchmarks); ``pack_q4`` /
``pack_q8`` return a reusable packed linear layer.

Everything the C++ code indexes is validated here or in C++ (``ValueError`` naming the argument):
the C++ side never reads or writes out of bounds on bad input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from server.llm.gguf_weights import GROUP, Int4Weight, Int8Weight, LlamaConfig, LlamaWeights
from server.llm.kv_cache import SlotKVCache
from server.llm.model import StepBatch

try:  # the compiled module is optional: `python setup.py build_ext --inplace` builds it
    from kernels.cpp import _llm_step as _ext
except ImportError:  # pragma: no cover - exercised only without a build
    _ext = None

__all__ = [
    "CppLlamaStep",
    "PackedLinear",
    "available",
    "force_avx2",
    "force_scalar",
    "get_backend",
    "has_avx2",
    "has_avx512_vnni",
    "isa",
    "matmul_q4",
    "matmul_q8",
    "pack_q4",
    "pack_q8",
    "set_backend",
    "set_num_threads",
]


def available() -> bool:
    """True if the compiled module is importable (any x86-64 CPU; AVX-512 VNNI is optional)."""
    return _ext is not None


def _require() -> None:
    if _ext is None:
        raise RuntimeError("kernels.cpp._llm_step is not built: run `python setup.py build_ext --inplace`")


def has_avx512_vnni() -> bool:
    """True if the CPU has the fastest path (AVX-512 VNNI for every phase of a step)."""
    _require()
    return bool(_ext.has_avx512_vnni())


def has_avx2() -> bool:
    """True if the CPU has the AVX2 matmul path (used where AVX-512 VNNI is missing)."""
    _require()
    return bool(_ext.has_avx2())


def isa() -> str:
    """The matmul path a step takes now, chosen at run time: ``avx512-vnni``, ``avx2`` or ``scalar``."""
    _require()
    return str(_ext.isa())


def set_num_threads(n: int) -> None:
    """Default OpenMP thread count for every call (2 unless set); a ``CppLlamaStep`` may override it."""
    _require()
    if int(n) < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    _ext.set_num_threads(int(n))


def set_backend(name: str) -> None:
    """Parallel backend of every call (process-wide): ``"steal"`` (default) or ``"static"``.

    A step is a sequence of phases (~5 per layer for decode) run by OpenMP's threads (PyTorch's
    too, so sampling ops between steps do not oversubscribe the cores). ``steal``: each thread
    takes its contiguous share of a phase's work items, then steals what is left of the others'
    shares; a phase waits for its items, not for threads, so only the end of the step waits for a
    thread that another process keeps off the CPU. ``static``: static split and a barrier per
    phase (~150 per token), each of which can wait a scheduler time slice for such a thread
    (measured: decode 2-20 tok/s instead of 57-62 with ``steal`` while another process kept both
    cores busy; ~175 vs ~215 on a quiet machine).

    Results are bit-identical whatever the backend and thread count (every output is computed by
    one thread, in one order).
    """
    _require()
    _ext.set_backend(str(name))


def get_backend() -> str:
    _require()
    return str(_ext.get_backend())


@contextlib.contextmanager
def force_scalar(on: bool = True) -> Iterator[None]:
    """Run the portable scalar path inside the block (process-wide; used by tests)."""
    _require()
    old = _ext.force_scalar()
    _ext.set_force_scalar(bool(on))
    try:
        yield
    finally:
        _ext.set_force_scalar(old)


@contextlib.contextmanager
def force_avx2(on: bool = True) -> Iterator[None]:
    """Take the AVX2 matmul path even on an AVX-512 CPU inside the block (process-wide; tests)."""
    _require()
    old = _ext.force_avx2()
    _ext.set_force_avx2(bool(on))
    try:
        yield
    finally:
        _ext.set_force_avx2(old)


def _check_tensor(t: object, name: str, dtype: torch.dtype, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {dtype}, got {t.dtype}")
    if t.device.type != "cpu":
        raise ValueError(f"{name}: expected a CPU tensor, got device {t.device}")
    if shape is not None and tuple(t.shape) != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name}: must be contiguous")
    return t


ACTIVATIONS = ("int8x2", "int8")


def _check_activations(name: object) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {ACTIVATIONS}, got {name!r}")
    return str(name)


class PackedLinear:
    """A quantized weight repacked once for the C++ matmul; ``layer(x)`` is ``x @ W^T`` (float32)."""

    def __init__(self, impl, shape: tuple[int, int]) -> None:
        self._impl = impl
        self.shape = shape

    @property
    def nbytes(self) -> int:
        return int(self._impl.nbytes)

    def __call__(self, x: torch.Tensor, num_threads: int = 0, activations: str = "int8") -> torch.Tensor:
        k = self.shape[1]
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != k:
            raise ValueError(f"x: expected shape [M, {k}], got {tuple(x.shape)}")
        if x.dtype != torch.float32:
            raise ValueError(f"x: expected dtype torch.float32, got {x.dtype}")
        _check_activations(activations)
        x = x.contiguous()
        return torch.from_numpy(self._impl.matmul(x.numpy(), int(num_threads), activations))


def pack_q4(qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor) -> PackedLinear:
    """Pack a Q4_1 weight (``Int4Weight`` fields) for repeated :class:`PackedLinear` calls."""
    _require()
    if not isinstance(qweight, torch.Tensor) or qweight.dim() != 2:
        raise ValueError("qweight: expected a 2-D torch.Tensor [N, K/2]")
    n, k = int(qweight.shape[0]), int(qweight.shape[1]) * 2
    if n < 1 or k < GROUP or k % GROUP:
        raise ValueError(f"qweight: expected [N, K/2] with N >= 1 and K % {GROUP} == 0, got {tuple(qweight.shape)}")
    _check_tensor(qweight, "qweight", torch.uint8)
    _check_tensor(scales, "scales", torch.float32, (n, k // GROUP))
    _check_tensor(mins, "mins", torch.float32, (n, k // GROUP))
    return PackedLinear(_ext.pack_q4(qweight.numpy(), scales.numpy(), mins.numpy()), (n, k))


def pack_q8(qweight: torch.Tensor, scales: torch.Tensor) -> PackedLinear:
    """Pack a Q8_0 weight (``Int8Weight`` fields) for repeated :class:`PackedLinear` calls."""
    _require()
    if not isinstance(qweight, torch.Tensor) or qweight.dim() != 2:
        raise ValueError("qweight: expected a 2-D torch.Tensor [N, K]")
    n, k = int(qweight.shape[0]), int(qweight.shape[1])
    if n < 1 or k < GROUP or k % GROUP:
        raise ValueError(f"qweight: expected [N, K] with N >= 1 and K % {GROUP} == 0, got {tuple(qweight.shape)}")
    _check_tensor(qweight, "qweight", torch.int8)
    _check_tensor(scales, "scales", torch.float32, (n, k // GROUP))
    return PackedLinear(_ext.pack_q8(qweight.numpy(), scales.numpy()), (n, k))


def matmul_q4(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor) -> torch.Tensor:
    """``x @ dequantize(Q4_1)^T`` with int8 activations (packs the weight on every call: use pack_q4 to reuse)."""
    return pack_q4(qweight, scales, mins)(x)


def matmul_q8(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``x @ dequantize(Q8_0)^T`` with int8 activations (packs the weight on every call: use pack_q8 to reuse)."""
    return pack_q8(qweight, scales)(x)


def make_linear(w: Int4Weight | Int8Weight):
    """A ``LinearBackend`` for :class:`server.llm.model.LlamaModel` (2-D float32 input)."""
    if isinstance(w, Int4Weight):
        return pack_q4(w.qweight, w.scales, w.mins)
    if isinstance(w, Int8Weight):
        return pack_q8(w.qweight, w.scales)
    raise ValueError(f"unsupported weight type {type(w).__name__}")


class CppLlamaStep:
    """``LlamaModel.forward`` in one C++ call; weights are repacked at construction (~100 MB for SmolLM2-135M).

    ``activations``: how the layer matmuls quantize their inputs, ``"int8x2"`` (two int8 terms per
    block; default) or ``"int8"`` (faster, less accurate; see the module docstring).
    ``head_activations``: the same for the LM head (Q8_0); None: as ``activations``. Measured
    (50 prompts x 32 greedy tokens vs the fp32 forward): int8 everywhere 64% agreement, int8x2
    layers + int8 head 82%, int8 layers + int8x2 head 64%, int8x2 everywhere 100%.
    """

    def __init__(
        self,
        weights: LlamaWeights,
        num_threads: int | None = None,
        activations: str = "int8x2",
        head_activations: str | None = None,
    ) -> None:
        _require()
        _check_activations(activations)
        if head_activations is None:
            head_activations = activations
        _check_activations(head_activations)
        cfg: LlamaConfig = weights.config
        self.config = cfg
        h, hd = cfg.hidden, cfg.head_dim
        qkv_rows = (cfg.n_heads + 2 * cfg.n_kv_heads) * hd
        if len(weights.layers) != cfg.n_layers:
            raise ValueError(f"weights.layers: expected {cfg.n_layers} layers, got {len(weights.layers)}")

        # The C++ constructor reads these pointers and repacks the weights into its own memory; the
        # tensors are kept referenced anyway (cheap, and safe should that ever change).
        keep: list[torch.Tensor] = []

        def vec(t: torch.Tensor, name: str) -> int:
            _check_tensor(t, name, torch.float32, (h,))
            keep.append(t)
            return t.data_ptr()

        def q4(w: object, name: str, n: int, k: int) -> tuple[int, int, int]:
            if not isinstance(w, Int4Weight):
                raise ValueError(f"{name}: expected Int4Weight (Q4_1), got {type(w).__name__}")
            _check_tensor(w.qweight, f"{name}.qweight", torch.uint8, (n, k // 2))
            _check_tensor(w.scales, f"{name}.scales", torch.float32, (n, k // GROUP))
            _check_tensor(w.mins, f"{name}.mins", torch.float32, (n, k // GROUP))
            keep.extend([w.qweight, w.scales, w.mins])
            return w.qweight.data_ptr(), w.scales.data_ptr(), w.mins.data_ptr()

        emb = weights.embedding
        if not isinstance(emb, Int8Weight):
            raise ValueError(f"embedding: expected Int8Weight (Q8_0), got {type(emb).__name__}")
        _check_tensor(emb.qweight, "embedding.qweight", torch.int8, (cfg.vocab_size, h))
        _check_tensor(emb.scales, "embedding.scales", torch.float32, (cfg.vocab_size, h // GROUP))
        keep.extend([emb.qweight, emb.scales])
        lists: dict[str, list[int]] = {
            k: [] for k in ("attn_norm", "ffn_norm", *(f"{p}_{s}" for p in ("qkv", "o", "gu", "dn") for s in "qsm"))
        }
        for i, layer in enumerate(weights.layers):
            lists["attn_norm"].append(vec(layer.attn_norm, f"layers[{i}].attn_norm"))
            lists["ffn_norm"].append(vec(layer.ffn_norm, f"layers[{i}].ffn_norm"))
            for prefix, w, n, k in (
                ("qkv", layer.qkv, qkv_rows, h),
                ("o", layer.o, h, cfg.n_heads * hd),
                ("gu", layer.gate_up, 2 * cfg.ffn, h),
                ("dn", layer.down, h, cfg.ffn),
            ):
                ptrs = q4(w, f"layers[{i}].{prefix}", n, k)
                for s, p in zip("qsm", ptrs, strict=True):
                    lists[f"{prefix}_{s}"].append(p)
        self._impl = _ext.Llama(
            n_layers=cfg.n_layers,
            hidden=h,
            ffn=cfg.ffn,
            n_heads=cfg.n_heads,
            n_kv_heads=cfg.n_kv_heads,
            vocab=cfg.vocab_size,
            rope_theta=float(cfg.rope_theta),
            rms_eps=float(cfg.rms_eps),
            emb_q=emb.qweight.data_ptr(),
            emb_s=emb.scales.data_ptr(),
            final_norm=vec(weights.final_norm, "final_norm"),
            **lists,
            activations=activations,
            head_activations=head_activations,
        )
        self.activations = activations
        self.head_activations = head_activations
        self._keep = keep
        self._weights = weights
        if num_threads is not None:
            self.num_threads = num_threads

    @property
    def num_threads(self) -> int:
        """Threads used by :meth:`forward` (0: the module default of :func:`set_num_threads`)."""
        return int(self._impl.num_threads)

    @num_threads.setter
    def num_threads(self, n: int) -> None:
        if int(n) < 0:
            raise ValueError(f"num_threads must be >= 0, got {n}")
        self._impl.num_threads = int(n)

    @property
    def packed_bytes(self) -> int:
        """Bytes of repacked weights the step reads (all of them once per single-token decode)."""
        return int(self._impl.packed_bytes)

    def set_profiling(self, on: bool) -> None:
        """Accumulate wall time per phase (embed, qkv, attention, ...) across steps; see :meth:`profile`."""
        self._impl.set_profiling(bool(on))

    def profile(self, reset: bool = False) -> dict[str, float]:
        return dict(self._impl.profile(reset))

    def _row_slots(self, batch: StepBatch, t: int) -> torch.Tensor:
        """Slot of every packed row: decode rows first, then each prefill segment's rows."""
        n_dec = int(batch.decode_slots.shape[0])
        if len(batch.decode_lengths) != n_dec:
            raise ValueError(f"decode_lengths: expected {n_dec} entries, got {len(batch.decode_lengths)}")
        if not batch.prefills:
            if n_dec != t:
                raise ValueError(f"decode_slots: {n_dec} decode rows but {t} tokens and no prefill segments")
            slots = batch.decode_slots
        else:
            slots = torch.empty(t, dtype=torch.int64)
            slots[:n_dec] = batch.decode_slots
            row = n_dec
            for i, seg in enumerate(batch.prefills):
                if seg.row != row or seg.length < 1 or seg.row + seg.length > t:
                    raise ValueError(
                        f"prefills[{i}]: rows [{seg.row}, {seg.row + seg.length}) must follow row {row} within {t} rows"
                    )
                if seg.start < 0:
                    raise ValueError(f"prefills[{i}]: start must be >= 0, got {seg.start}")
                want = torch.arange(seg.start, seg.start + seg.length, dtype=torch.int64)
                if not torch.equal(batch.positions[seg.row : seg.row + seg.length], want):
                    raise ValueError(
                        f"positions: rows of prefills[{i}] must be {seg.start}..{seg.start + seg.length - 1}"
                    )
                slots[seg.row : seg.row + seg.length] = seg.slot
                row += seg.length
            if row != t:
                raise ValueError(f"prefills: cover rows up to {row} but there are {t} tokens")
        if n_dec:
            lengths = batch.positions[:n_dec] + 1
            if lengths.tolist() != [int(v) for v in batch.decode_lengths]:
                raise ValueError("decode_lengths: must equal positions + 1 of the decode rows")
        return slots

    def forward(self, batch: StepBatch, cache: SlotKVCache) -> torch.Tensor:
        """Logits [len(sample_rows), vocab] (float32); writes this step's K/V into ``cache``."""
        cfg = self.config
        tok = _check_tensor(batch.token_ids, "token_ids", torch.int64)
        if tok.dim() != 1:
            raise ValueError(f"token_ids: expected 1-D, got shape {tuple(tok.shape)}")
        t = int(tok.shape[0])
        pos = _check_tensor(batch.positions, "positions", torch.int64, (t,))
        _check_tensor(batch.decode_slots, "decode_slots", torch.int64)
        if batch.decode_slots.dim() != 1:
            raise ValueError("decode_slots: expected 1-D")
        sample = _check_tensor(batch.sample_rows, "sample_rows", torch.int64)
        if sample.dim() != 1:
            raise ValueError("sample_rows: expected 1-D")
        shape = (cfg.n_layers, cache.n_slots, cfg.n_kv_heads, cache.max_len, cfg.head_dim)
        _check_tensor(cache.k, "cache.k", torch.float32, shape)
        _check_tensor(cache.v, "cache.v", torch.float32, shape)
        slots = _check_tensor(self._row_slots(batch, t), "slots", torch.int64, (t,))
        logits = torch.empty(int(sample.shape[0]), cfg.vocab_size, dtype=torch.float32)
        # Ranges (token ids, positions < max_len, slots < n_slots, sample rows < T, no repeated cache
        # cell) are checked in C++ before any work, with ValueErrors naming the argument.
        self._impl.step(
            tok.numpy(),
            pos.numpy(),
            slots.numpy(),
            sample.numpy(),
            cache.k.data_ptr(),
            cache.v.data_ptr(),
            cache.n_slots,
            cache.max_len,
            logits.numpy(),
        )
        return logits

    __call__ = forward
