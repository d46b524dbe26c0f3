"""ONNX export of the Llama step graph (server/llm/backends/onnx_export.py), its ONNX Runtime variants, and the
TensorRT backend (server/llm/backends/tensorrt.py): the ONNX side runs here, TensorRT only on a GPU.

The graphs are exported from a truncated model (2 layers, the first 4096 vocabulary rows) so the
file stays fast; the math is per layer, so 2 layers test what 30 do. The reference is our own
``LlamaModel`` on the same truncated weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.candidates import onnx_quantize
from bench.candidates.onnx_runtime_step import OrtLlamaStep
from server.llm.backends import BackendUnavailableError, build_forward, fp32_linear, onnx_export, tensorrt
from server.llm.gguf_weights import LlamaWeights
from server.llm.kv_cache import PagedKVCache
from server.llm.llama import LlamaModel, PrefillSegment, StepBatch
from tests.support.llm_fixtures import weights

pytestmark = pytest.mark.slow

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

N_LAYERS = 2
VOCAB = 4096
IDS = [1, 504, 1575, 282, 99, 3000, 17, 42, 2000, 314]


@pytest.fixture(scope="module")
def small() -> LlamaWeights:
    full = weights()
    cfg = full.config
    fields = {f: getattr(cfg, f) for f in cfg.__slots__}
    small_cfg = type(cfg)(**{**fields, "n_layers": N_LAYERS, "vocab_size": VOCAB})
    emb = type(full.embedding)(full.embedding.qweight[:VOCAB].contiguous(), full.embedding.scales[:VOCAB].contiguous())
    return LlamaWeights(small_cfg, emb, full.layers[:N_LAYERS], full.final_norm, full.path)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def fp32_onnx(small, tmp):
    return onnx_export.export_onnx(small, tmp / "step.onnx")


@pytest.fixture(scope="module")
def reference(small) -> np.ndarray:
    """LlamaModel fp32 logits for every row of IDS (one prefill)."""
    cfg = small.config
    cache = PagedKVCache.with_slots(N_LAYERS, 1, cfg.n_kv_heads, 64, cfg.head_dim)
    n = len(IDS)
    batch = StepBatch(torch.tensor(IDS), torch.arange(n), torch.empty(0, dtype=torch.long), [],
                      [PrefillSegment(0, 0, n, 0)], torch.arange(n))
    return LlamaModel(small, fp32_linear).forward(batch, cache).numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def _close_in_ranking(got: np.ndarray, ref: np.ndarray, min_cos: float, k: int = 5) -> None:
    """Quantized logits: each row close in direction, and fp32's next token in the quantized top-k."""
    assert _cosine(got, ref).min() >= min_cos
    top = np.argsort(-got, axis=-1)[:, :k]
    assert all(r in t for r, t in zip(ref.argmax(-1), top, strict=True))


# ------------------------------------------------------------------------------------------------
# fp32 export


def test_export_has_step_io_with_dynamic_axes(fp32_onnx, small):
    import onnx

    model = onnx.load(str(fp32_onnx), load_external_data=False)
    cfg = small.config

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    ins = {v.name: v for v in model.graph.input}
    outs = {v.name: v for v in model.graph.output}
    assert list(ins) == onnx_export.INPUT_NAMES and list(outs) == onnx_export.OUTPUT_NAMES
    assert dims(ins["input_ids"]) == ["batch", "new_tokens"]
    assert dims(ins["past_key"]) == [N_LAYERS, "batch", cfg.n_kv_heads, "past_len", cfg.head_dim]
    assert dims(outs["present_value"]) == [N_LAYERS, "batch", cfg.n_kv_heads, "total_len", cfg.head_dim]
    assert dims(outs["logits"]) == ["batch", "new_tokens", VOCAB]
    assert ins["input_ids"].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert ins["past_key"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_ort_fp32_prefill_matches_llama_model(fp32_onnx, reference):
    got = OrtLlamaStep(fp32_onnx).prefill_logits(IDS)
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=1e-3, rtol=0)


def test_prefill_then_decode_through_present_past_equals_full_sequence(fp32_onnx, reference):
    o = OrtLlamaStep(fp32_onnx)
    rows = [o.prefill_logits(IDS[:4])]
    rows.append(o.step(IDS[4:7]))  # a second prefill chunk on a non-empty past
    rows += [o.step([t]) for t in IDS[7:]]  # decode steps
    assert o.length == len(IDS)
    np.testing.assert_allclose(np.concatenate(rows), reference, atol=1e-3, rtol=0)


