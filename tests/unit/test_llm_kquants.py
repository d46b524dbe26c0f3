"""GGUF's Q5_0 / Q4_K / Q6_K blocks in our Q8_0 / Q4_1 layouts (server/llm/kquants.py), checked
against the reference decoder ``gguf.quants.dequantize``: bit-exact for Q5_0 and Q4_K, within the
stated re-quantization bound for Q6_K, on random blocks (any bytes, fp16 scales that are NaN or
infinite included) and on the Gemma 3 file's own tensors."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize
from hypothesis import given, settings
from hypothesis import strategies as st

from server.llm import kquants
from tests.support.hypothesis_profiles import examples

BLOCK = {"Q5_0": (22, 32), "Q4_K": (144, 256), "Q6_K": (210, 256)}  # bytes, values per block


def _random_rows(seed: int, kind: str, n: int, blocks: int, finite: bool) -> np.ndarray:
    nbytes, _ = BLOCK[kind]
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, blocks, nbytes), dtype=np.uint8)
    if finite:  # scales drawn as modest fp16 values: no NaN/inf, no overflow in products
        offsets = {"Q5_0": [0], "Q4_K": [0, 2], "Q6_K": [208]}[kind]
        for off in offsets:
            d = rng.uniform(-0.05, 0.05, size=(n, blocks)).astype(np.float16)
            data[..., off : off + 2] = d.view(np.uint8).reshape(n, blocks, 2)
    return data.reshape(n, blocks * nbytes)


def _reference(kind: str, data: np.ndarray) -> np.ndarray:
    return dequantize(data, GGMLQuantizationType[kind]).reshape(data.shape[0], -1)


@settings(max_examples=examples(60), deadline=None)
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["Q5_0", "Q4_K"]), n=st.integers(1, 5),
       blocks=st.integers(1, 3), finite=st.booleans())
def test_exact_conversions_equal_the_reference_decoder(seed, kind, n, blocks, finite):
    data = _random_rows(seed, kind, n, blocks, finite)
    got = kquants.convert(kind, data).dequantize().numpy()
    want = _reference(kind, data)
    assert got.shape == want.shape == (n, blocks * BLOCK[kind][1])
    np.testing.assert_array_equal(got, want)  # NaN where the reference has NaN, bit-equal elsewhere


@settings(max_examples=examples(40), deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), blocks=st.integers(1, 3))
def test_q6_k_values_are_exact_and_its_q8_bounded(seed, n, blocks):
    data = _random_rows(seed, "Q6_K", n, blocks, finite=True)
    want = _reference("Q6_K", data)
    np.testing.assert_array_equal(kquants.q6_k_values(data), want)
    got = kquants.q6_k_to_int8(data).dequantize().numpy()
    absmax = np.abs(want.reshape(n, -1, 32)).max(-1, keepdims=True)
    err = np.abs(got - want).reshape(n, -1, 32)
    assert (err <= absmax / 254 * 1.0001 + 1e-12).all()


def test_q6_k_nan_scale_stays_in_its_block():
    data = _random_rows(3, "Q6_K", 1, 2, finite=True)
    data[0, 208:210] = np.array([np.float16("nan")]).view(np.uint8)  # block 0's d
    got = kquants.q6_k_to_int8(data).dequantize().numpy()[0]
    assert np.isnan(got[:256]).all() and np.isfinite(got[256:]).all()


def test_unknown_kinds_are_not_converted():
    assert kquants.convert("Q4_1", np.zeros((1, 20), np.uint8)) is None


@pytest.fixture(scope="module")
def gemma_reader():
    from server.llm.gemma3 import default_gemma3_path
    from server.llm.gguf_weights import open_reader

    try:
        return open_reader(str(default_gemma3_path()))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_gemma_file_tensors_convert(gemma_reader):
    """Every K-quant / Q5_0 tensor kind of the real file, one tensor each (the embedding is Q8_0)."""
    seen = set()
    for t in gemma_reader.tensors:
        kind = t.tensor_type.name
        if kind in seen or kind not in BLOCK:
            continue
        seen.add(kind)
        data = np.asarray(t.data)
        want = _reference(kind, data)
        got = kquants.convert(kind, data).dequantize().numpy()
        if kind == "Q6_K":
            assert np.abs(got - want).max() <= np.abs(want).max() / 254 * 1.0001
        else:
            np.testing.assert_array_equal(got, want)
    assert seen == set(BLOCK)
