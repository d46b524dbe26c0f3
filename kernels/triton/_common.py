"""Launch checks shared by the Triton kernels.

Why a module of its own: every wrapper must refuse the same mistakes with the same words (wrong
device, a CPU tensor without the interpreter, kernels compiled before ``TRITON_INTERPRET`` was
set), and pick block sizes knowing whether it runs on a GPU or in the CPU interpreter.
"""

from __future__ import annotations

import os

import torch

#: Activation dtypes every kernel accepts; math inside is always float32.
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def interpreter_requested() -> bool:
    """True when ``TRITON_INTERPRET=1``: Triton then runs kernels in NumPy on the CPU."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def is_interpreted(kernel: object) -> bool:
    """True if ``kernel`` was decorated while the interpreter was on.

    ``triton.jit`` reads ``TRITON_INTERPRET`` when the decorator runs (module import), not at launch,
    so the environment variable alone does not say how a kernel will run.
    """
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(kernel, InterpretedFunction)


def check_float(name: str, t: torch.Tensor, ndim: int) -> None:
    """Raise ValueError unless ``t`` is a float32/float16/bfloat16 tensor with ``ndim`` dimensions."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")


def check_launch(kernel: object, **tensors: torch.Tensor) -> bool:
    """Check that the tensors share one device the kernel can run on; return True if interpreted.

    Raises ValueError for mixed devices and RuntimeError when CPU tensors meet GPU-compiled kernels,
    with the fix in the message (set ``TRITON_INTERPRET=1`` before importing ``kernels.triton``).
    """
    devices = {t.device for t in tensors.values()}
    if len(devices) != 1:
        where = ", ".join(f"{name} on {t.device}" for name, t in tensors.items())
        raise ValueError(f"all tensors must be on one device: {where}")
    device = devices.pop()
    interpreted = is_interpreted(kernel)
    if device.type == "cpu" and not interpreted:
        if not interpreter_requested():
            raise RuntimeError(
                "Triton kernels need a GPU; CPU tensors run only in the Triton interpreter: set "
                "TRITON_INTERPRET=1 in the environment before kernels.triton is first imported"
            )
        raise RuntimeError(
            "TRITON_INTERPRET=1 was set after kernels.triton was imported, so its kernels were "
            "compiled for the GPU; set it before the first import (triton.jit reads it at decoration)"
        )
    if interpreted and not interpreter_requested():
        raise RuntimeError(
            "kernels.triton was imported with TRITON_INTERPRET=1, so its kernels run in the Triton "
            "interpreter, which needs TRITON_INTERPRET=1 to stay set while they run"
        )
    if device.type not in ("cpu", "cuda") and not interpreted:
        raise RuntimeError(f"Triton kernels run on CUDA devices (or CPU under the interpreter), got {device}")
    return interpreted


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (>= 1): Triton block shapes must be powers of two."""
    return 1 << max(0, (n - 1).bit_length())


def describe(t: object) -> str:
    """``dtype (shape)`` of a tensor, or the type name of anything else, for error messages."""
    if isinstance(t, torch.Tensor):
        return f"{t.dtype} {tuple(t.shape)}"
    return type(t).__name__