def test_batch_of_two_with_left_padding(fp32_onnx, reference):
    """B is dynamic and attention_mask masks padding: a left-padded short prompt next to a full one."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(fp32_onnx), providers=["CPUExecutionProvider"])
    cfg_past = sess.get_inputs()[3].shape
    n, short = len(IDS), IDS[3:]
    pad = n - len(short)
    ids = np.array([IDS, [0] * pad + short], np.int64)
    mask = np.array([[1] * n, [0] * pad + [1] * len(short)], np.int64)
    pos = np.array([list(range(n)), [0] * pad + list(range(len(short)))], np.int64)
    empty = np.zeros((cfg_past[0], 2, cfg_past[2], 0, cfg_past[4]), np.float32)
    logits = sess.run(None, {"input_ids": ids, "position_ids": pos, "attention_mask": mask,
                             "past_key": empty, "past_value": empty})[0]
    np.testing.assert_allclose(logits[0], reference, atol=1e-3, rtol=0)
    alone = OrtLlamaStep(fp32_onnx).prefill_logits(short)
    np.testing.assert_allclose(logits[1, pad:], alone, atol=1e-3, rtol=0)


def test_last_logits_only_export(small, tmp, reference):
    path = onnx_export.export_onnx(small, tmp / "last.onnx", last_logits_only=True)
    o = OrtLlamaStep(path)
    assert o.prefill_logits(IDS).shape == (1, VOCAB)
    np.testing.assert_allclose(o.prefill_logits(IDS)[0], reference[-1], atol=1e-3, rtol=0)
    assert o.generate_greedy(IDS, 3)[0] == int(reference[-1].argmax())


# ------------------------------------------------------------------------------------------------
# quantized ONNX Runtime variants


def test_int8_dynamic_quantization_stays_close(fp32_onnx, tmp, reference):
    """Tolerance: ``quantize_dynamic`` quantizes activations per tensor per call (uint8), which moves
    logits by ~4% of their range on this model; where fp32's top two logits are that close, argmax
    can flip, so each row must keep fp32's next token in its top 5 and point the same way
    (cosine >= 0.99). Greedy agreement on the full model is measured in bench/llm_candidates.py."""
    import onnx

    path = onnx_quantize.quantize_onnx_int8(fp32_onnx, tmp / "int8.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    got = OrtLlamaStep(path).prefill_logits(IDS)
    _close_in_ranking(got, reference, min_cos=0.99)
    assert onnx_quantize.weight_bytes(path) < 0.5 * onnx_quantize.weight_bytes(fp32_onnx)


def test_int4_matmulnbits_quantizer(fp32_onnx, tmp, reference):
    ok, why = onnx_quantize.int4_available()
    if not ok:
        pytest.skip(why)
    path = onnx_quantize.quantize_onnx_int4(fp32_onnx, tmp / "int4.onnx")
    got = OrtLlamaStep(path).prefill_logits(IDS)
    _close_in_ranking(got, reference, min_cos=0.98)


def test_gguf_blocks_as_matmulnbits_are_exact(small, fp32_onnx, tmp, reference):
    """The GGUF's Q4_1 / Q8_0 numbers moved into MatMulNBits unchanged compute what fp32 does."""
    path = onnx_quantize.gguf_matmulnbits(small, fp32_onnx, tmp / "gguf.onnx", accuracy_level=0)
    np.testing.assert_allclose(OrtLlamaStep(path).prefill_logits(IDS), reference, atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------------------
# TensorRT


@pytest.mark.parametrize("precision", tensorrt.PRECISIONS)
def test_tensorrt_graphs_run_in_onnx_runtime(small, tmp, reference, precision):
    """The graphs TensorRT builds (fp16 mixed precision, weight-only int8 / fp8 DQ) are valid ONNX and
    compute the model: checked with ONNX Runtime on the CPU, since TensorRT isn't here."""
    path = tensorrt.export_for_tensorrt(small, tmp / f"trt-{precision}.onnx", precision)
    o = OrtLlamaStep(path)
    assert o.kv_dtype == np.float16
    got = np.concatenate([o.prefill_logits(IDS[:6]), *(o.step([t]) for t in IDS[6:])])
    ref = reference[[5, 6, 7, 8, 9]]
    if precision == "fp16":
        np.testing.assert_allclose(got, ref, atol=0.1, rtol=0)
        assert (got.argmax(-1) == ref.argmax(-1)).all()
    else:
        _close_in_ranking(got, ref, min_cos=0.99)


def test_tensorrt_profile_covers_prefill_and_decode(small):
    shapes = tensorrt.profile_shapes(small.config, max_new_tokens=256, max_len=2048)
    for lo, opt, hi in shapes.values():
        assert all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True))
    assert shapes["past_key"][0][3] == 0 and shapes["past_key"][2][3] == 2047
    assert shapes["input_ids"][1] == (1, 1) and shapes["input_ids"][2] == (1, 256)


