"""The split-K GEMV kernels (int32-word loads, dequantization folded into the per-group dot) equal
the PyTorch reference for every launch configuration the autotune table may hold, in the Triton
interpreter: property tests over shapes (empty and single-element included), splits, block sizes,
dtypes, NaN and strided inputs; and the table itself maps every layer of the model to a valid config.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("these CPU tests need the Triton interpreter (TRITON_INTERPRET=1)", allow_module_level=True)
pytest.importorskip("triton", reason="triton is not installed")

from kernels.triton import quant_matmul
from tests.support.hypothesis_profiles import examples
from tests.unit.test_triton_kernels import assert_matmul_close, make_x, random_weight

SETTINGS = settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEL_LINEARS = {"qkv": (960, 576), "o": (576, 576), "gate_up": (3072, 576), "down": (576, 1536),
                 "lm_head": (49152, 576)}  # fmt: skip

configs = st.builds(
    lambda block_n, block_k, split_k: quant_matmul.LaunchConfig(1, block_n, block_k, split_k=split_k),
    block_n=st.sampled_from([1, 2, 16, 32]), block_k=st.sampled_from([32, 64, 128]), split_k=st.integers(1, 5),
)
cases = dict(
    seed=st.integers(0, 2**31), m=st.sampled_from([0, 1, 2, 3, 15]), n=st.sampled_from([0, 1, 2, 17, 40]),
    k=st.integers(0, 6).map(lambda g: 32 * g), dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    nan=st.booleans(), transposed=st.booleans(), strided_rows=st.booleans(), config=configs,
)


def weight_rows(q: torch.Tensor, strided: bool) -> torch.Tensor:
    """The packed weight as given, or the same rows as every other row of a larger tensor (a view
    whose rows are not adjacent: the int32-word view must follow its row stride)."""
    if not strided:
        return q
    wide = torch.zeros((2 * q.shape[0], q.shape[1]), dtype=q.dtype)
    wide[::2] = q
    return wide[::2]


@SETTINGS
@given(**cases)
def test_int4_gemv_matches_reference(seed, m, n, k, dtype, nan, transposed, strided_rows, config) -> None:
    q, s, mn = quant_matmul.quantize_int4(random_weight(seed, n, k, constant_groups=False))
    q = weight_rows(q, strided_rows)
    x = make_x(seed, m, k, dtype, nan and k > 0, transposed)
    got = quant_matmul.int4_matmul(x, q, s, mn, config=config)
    assert_matmul_close(got, quant_matmul.int4_matmul_reference(x, q, s, mn), x, quant_matmul.dequantize_int4(q, s, mn))


@SETTINGS
@given(**cases)
def test_int8_gemv_matches_reference(seed, m, n, k, dtype, nan, transposed, strided_rows, config) -> None:
    q, s = quant_matmul.quantize_int8(random_weight(seed, n, k, constant_groups=False))
    q = weight_rows(q, strided_rows)
    x = make_x(seed, m, k, dtype, nan and k > 0, transposed)
    got = quant_matmul.int8_matmul(x, q, s, config=config)
    assert_matmul_close(got, quant_matmul.int8_matmul_reference(x, q, s), x, quant_matmul.dequantize_int8(q, s))


def test_single_element_and_extreme_codes() -> None:
    """M = N = 1, one group: every nibble 15 / every int8 -127 and 127 (the sign extension and the
    top nibble of a word, bits 28..31, which an arithmetic shift fills with the sign)."""
    x = torch.linspace(-1, 1, 32)[None]
    q4 = torch.full((1, 16), 0xFF, dtype=torch.uint8)
    s, mn = torch.tensor([[0.5]]), torch.tensor([[-2.0]])
    q8 = torch.tensor([[-127, 127] * 16], dtype=torch.int8)
    for split_k in (1, 2):
        cfg = quant_matmul.LaunchConfig(1, 16, 32, split_k=split_k)
        torch.testing.assert_close(quant_matmul.int4_matmul(x, q4, s, mn, config=cfg),
                                   quant_matmul.int4_matmul_reference(x, q4, s, mn), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(quant_matmul.int8_matmul(x, q8, s, config=cfg),
                                   quant_matmul.int8_matmul_reference(x, q8, s), rtol=1e-5, atol=1e-5)


def test_invalid_split_is_refused() -> None:
    q, s, mn = quant_matmul.quantize_int4(torch.randn(4, 64))
    with pytest.raises(ValueError, match="split_k"):
        quant_matmul.int4_matmul(torch.randn(1, 64), q, s, mn, config=quant_matmul.LaunchConfig(1, 16, 32, split_k=0))
    with pytest.raises(ValueError, match="split_k"):
        quant_matmul.int4_matmul(torch.randn(16, 64), q, s, mn, config=quant_matmul.LaunchConfig(16, 16, split_k=2))


def test_table_gives_every_model_layer_a_valid_gemv_config() -> None:
    """One kernel config per shape class, read from the recorded table; the narrow layers (too few
    output blocks for a GPU's 132 SMs at M = 1) are split along K."""
    table = quant_matmul.gemv_table()
    assert {kind for kind, _ in table} == {"int4", "int8"}
    assert {cls for _, cls in table} == {"narrow", "narrow-deep", "wide", "head"}
    for name, (n, k) in MODEL_LINEARS.items():
        for kind in ("int4", "int8"):
            cfg = quant_matmul.pick_config(1, n, k, interpreted=False, kind=kind)
            assert cfg == quant_matmul.gemv_config(kind, n, k) and cfg.block_m == 1
            quant_matmul._validate_config(cfg, 1)
            k_split = math.ceil(math.ceil(k / cfg.split_k) / cfg.block_k) * cfg.block_k
            programs = math.ceil(n / cfg.block_n) * math.ceil(k / k_split)
            assert programs >= 132, (name, kind, cfg, programs)
