"""Triton LLM kernels equal their PyTorch references (CPU, in the Triton interpreter).

``TRITON_INTERPRET=1`` has to be in the environment when ``triton`` is first imported (its own
``triton.language`` helpers are decorated then), when the kernel modules are imported (``triton.jit``
reads it at decoration) and while kernels run (the interpreter reads it again). ``tests/conftest.py``
sets it before anything is collected, so these tests run in the pytest process itself.

The interpreter runs every program instance in Python, so hypothesis draws few, small examples;
speed is measured on a GPU by ``bench/llm_triton_gpu.py`` (and the ``gpu`` test at the end runs
its correctness pass there).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hypothesis_profiles import examples

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip(f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')!r}: these CPU tests need the Triton interpreter",
                allow_module_level=True)
pytest.importorskip("triton", reason="triton is not installed (pip install triton; CPU tests use its interpreter)")

import kernels.triton as kt
from kernels.triton import _common, quant_matmul, rmsnorm, rotary

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
#: Allowed |error| per unit of sum(|x| |w|): float32 ~ summation order; float16/bfloat16 also round
#: the output (and float16 the dequantized weights, which the tensor-core path feeds as float16).
RTOL = {torch.float32: 1e-4, torch.float16: 4e-3, torch.bfloat16: 2e-2}
#: (rtol, atol) for the elementwise kernels, whose float32 math equals the reference's: float32 up to
#: summation order; float16 one output rounding apart at most; bfloat16 two, because the interpreter
#: converts float32 to bfloat16 by truncation (the GPU rounds to nearest even).
ELEMENTWISE_TOL = {torch.float32: (1e-5, 1e-6), torch.float16: (2e-3, 1e-5), torch.bfloat16: (1.6e-2, 1e-5)}

rows = st.one_of(st.sampled_from([0, 1, 2, 3, 5, 7, 15]), st.integers(16, 64))
dims = st.integers(1, 8).map(lambda g: 32 * g)
dtypes = st.sampled_from(DTYPES)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_weight(seed: int, n: int, k: int, constant_groups: bool) -> torch.Tensor:
    """Normal weights with per-row magnitudes over 4 decades; optionally some all-equal groups."""
    g = gen(seed)
    w = torch.randn(n, k, generator=g) * 10.0 ** torch.empty(n, 1).uniform_(-3, 1, generator=g)
    if constant_groups:
        w[0, :32] = 0.0
        w[-1, -32:] = 0.25
    return w


def make_x(seed: int, m: int, k: int, dtype: torch.dtype, nan: bool, transposed: bool) -> torch.Tensor:
    """Activations; ``transposed`` stores them column-major so the kernel must honour strides."""
    x = torch.randn(m, k, generator=gen(seed + 1)).to(dtype)
    if nan and m:
        x[m // 2, k // 3] = float("nan")
    return x.T.contiguous().T if transposed else x


def assert_matmul_close(got: torch.Tensor, want: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> None:
    assert got.dtype == want.dtype == x.dtype
    assert got.shape == want.shape
    assert torch.equal(got.isnan(), want.isnan()), "NaN positions differ"
    bound = RTOL[x.dtype] * (x.float().nan_to_num(0.0).abs() @ w.abs().T) + 1e-6
    ok = want.isnan() | ((got.float() - want.float()).abs() <= bound)
    assert bool(ok.all()), f"max excess {((got.float() - want.float()).abs() - bound).max():.3g}"


# ---------------------------------------------------------------------------------------------
# Formats: layout and exact re-quantization
# ---------------------------------------------------------------------------------------------


def test_int4_layout_follows_the_spec_literally() -> None:
    n, k = 3, 64
    qweight = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, generator=gen(0))
    scales = torch.rand(n, k // 32, generator=gen(1))
    mins = torch.randn(n, k // 32, generator=gen(2))
    w = quant_matmul.dequantize_int4(qweight, scales, mins)
    for row in range(n):
        for g in range(k // 32):
            for i in range(16):
                byte = int(qweight[row, g * 16 + i])
                lo, hi = byte & 0xF, byte >> 4
                assert w[row, g * 32 + i] == lo * scales[row, g] + mins[row, g]
                assert w[row, g * 32 + 16 + i] == hi * scales[row, g] + mins[row, g]


def test_int8_layout_follows_the_spec_literally() -> None:
    qweight = torch.randint(-127, 128, (2, 64), dtype=torch.int8, generator=gen(0))
    scales = torch.rand(2, 2, generator=gen(1))
    w = quant_matmul.dequantize_int8(qweight, scales)
    for row in range(2):
        for col in range(64):
            assert w[row, col] == int(qweight[row, col]) * scales[row, col // 32]


@SETTINGS
@given(seed=st.integers(0, 2**31), n=st.integers(1, 9), k=dims, constant=st.booleans())
def test_int4_requantize_is_exact(seed: int, n: int, k: int, constant: bool) -> None:
    w = random_weight(seed, n, k, constant)
    q, s, m = quant_matmul.quantize_int4(w)
    assert q.dtype == torch.uint8 and q.shape == (n, k // 2)
    assert s.shape == m.shape == (n, k // 32) and s.dtype == m.dtype == torch.float32
    assert bool((s >= 0).all())
    w2 = quant_matmul.dequantize_int4(q, s, m)
    assert bool(((w2 - w).abs() <= s.repeat_interleave(32, dim=1) / 2 * 1.001 + 1e-7).all())
    q2, s2, m2 = quant_matmul.quantize_int4(w2)
    assert torch.equal(q2, q)
    torch.testing.assert_close(s2, s, rtol=1e-5, atol=0)
    torch.testing.assert_close(m2, m, rtol=0, atol=0)
    if constant:
        assert s[0, 0] == 0 and bool((q[0, :16] == 0).all()) and m[-1, -1] == 0.25


@SETTINGS
@given(seed=st.integers(0, 2**31), n=st.integers(1, 9), k=dims, constant=st.booleans())
def test_int8_requantize_is_exact(seed: int, n: int, k: int, constant: bool) -> None:
    w = random_weight(seed, n, k, constant)
    q, s = quant_matmul.quantize_int8(w)
    assert q.dtype == torch.int8 and q.shape == (n, k) and s.shape == (n, k // 32)
    assert int(q.abs().amax(dim=1).min()) == 127 or constant
    q2, s2 = quant_matmul.quantize_int8(quant_matmul.dequantize_int8(q, s))
    assert torch.equal(q2, q)
    torch.testing.assert_close(s2, s, rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------------------------
# Quantized matmul: Triton == reference
# ---------------------------------------------------------------------------------------------

matmul_cases = dict(
    seed=st.integers(0, 2**31),
    m=rows,
    n=dims,
    k=dims,
    dtype=dtypes,
    nan=st.booleans(),
    transposed=st.booleans(),
)


@SETTINGS
@given(**matmul_cases)
def test_int4_matmul_matches_reference(
    seed: int, m: int, n: int, k: int, dtype: torch.dtype, nan: bool, transposed: bool
) -> None:
    q, s, mn = quant_matmul.quantize_int4(random_weight(seed, n, k, constant_groups=False))
    x = make_x(seed, m, k, dtype, nan, transposed)
    got = quant_matmul.int4_matmul(x, q, s, mn)
    want = quant_matmul.int4_matmul_reference(x, q, s, mn)
    assert_matmul_close(got, want, x, quant_matmul.dequantize_int4(q, s, mn))
    if nan and m:
        assert bool(got[m // 2].isnan().all())


@SETTINGS
@given(**matmul_cases)
def test_int8_matmul_matches_reference(
    seed: int, m: int, n: int, k: int, dtype: torch.dtype, nan: bool, transposed: bool
) -> None:
    q, s = quant_matmul.quantize_int8(random_weight(seed, n, k, constant_groups=False))
    x = make_x(seed, m, k, dtype, nan, transposed)
    got = quant_matmul.int8_matmul(x, q, s)
    want = quant_matmul.int8_matmul_reference(x, q, s)
    assert_matmul_close(got, want, x, quant_matmul.dequantize_int8(q, s))
    if nan and m:
        assert bool(got[m // 2].isnan().all())


GPU_LIKE_CONFIGS = [  # (M, (block_m, block_n, block_k)); block_m 1 is the GEMV kernel
    (3, (1, 4, 256)),  # decode on the GPU: narrow N, wide (here masked) K
    (5, (1, 16, 32)),
    (20, (16, 32, 32)),
    (33, (32, 64, 32)),
    (40, (64, 16, 32)),
]


@pytest.mark.parametrize(("m", "blocks"), GPU_LIKE_CONFIGS)
def test_every_tiling_gives_the_reference(m: int, blocks: tuple[int, int, int]) -> None:
    """The interpreter picks big tiles; the GPU's tilings (masks on N and K included) must agree too."""
    config = quant_matmul.LaunchConfig(*blocks)
    n, k = 72, 96  # not multiples of the block sizes: partial tiles on both axes
    w = random_weight(7, n, k, constant_groups=True)
    x = make_x(7, m, k, torch.float16, nan=True, transposed=False)
    q4 = quant_matmul.quantize_int4(w)
    assert_matmul_close(
        quant_matmul.int4_matmul(x, *q4, config=config),
        quant_matmul.int4_matmul_reference(x, *q4),
        x,
        quant_matmul.dequantize_int4(*q4),
    )
    q8 = quant_matmul.quantize_int8(w)
    assert_matmul_close(
        quant_matmul.int8_matmul(x, *q8, config=config),
        quant_matmul.int8_matmul_reference(x, *q8),
        x,
        quant_matmul.dequantize_int8(*q8),
    )


