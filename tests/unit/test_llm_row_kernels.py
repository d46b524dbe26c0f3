"""The per-row work of the C++ step (quantization, RMS norm, SwiGLU / GeGLU, attention) on every
path the CPU has (AVX-512, AVX2, scalar) against the NumPy reference (kernels/row_reference.py),
and the fast paths' int8 values against the scalar path's: they must be the same integers, since
the matmuls' dot products on them are exact."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import llm_step
from kernels import row_reference as ref
from tests.support import compiled
from tests.support.hypothesis_profiles import examples

if not llm_step.available():
    if compiled.in_ci():
        raise RuntimeError("CI=true: kernels.cpp._llm_step is not built")
    pytest.skip("kernels.cpp._llm_step is not built (python setup.py build_ext --inplace)", allow_module_level=True)

ext = llm_step.native()
SETTINGS = settings(max_examples=examples(60), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PATHS = [p for p, ok in (("avx512", llm_step.has_avx512_vnni()), ("avx2", llm_step.has_avx2()), ("scalar", True))
         if ok]


@contextlib.contextmanager
def on(path: str):
    with llm_step.force_scalar(path == "scalar"), llm_step.force_avx2(path == "avx2"):
        yield


def fp16(a: np.ndarray) -> np.ndarray:
    """Values as the KV cache stores them: rounded to fp16 (nearest even), back in float32."""
    return a.astype(np.float16).astype(np.float32)


def rows(seed: int, m: int, k: int, nan: bool = False) -> np.ndarray:
    """Rows with magnitudes over 6 decades, an outlier block, and optionally NaN / inf entries."""
    g = np.random.default_rng(seed)
    x = (g.normal(size=(m, k)) * 10.0 ** g.uniform(-3, 3, size=(m, 1))).astype(np.float32)
    if m and k >= 64:
        x[0, 32:64] *= 100
    if nan and m and k:
        x[g.integers(0, m), g.integers(0, k)] = np.nan
        x[g.integers(0, m), g.integers(0, k)] = np.inf
    return x


def blocks(a: np.ndarray, m: int, k: int) -> np.ndarray:
    return np.asarray(a).reshape(m, k // 32, 32)


shapes = st.tuples(st.sampled_from([0, 1, 2, 5]), st.integers(0, 6).map(lambda g: 32 * g))


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), shape=shapes, parts=st.sampled_from([1, 2]), nan=st.booleans(),
       weighted=st.booleans(), mul=st.sampled_from([1.0, 0.37, 1e-30]))
def test_quantize_matches_reference_and_scalar(path, seed, shape, parts, nan, weighted, mul):
    m, k = shape
    x = rows(seed, m, k, nan)
    w = np.random.default_rng(seed + 1).uniform(0.5, 2, k).astype(np.float32) if weighted else None
    with on(path):
        q, d, ds = ext.rows_quantize(x, mul, w, parts)
    with on("scalar"):
        q0, d0, ds0 = ext.rows_quantize(x, mul, w, parts)
    np.testing.assert_array_equal(q, q0)  # the same integers on every path
    np.testing.assert_array_equal(d, d0)
    np.testing.assert_array_equal(ds, ds0)
    v = x * np.float32(mul)
    if w is not None:
        v = v * w
    rq, rd, rds = ref.quantize_block_rows(v)
    np.testing.assert_array_equal(q[:, :k], rq)  # the first term is the reference's exactly
    np.testing.assert_array_equal(d[:, : k // 32], rd)
    np.testing.assert_array_equal(ds[:, : k // 32], rds)
    # every finite block reconstructs within half a step of its last term
    bad = ~np.isfinite(blocks(v, m, k)).all(-1)
    last = d[:, (parts - 1) * (k // 32):].astype(np.float64)
    err = blocks(np.abs(ref.dequantize_rows(q, d, parts) - v), m, k).max(-1, initial=0)
    ok = np.where(bad, True, err <= last / 2 * (1 + 1e-5) + 1e-37)
    assert ok.all()
    assert np.isnan(d[:, : k // 32][bad]).all()


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), shape=shapes, parts=st.sampled_from([1, 2]), nan=st.booleans())
def test_silu_mul_quantize_matches_reference(path, seed, shape, parts, nan):
    m, f = shape
    gate = rows(seed, m, f, nan) * np.float32(1e-2)
    up = rows(seed + 7, m, f)
    with on(path):
        q, d, _ = ext.rows_silu_mul_quantize(gate, up, parts)
    h = ref.silu_mul(gate, up)
    bad = ~np.isfinite(blocks(h, m, f)).all(-1)
    got = ref.dequantize_rows(q, d, parts)
    last = d[:, (parts - 1) * (f // 32):].astype(np.float64)
    err = blocks(np.abs(got - h), m, f).max(-1, initial=0)
    scale = blocks(np.abs(h), m, f).max(-1, initial=0)
    assert np.where(bad, True, err <= last / 2 * 1.001 + 1e-6 * scale + 1e-37).all()
    assert np.isnan(d[:, : f // 32][bad]).all()


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(0, 4), k=st.integers(1, 100), nan=st.booleans())
def test_rms_inv_and_gelu_match_reference(path, seed, m, k, nan):
    x = rows(seed, m, k, nan)
    up = rows(seed + 3, m, k)
    with on(path):
        r = ext.rows_rms_inv(x, 1e-5)
        g = ext.rows_gelu_tanh_mul(x * np.float32(1e-2), up)
    with np.errstate(over="ignore"):
        want = ref.rms_inv(x, 1e-5)  # a NaN row gives NaN, a row with inf (and no NaN) 0
    np.testing.assert_allclose(r, want, rtol=2e-5, equal_nan=True)
    gw = ref.gelu_tanh_mul(x * np.float32(1e-2), up)
    ok = np.isfinite(gw)
    np.testing.assert_allclose(g[ok], gw[ok], rtol=1e-4, atol=1e-30 + 1e-6 * np.abs(gw[ok]).max(initial=0))
    assert np.isnan(g[np.isnan(gw)]).all()


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.one_of(st.sampled_from([0, 1, 7, 8, 9, 15, 16, 17]), st.integers(0, 300)),
       hd=st.sampled_from([64, 128, 256, 48]), nan=st.booleans(), spread=st.sampled_from([0.1, 3.0, 30.0]))
def test_attend_matches_reference(path, seed, n, hd, nan, spread):
    g = np.random.default_rng(seed)
    q = (g.normal(size=hd) * spread / np.sqrt(hd)).astype(np.float32)
    K, V = g.normal(size=(n, hd)).astype(np.float32), g.normal(size=(n, hd)).astype(np.float32)
    kx, vx = g.normal(size=hd).astype(np.float32), g.normal(size=hd).astype(np.float32)
    if nan and n:
        K[g.integers(0, n), g.integers(0, hd)] = np.nan
    with on(path):
        out = ext.rows_attend(q, K, V, kx, vx)
    want = ref.attend(q, *(fp16(a) for a in (K, V, kx, vx)))  # the cache stores K/V in fp16
    if nan and n:
        assert np.isnan(out).all()  # a NaN key poisons the head, never a silent drop
    else:
        np.testing.assert_allclose(out, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.one_of(st.sampled_from([0, 1, 15, 16, 17]), st.integers(0, 200)),
       lo=st.integers(0, 40), bs=st.sampled_from([1, 4, 16, 32]), hd=st.sampled_from([64, 128, 48]))
def test_paged_attend_reads_the_blocks_a_table_lists(path, seed, n, lo, bs, hd):
    """Keys lo..lo+n-1 scattered over a pool's blocks in a shuffled order (the paged KV cache's
    layout) give the attention of the same keys laid out in rows."""
    g = np.random.default_rng(seed)
    need = -(-(lo + n) // bs)
    pool_blocks = need + 3
    table = g.permutation(pool_blocks)[:need].astype(np.int64)
    Kp = g.normal(size=(pool_blocks, bs, hd)).astype(np.float32)
    Vp = g.normal(size=(pool_blocks, bs, hd)).astype(np.float32)
    pos = np.arange(lo, lo + n)
    K, V = Kp[table[pos // bs], pos % bs], Vp[table[pos // bs], pos % bs]
    q = (g.normal(size=hd) / np.sqrt(hd)).astype(np.float32)
    kx, vx = g.normal(size=hd).astype(np.float32), g.normal(size=hd).astype(np.float32)
    with on(path):
        out = ext.rows_attend(q, Kp, Vp, kx, vx, blocks=table, n=n, lo=lo)
    want = ref.attend(q, *(fp16(a) for a in (K.reshape(n, hd), V.reshape(n, hd), kx, vx)))
    np.testing.assert_allclose(out, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("path", PATHS)
@SETTINGS
@given(bits=st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=70),
       special=st.lists(st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.99, 65520.0, 1e-8,
                                         2.0**-24, 2.0**-25, 3 * 2.0**-26, 6.1e-5, -1e30]), max_size=20))
def test_fp16_storage_rounds_as_numpy(path, bits, special):
    """The cache's float32 -> fp16 conversion (F16C on the vector paths, bit arithmetic on the scalar
    one) gives numpy's round-to-nearest-even bits for every float: NaN, inf, overflow, subnormals."""
    x = np.concatenate([np.array(bits, np.uint32).view(np.float32), np.array(special, np.float32)])
    with on(path):
        got = ext.rows_to_half(x)
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    nan = np.isnan(x)
    assert np.array_equal(got[~nan], want[~nan])
    assert np.isnan(got[nan].view(np.float16)).all()


