"""Whole-step Llama forward in C++ (``kernels/cpp/llm_step.cpp``): one Python -> C++ call per engine step.

Why: running SmolLM2-135M in PyTorch eager costs ~7 ms per token in per-op overhead alone (30 layers
x ~20 ops), more than its arithmetic. :class:`server.llm.backends.cpu_int4.CppLlamaStep` has the
signature and semantics of
:meth:`server.llm.llama.LlamaModel.forward` but makes a single call into C++, which runs every layer
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

from kernels.quant_reference import GROUP, Int4Weight, Int8Weight

try:  # the compiled module is optional: `python setup.py build_ext --inplace` builds it
    from kernels.cpp import _llm_step as _ext
except ImportError:  # pragma: no cover - exercised only without a build
    _ext = None

__all__ = [
    "PackedLinear",
    "available",
    "check_activations",
    "check_tensor",
    "force_avx2",
    "force_no_amx",
    "force_scalar",
    "get_backend",
    "has_amx",
    "has_avx2",
    "has_avx512_vnni",
    "isa",
    "matmul_q4",
    "matmul_q8",
    "native",
    "pack_q4",
    "pack_q8",
    "require_built",
    "set_backend",
    "set_num_threads",
]


def available() -> bool:
    """True if the compiled module is importable (any x86-64 CPU; AVX-512 VNNI is optional)."""
    return _ext is not None


def require_built() -> None:
    """Raise a clear error when the extension was not compiled (callers then choose another backend)."""
    if _ext is None:
        raise RuntimeError("kernels.cpp._llm_step is not built: run `python setup.py build_ext --inplace`")


def native():
    """The compiled module, for adapters that drive the whole-step model (``server/llm/backends/cpu_int4.py``)."""
    require_built()
    return _ext


def has_avx512_vnni() -> bool:
    """True if the CPU has the fastest path (AVX-512 VNNI for every phase of a step)."""
    require_built()
    return bool(_ext.has_avx512_vnni())


def has_avx2() -> bool:
    """True if the CPU has the AVX2 matmul path (used where AVX-512 VNNI is missing)."""
    require_built()
    return bool(_ext.has_avx2())


def has_amx() -> bool:
    """True if the CPU has Intel AMX int8 tiles and Linux granted this process their state
    (``arch_prctl(ARCH_REQ_XCOMP_PERM)``, asked once); matmuls of two or more rows then use them."""
    require_built()
    return bool(_ext.has_amx())


def isa() -> str:
    """The matmul path a step takes now, chosen at run time: ``avx512-vnni+amx`` (AMX tiles for
    matmuls of two or more rows, VNNI for one), ``avx512-vnni``, ``avx2`` or ``scalar``."""
    require_built()
    return str(_ext.isa())


def set_num_threads(n: int) -> None:
    """Default OpenMP thread count for every call (2 unless set); a ``CppLlamaStep`` may override it."""
    require_built()
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
    require_built()
    _ext.set_backend(str(name))


def get_backend() -> str:
    require_built()
    return str(_ext.get_backend())


@contextlib.contextmanager
def _process_flag(name: str, on: bool) -> Iterator[None]:
    """Set the extension's process-wide flag ``name`` inside the block, restoring it after."""
    require_built()
    old = getattr(_ext, name)()
    getattr(_ext, f"set_{name}")(bool(on))
    try:
        yield
    finally:
        getattr(_ext, f"set_{name}")(old)


def force_scalar(on: bool = True) -> contextlib.AbstractContextManager[None]:
    """Run the portable scalar path inside the block (process-wide; used by tests)."""
    return _process_flag("force_scalar", on)


def force_no_amx(on: bool = True) -> contextlib.AbstractContextManager[None]:
    """Keep many-row matmuls on AVX-512 VNNI even where AMX is available (tests: the two paths
    give bit-identical results; benchmarks: what the tiles bring)."""
    return _process_flag("force_no_amx", on)


def force_avx2(on: bool = True) -> contextlib.AbstractContextManager[None]:
    """Take the AVX2 matmul path even on an AVX-512 CPU inside the block (process-wide; tests)."""
    return _process_flag("force_avx2", on)


def check_tensor(t: object, name: str, dtype: torch.dtype, shape: tuple[int, ...] | None = None) -> torch.Tensor:
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


def check_activations(name: object) -> str:
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
        check_activations(activations)
        x = x.contiguous()
        return torch.from_numpy(self._impl.matmul(x.numpy(), int(num_threads), activations))


def pack_q4(qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor) -> PackedLinear:
    """Pack a Q4_1 weight (``Int4Weight`` fields) for repeated :class:`PackedLinear` calls."""
    require_built()
    if not isinstance(qweight, torch.Tensor) or qweight.dim() != 2:
        raise ValueError("qweight: expected a 2-D torch.Tensor [N, K/2]")
    n, k = int(qweight.shape[0]), int(qweight.shape[1]) * 2
    if n < 1 or k < GROUP or k % GROUP:
        raise ValueError(f"qweight: expected [N, K/2] with N >= 1 and K % {GROUP} == 0, got {tuple(qweight.shape)}")
    check_tensor(qweight, "qweight", torch.uint8)
    check_tensor(scales, "scales", torch.float32, (n, k // GROUP))
    check_tensor(mins, "mins", torch.float32, (n, k // GROUP))
    return PackedLinear(_ext.pack_q4(qweight.numpy(), scales.numpy(), mins.numpy()), (n, k))


def pack_q8(qweight: torch.Tensor, scales: torch.Tensor) -> PackedLinear:
    """Pack a Q8_0 weight (``Int8Weight`` fields) for repeated :class:`PackedLinear` calls."""
    require_built()
    if not isinstance(qweight, torch.Tensor) or qweight.dim() != 2:
        raise ValueError("qweight: expected a 2-D torch.Tensor [N, K]")
    n, k = int(qweight.shape[0]), int(qweight.shape[1])
    if n < 1 or k < GROUP or k % GROUP:
        raise ValueError(f"qweight: expected [N, K] with N >= 1 and K % {GROUP} == 0, got {tuple(qweight.shape)}")
    check_tensor(qweight, "qweight", torch.int8)
    check_tensor(scales, "scales", torch.float32, (n, k // GROUP))
    return PackedLinear(_ext.pack_q8(qweight.numpy(), scales.numpy()), (n, k))


def matmul_q4(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor) -> torch.Tensor:
    """``x @ dequantize(Q4_1)^T`` with int8 activations (packs the weight on every call: use pack_q4 to reuse)."""
    return pack_q4(qweight, scales, mins)(x)


def matmul_q8(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``x @ dequantize(Q8_0)^T`` with int8 activations (packs the weight on every call: use pack_q8 to reuse)."""
    return pack_q8(qweight, scales)(x)


def make_linear(w: Int4Weight | Int8Weight):
    """A ``LinearBackend`` for :class:`server.llm.llama.LlamaModel` (2-D float32 input)."""
    if isinstance(w, Int4Weight):
        return pack_q4(w.qweight, w.scales, w.mins)
    if isinstance(w, Int8Weight):
        return pack_q8(w.qweight, w.scales)
    raise ValueError(f"unsupported weight type {type(w).__name__}")
