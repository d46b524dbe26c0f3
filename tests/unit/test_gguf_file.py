"""Our GGUF reader (server/llm/gguf_file.py) reads what ``gguf.GGUFReader`` reads: every field's
contents and every tensor's name, type, shape and bytes, on the packaged models and on files written
by ``gguf.GGUFWriter`` with every value type; a damaged file is refused with where and why."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.llm.gguf_file import GGUFFile, GGUFFormatError
from server.llm.registry import MODELS, model_gguf_path
from tests.support.hypothesis_profiles import examples


def assert_same(path) -> None:
    ours, theirs = GGUFFile(path), GGUFReader(path)
    assert set(ours.fields) == set(theirs.fields)
    for key, field in theirs.fields.items():
        want = field.contents()
        got = ours.fields[key].contents()
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-7), key
        elif isinstance(want, list) and want and isinstance(want[0], float):
            np.testing.assert_allclose(got, want, rtol=1e-7, err_msg=key)
        else:
            assert got == want, key
        if isinstance(want, list):
            assert len(ours.fields[key].data) == len(field.data) == len(want)
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for a, b in zip(ours.tensors, theirs.tensors, strict=True):
        assert a.tensor_type == b.tensor_type and a.shape == tuple(int(d) for d in b.shape)
        assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape
        assert np.array_equal(a.data, b.data, equal_nan=True)


def test_the_packaged_model_reads_the_same():
    """SmolLM2 (3.6 s in gguf's reader); Gemma 3's 262k-token vocabulary takes gguf's reader 16 s, so
    its file is covered by the Gemma engine tests, which load it through this reader."""
    assert MODELS[0] == "smollm2-135m"
    assert_same(model_gguf_path(MODELS[0]))


values = st.one_of(st.integers(-(2**31), 2**31 - 1), st.text(max_size=20), st.booleans(),
                   st.floats(allow_nan=False, width=32),
                   st.lists(st.integers(0, 2**31 - 1), max_size=5), st.lists(st.text(max_size=8), max_size=5))


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kv=st.dictionaries(st.from_regex(r"[a-z]{1,8}\.[a-z_]{1,8}", fullmatch=True), values, max_size=6),
       rows=st.integers(1, 4), blocks=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_written_files_read_the_same(tmp_path, kv, rows, blocks, seed):
    g = np.random.default_rng(seed)
    path = tmp_path / f"t{seed}.gguf"
    w = GGUFWriter(str(path), "llama")
    for key, value in kv.items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_int32(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        elif isinstance(value, str):
            w.add_string(key, value)
        else:
            w.add_array(key, value)
    w.add_tensor("f32", g.normal(size=(rows, 32 * blocks)).astype(np.float32))
    w.add_tensor("f16", g.normal(size=(rows * 3,)).astype(np.float16))
    q8 = g.integers(0, 256, size=(rows, 34 * blocks), dtype=np.uint8)
    w.add_tensor("q8", q8, raw_shape=(rows, 34 * blocks), raw_dtype=GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert_same(path)
    q = next(t for t in GGUFFile(path).tensors if t.name == "q8")
    assert q.shape == (32 * blocks, rows) and np.array_equal(q.data, q8)


def test_damaged_files_are_refused_with_the_reason(tmp_path):
    src = model_gguf_path("smollm2-135m").read_bytes()[:4096]
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML" + src[4:])
    with pytest.raises(GGUFFormatError, match="not a GGUF"):
        GGUFFile(bad)
    bad.write_bytes(src)  # the header of a real file, its tokenizer cut off
    with pytest.raises(GGUFFormatError, match=r"truncated|runs past"):
        GGUFFile(bad)