def test_gpu_config_picks_are_valid_launches() -> None:
    for m in (1, 15, 16, 17, 64, 256, 2048):
        for n, k in ((960, 576), (576, 576), (3072, 576), (576, 1536), (49152, 576)):
            cfg = quant_matmul.pick_config(m, n, k, interpreted=False)
            quant_matmul._validate_config(cfg, m)
            assert (cfg.block_m == 1) == (m < 16)


# ---------------------------------------------------------------------------------------------
# RMSNorm and rotary
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    m=st.sampled_from([0, 1, 3, 17]),
    h=st.sampled_from([1, 7, 64, 576]),
    dtype=dtypes,
    nan=st.booleans(),
    eps=st.sampled_from([1e-5, 1e-6, 0.0]),
)
def test_rms_norm_matches_reference(seed: int, m: int, h: int, dtype: torch.dtype, nan: bool, eps: float) -> None:
    g = gen(seed)
    x = (torch.randn(m, h, generator=g) * 3).to(dtype)
    if nan and m:
        x[0, h // 2] = float("nan")
    weight = torch.randn(h, generator=g).to(dtype)
    rtol, atol = ELEMENTWISE_TOL[dtype]
    got = rmsnorm.rms_norm(x, weight, eps)
    want = rmsnorm.rms_norm_reference(x, weight, eps)
    assert got.dtype == dtype and got.shape == x.shape
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol, equal_nan=True)
    if nan and m:
        assert bool(got[0].isnan().all())

    residual = torch.randn(m, h, generator=g).to(dtype)
    normed, summed = rmsnorm.add_rms_norm(x, residual, weight, eps)
    want_normed, want_summed = rmsnorm.add_rms_norm_reference(x, residual, weight, eps)
    assert torch.equal(summed.isnan(), want_summed.isnan())
    exact = dtype != torch.bfloat16  # the interpreter truncates the bfloat16 sum (see ELEMENTWISE_TOL)
    torch.testing.assert_close(summed, want_summed, rtol=0 if exact else rtol, atol=0, equal_nan=True)
    torch.testing.assert_close(normed, want_normed, rtol=rtol, atol=atol, equal_nan=True)