def test_paged_attend_rejects_tables_that_leave_the_pool():
    z = np.zeros(64, np.float32)
    pool = np.zeros((2, 16, 64), np.float32)
    with pytest.raises(ValueError, match="out of range of the pool"):
        ext.rows_attend(z, pool, pool, z, z, blocks=np.array([0, 2], np.int64), n=20, lo=0)
    with pytest.raises(ValueError, match="too short"):
        ext.rows_attend(z, pool, pool, z, z, blocks=np.array([0], np.int64), n=20, lo=0)
    with pytest.raises(ValueError, match="power of two"):
        ext.rows_attend(z, np.zeros((2, 12, 64), np.float32), np.zeros((2, 12, 64), np.float32), z, z,
                        blocks=np.array([0], np.int64), n=4, lo=0)


def test_row_operations_reject_bad_shapes():
    x = np.zeros((2, 33), np.float32)
    with pytest.raises(ValueError, match="multiple of 32"):
        ext.rows_quantize(x, 1.0, None, 1)
    with pytest.raises(ValueError, match="parts"):
        ext.rows_quantize(np.zeros((1, 32), np.float32), 1.0, None, 3)
    with pytest.raises(ValueError, match="w: expected 32"):
        ext.rows_quantize(np.zeros((1, 32), np.float32), 1.0, np.zeros(31, np.float32), 1)
    with pytest.raises(ValueError, match="must match"):
        ext.rows_attend(*(np.zeros(64, np.float32),), np.zeros((3, 64), np.float32), np.zeros((2, 64), np.float32),
                        np.zeros(64, np.float32), np.zeros(64, np.float32))
    with pytest.raises(ValueError, match="at least one value"):
        ext.rows_rms_inv(np.zeros((1, 0), np.float32), 1e-5)
    with pytest.raises(ValueError, match="dtype"):
        ext.rows_rms_inv(np.zeros((1, 4), np.float64), 1e-5)