def test_tensorrt_missing_gives_clear_error(small):
    if tensorrt.tensorrt_available():
        pytest.skip("tensorrt and CUDA are present here")
    with pytest.raises(BackendUnavailableError, match="not exercised on CI") as exc:
        build_forward("tensorrt", small)
    assert isinstance(exc.value, tensorrt.TensorRTUnavailableError)
    assert isinstance(exc.value, RuntimeError)
    assert "needs the `tensorrt` package and a CUDA GPU" in str(exc.value)


@pytest.mark.gpu
def test_tensorrt_engine_matches_onnx_runtime(small, tmp, reference):
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    forward = tensorrt.tensorrt_forward(small, precision="fp16", cache_dir=tmp / "trt",
                                                max_new_tokens=16, max_len=64)
    cfg = small.config
    cache = PagedKVCache.with_slots(N_LAYERS, 1, cfg.n_kv_heads, 64, cfg.head_dim)
    n = 6
    pre = StepBatch(torch.tensor(IDS[:n]), torch.arange(n), torch.empty(0, dtype=torch.long), [],
                    [PrefillSegment(0, 0, n, 0)], torch.tensor([n - 1]))
    rows = [forward(pre, cache)]
    for p in range(n, len(IDS)):
        dec = StepBatch(torch.tensor([IDS[p]]), torch.tensor([p]), torch.tensor([0]), [p + 1], [],
                        torch.tensor([0]))
        rows.append(forward(dec, cache))
    got = torch.cat(rows).numpy()
    np.testing.assert_allclose(got, reference[n - 1 :], atol=0.1, rtol=0)
    with pytest.raises(ValueError, match="max_num_seqs"):
        forward(pre, PagedKVCache.with_slots(N_LAYERS, 2, cfg.n_kv_heads, 64, cfg.head_dim))


class _OrtStandIn(tensorrt.TensorRTLlamaStep):
    """The TensorRT step's serving logic (one slot, chunking, sampled rows) over ONNX Runtime running
    the same fp16 graph, so everything but the TensorRT calls themselves is tested here."""

    def __init__(self, onnx_path, cfg, max_new_tokens: int, max_len: int) -> None:
        self.cfg, self.max_new_tokens, self.max_len = cfg, max_new_tokens, max_len
        self.ort = OrtLlamaStep(onnx_path)
        self.steps: list[int] = []

    def reset(self) -> None:
        self.ort.reset()

    @property
    def length(self) -> int:
        return self.ort.length

    def step(self, ids):
        self.steps.append(len(ids))
        return torch.from_numpy(self.ort.step(ids)[-1])


def test_tensorrt_forward_serves_engine_steps(small, tmp, reference):
    cfg = small.config
    path = tmp / "trt-fp16.onnx"
    if not path.exists():  # made by test_tensorrt_graphs_run_in_onnx_runtime[fp16] unless run alone
        tensorrt.export_for_tensorrt(small, path)
    step = _OrtStandIn(path, cfg, max_new_tokens=4, max_len=64)
    cache = PagedKVCache.with_slots(N_LAYERS, 1, cfg.n_kv_heads, 64, cfg.head_dim)

    def prefill(start, n, sample):
        return StepBatch(torch.tensor(IDS[start : start + n]), torch.arange(start, start + n),
                         torch.empty(0, dtype=torch.long), [], [PrefillSegment(0, start, n, 0)],
                         torch.tensor([n - 1] if sample else [], dtype=torch.long))

    assert step.forward(prefill(0, 3, False), cache).shape == (0, VOCAB)  # a chunk that samples nothing
    out = step.forward(prefill(3, 6, True), cache)  # longer than max_new_tokens=4: two engine calls
    assert step.steps == [3, 4, 2]
    np.testing.assert_allclose(out[0].numpy(), reference[8], atol=0.1, rtol=0)
    dec = StepBatch(torch.tensor([IDS[9]]), torch.tensor([9]), torch.tensor([0]), [10], [], torch.tensor([0]))
    np.testing.assert_allclose(step.forward(dec, cache)[0].numpy(), reference[9], atol=0.1, rtol=0)
    with pytest.raises(RuntimeError, match="starts at 3"):
        step.forward(prefill(3, 2, True), cache)
    out = step.forward(prefill(0, 2, True), cache)  # a new sequence in the slot restarts the state
    assert step.length == 2
    with pytest.raises(ValueError, match="max_num_seqs: 1"):
        step.forward(dec, PagedKVCache.with_slots(N_LAYERS, 2, cfg.n_kv_heads, 64, cfg.head_dim))
    with pytest.raises(ValueError, match="last token"):
        step.forward(StepBatch(torch.tensor(IDS[:3]), torch.arange(3), torch.empty(0, dtype=torch.long), [],
                               [PrefillSegment(0, 0, 3, 0)], torch.arange(3)), cache)