def _rotate_rows_reference(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The reference's arithmetic on given cos|sin rows [T, D] (float32 math, x's dtype out)."""
    half = x.shape[2] // 2
    cos, sin = rows[:, None, :half], rows[:, None, half:]
    xf = x.to(torch.float32)
    x1, x2 = xf[..., :half], xf[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def _rotary_diagnosis(x: torch.Tensor, positions: torch.Tensor, cache: torch.Tensor | None, want: torch.Tensor) -> str:
    """Which part diverged, for a failure that does not reproduce: the rows, or the kernel on a rerun."""
    rerun = rotary.apply_rotary(x.clone(), positions, 100000.0, cos_sin_cache=cache)
    lines = [f"rerun of the kernel vs reference: max |diff| {float((rerun.float() - want.float()).abs().max()):.3g}"]
    if cache is not None:
        again = rotary._cos_sin(positions, x.shape[2], 100000.0)
        gap = float((cache[positions.long()] - again).abs().max())
        lines.append(f"table rows vs rows recomputed now: max |diff| {gap:.3g}")
    return "\n".join(lines)


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    t=st.sampled_from([0, 1, 4, 13]),
    heads=st.integers(1, 9),
    d=st.sampled_from([2, 8, 64, 96]),
    dtype=dtypes,
    pos_dtype=st.sampled_from([torch.int32, torch.int64]),
    use_cache=st.booleans(),
    strided=st.booleans(),
    inplace=st.booleans(),
)
def test_rotary_matches_reference(
    seed: int,
    t: int,
    heads: int,
    d: int,
    dtype: torch.dtype,
    pos_dtype: torch.dtype,
    use_cache: bool,
    strided: bool,
    inplace: bool,
) -> None:
    g = gen(seed)
    base = torch.randn(t, heads + 2 if strided else heads, d, generator=g).to(dtype)
    x = base[:, 1 : heads + 1] if strided else base  # strided: a view, as q inside a fused QKV output
    positions = torch.randint(0, 9000, (t,), generator=g).to(pos_dtype)
    cache = rotary.rotary_cos_sin_cache(9000, d, 100000.0) if use_cache else None
    want = rotary.apply_rotary_reference(x, positions, 100000.0)
    if cache is not None:  # the kernel's arithmetic on the rows it reads (the table: its own test)
        want = _rotate_rows_reference(x, cache[positions.long()])
    before = x.clone()
    got = rotary.apply_rotary(x, positions, 100000.0, cos_sin_cache=cache, inplace=inplace)
    assert got.dtype == dtype and got.shape == x.shape
    rtol, atol = ELEMENTWISE_TOL[dtype]
    torch.testing.assert_close(
        got, want, rtol=rtol, atol=atol, msg=lambda m: f"{m}\n{_rotary_diagnosis(before, positions, cache, want)}"
    )
    if inplace:
        assert got.data_ptr() == x.data_ptr()
    else:
        assert torch.equal(x, before)


def test_rotary_table_rows_equal_rows_built_per_call() -> None:
    """The table (one big torch.cos/sin) and per-call rows (small ones) agree for every position.

    Both are float32 cos/sin of the same float32 angles; tensors of different sizes may take other
    code paths (vectorized body vs remainder), so a few ulp of the result, never more.
    """
    for d in (8, 64, 96):
        table = rotary.rotary_cos_sin_cache(9000, d, 100000.0)
        for size in (1, 3, 13, 64):
            for start in range(0, 9000 - size, 997):
                positions = torch.arange(start, start + size)
                rows = rotary._cos_sin(positions, d, 100000.0)
                torch.testing.assert_close(table[positions], rows, rtol=0, atol=1e-6)


def test_rotary_position_zero_is_identity_and_pairs_are_half_apart() -> None:
    x = torch.randn(2, 3, 8, generator=gen(3))
    out = rotary.apply_rotary(x, torch.tensor([0, 1]))
    torch.testing.assert_close(out[0], x[0], rtol=0, atol=0)
    inv_freq = 100000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float32) / 8)
    c, s = torch.cos(inv_freq), torch.sin(inv_freq)
    expect_lo = x[1, :, :4] * c - x[1, :, 4:] * s
    expect_hi = x[1, :, 4:] * c + x[1, :, :4] * s
    torch.testing.assert_close(out[1], torch.cat([expect_lo, expect_hi], dim=-1), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Validation, CPU guard, exports
# ---------------------------------------------------------------------------------------------

_x = torch.randn(2, 64)


@functools.cache
def _q4() -> tuple[torch.Tensor, ...]:
    return quant_matmul.quantize_int4(torch.randn(64, 64, generator=gen(5)))


@functools.cache
def _q8() -> tuple[torch.Tensor, ...]:
    return quant_matmul.quantize_int8(torch.randn(64, 64, generator=gen(5)))


def _config(*blocks: int) -> quant_matmul.LaunchConfig:
    return quant_matmul.LaunchConfig(*blocks)


def _int4_odd_k() -> torch.Tensor:
    """24 packed bytes per row are K = 48 inputs: not whole groups of 32."""
    return quant_matmul.int4_matmul(torch.randn(2, 48), torch.zeros(4, 24, dtype=torch.uint8), *_q4()[1:])


def _rotate_with_cache(positions: list[int], cache: torch.Tensor) -> torch.Tensor:
    return rotary.apply_rotary(torch.randn(2, 3, 8), torch.tensor(positions), cos_sin_cache=cache)


BAD_CALLS = [
    ("x", lambda: quant_matmul.int4_matmul(_x.to(torch.int32), *_q4())),
    ("x", lambda: quant_matmul.int4_matmul(_x[0], *_q4())),
    ("x must have K = 64", lambda: quant_matmul.int4_matmul(torch.randn(2, 32), *_q4())),
    ("qweight", lambda: quant_matmul.int4_matmul(_x, _q4()[0].to(torch.int8), _q4()[1], _q4()[2])),
    ("qweight: K = 2 \\* qweight.shape\\[1\\] = 48", _int4_odd_k),
    ("scales", lambda: quant_matmul.int4_matmul(_x, _q4()[0], _q4()[1].half(), _q4()[2])),
    ("mins", lambda: quant_matmul.int4_matmul(_x, _q4()[0], _q4()[1], _q4()[2][:, :1])),
    ("qweight", lambda: quant_matmul.int8_matmul(_x, _q4()[0], _q8()[1])),
    ("scales", lambda: quant_matmul.int8_matmul(_x, _q8()[0], _q8()[1].T)),
    ("w", lambda: quant_matmul.quantize_int4(torch.randn(4, 40))),
    ("w", lambda: quant_matmul.quantize_int8(torch.ones(4, 32, dtype=torch.int32))),
    ("config.block_k", lambda: quant_matmul.int8_matmul(_x, *_q8(), config=_config(1, 16, 16))),
    ("config.block_k", lambda: quant_matmul.int4_matmul(_x.repeat(8, 1), *_q4(), config=_config(16, 16, 64))),
    ("weight", lambda: rmsnorm.rms_norm(_x, torch.ones(63), 1e-5)),
    ("x", lambda: rmsnorm.rms_norm(_x[0], torch.ones(64), 1e-5)),
    ("eps", lambda: rmsnorm.rms_norm(_x, torch.ones(64), -1.0)),
    ("residual", lambda: rmsnorm.add_rms_norm(_x, _x.half(), torch.ones(64), 1e-5)),
    ("head_dim", lambda: rotary.apply_rotary(torch.randn(2, 3, 7), torch.tensor([0, 1]))),
    ("positions", lambda: rotary.apply_rotary(torch.randn(2, 3, 8), torch.tensor([0.0, 1.0]))),
    ("positions", lambda: rotary.apply_rotary(torch.randn(2, 3, 8), torch.tensor([0, 1, 2]))),
    ("cos_sin_cache", lambda: _rotate_with_cache([0, 1], torch.zeros(4, 6))),
    ("positions must lie", lambda: _rotate_with_cache([0, 4], rotary.rotary_cos_sin_cache(4, 8))),
]


@pytest.mark.parametrize(("match", "call"), BAD_CALLS, ids=[f"{i}-{m}" for i, (m, _) in enumerate(BAD_CALLS)])
def test_bad_arguments_raise_value_error_naming_them(match: str, call) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_cpu_tensors_without_interpreter_raise_runtime_error() -> None:
    """Without TRITON_INTERPRET, or with it set only after import, CPU tensors get a RuntimeError."""
    script = textwrap.dedent(
        """
        import os
        import torch
        from kernels.triton import int8_matmul, quantize_int8, rms_norm
        q, s = quantize_int8(torch.randn(32, 32))
        for step in ("unset", "set late"):
            try:
                int8_matmul(torch.randn(1, 32), q, s)
            except RuntimeError as e:
                print(step, "->", e)
            os.environ["TRITON_INTERPRET"] = "1"
        try:
            rms_norm(torch.randn(2, 4), torch.ones(4), 1e-5)
        except RuntimeError as e:
            print("rms_norm ->", e)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "unset -> Triton kernels need a GPU" in out and "TRITON_INTERPRET=1" in out
    assert "set late -> TRITON_INTERPRET=1 was set after kernels.triton was imported" in out
    assert "rms_norm -> TRITON_INTERPRET=1 was set after" in out


def test_mixed_devices_raise_value_error() -> None:
    with pytest.raises(ValueError, match="one device"):
        _common.check_launch(quant_matmul._int8_dot_kernel, x=_x, qweight=_x.to("meta"))


def test_package_exports_and_triton_available() -> None:
    assert kt.triton_available() is True
    for name in kt.__all__:
        assert callable(getattr(kt, name)), name
    assert kt.int4_matmul is quant_matmul.int4_matmul
    with pytest.raises(AttributeError):
        _ = kt.no_such_kernel


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_kernels_match_reference_on_model_shapes() -> None:
    """Compiled (not interpreted) kernels on the GPU: the benchmark's correctness pass, no timing."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    subprocess.run(
        [sys.executable, "-m", "bench.llm_triton_gpu", "--check-only"], cwd=ROOT, env=env, check=True,
        timeout=600,
    )  # fmt: skip
