"""Export SmolLM2 (our ``LlamaWeights``) to ONNX as a decoder *step* graph with explicit KV-cache I/O.

The graph is the shape Hugging Face Optimum calls "decoder with past", with the cache of every
layer stacked into one tensor so a runtime carries two tensors, not 2 x n_layers:

========================  =========  ===========================================================
input / output            dtype      shape
========================  =========  ===========================================================
``input_ids``             int64      [B, T]
``position_ids``          int64      [B, T] (position of each new token, < context_length)
``attention_mask``        int64      [B, P + T] (1 = attend; 0 = padding), HF convention
``past_key/past_value``   float32    [n_layers, B, n_kv_heads, P, head_dim] (P may be 0)
``logits``                float32    [B, T, vocab] (``last_logits_only``: [B, 1, vocab])
``present_key/_value``    float32    [n_layers, B, n_kv_heads, P + T, head_dim]
========================  =========  ===========================================================

B, T and P are dynamic axes. New token t of row b sits at cache index P + t; it attends to cache
index j when ``j <= P + t`` and ``attention_mask[b, j] == 1``.

``OnnxLlamaStep`` is a small dedicated ``nn.Module`` whose math matches ``server/llm/model.py``:
RMSNorm, HF rotate_half RoPE (cos/sin tables computed in float64 like ours, stored as constants
and gathered by ``position_ids``), grouped-query attention (9 query heads over 3 KV heads, as a
broadcast MatMul rather than a repeat), SiLU-gated MLP and the LM head tied to the embedding.
Weights are the GGUF's Q4_1 / Q8_0 values dequantized to fp32 (``Int4Weight.dequantize()``), so
the fp32 graph computes what our fp32 reference does; every linear is ``MatMul(x, W^T)`` with
``W^T`` an initializer, which is the pattern the ONNX Runtime quantizers rewrite.

Exporter: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) — it needs no
extra package and exports the 30-layer model in seconds.

Quantized variants (ONNX Runtime's tools, see ``quantize_onnx_int8`` / ``quantize_onnx_int4``):

* int8: ``quantize_dynamic`` — weights int8 per output channel (symmetric), activations
  quantized per call to uint8 (``DynamicQuantizeLinear`` + ``MatMulInteger``); the embedding
  ``Gather`` stays fp32.
* int4: ``MatMulNBits`` (blocks of 32 along K, asymmetric, like Q4_1) from
  ``onnxruntime.quantization.matmul_nbits_quantizer`` — needs the ``onnx_ir`` package, which
  comes with ``onnxscript``.
* ``qdq_weight_only``: our own rewrite of every weight ``MatMul`` into
  ``DequantizeLinear(int8 W^T, per-channel scale) -> MatMul`` (weight-only, no activation
  quantization), the form TensorRT's strongly typed networks accept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from server.llm.gguf_weights import LlamaConfig, LlamaWeights

INPUT_NAMES = ["input_ids", "position_ids", "attention_mask", "past_key", "past_value"]
OUTPUT_NAMES = ["logits", "present_key", "present_value"]
MASK_VALUE = -1e4  # fits fp16; exp(-1e4 - max) is 0 in fp32, and a fully masked row stays finite


class OnnxLlamaStep(nn.Module):
    """One decoder step over [B, T] new tokens with the past KV cache as explicit tensors."""

    def __init__(self, weights: LlamaWeights, last_logits_only: bool = False, dtype=torch.float32) -> None:
        super().__init__()
        cfg: LlamaConfig = weights.config
        self.cfg = cfg
        self.last_logits_only = last_logits_only
        hd = cfg.head_dim

        def buf(name: str, t: torch.Tensor) -> None:
            self.register_buffer(name, t.to(dtype).contiguous(), persistent=True)

        emb = weights.embedding.dequantize()  # [vocab, hidden]
        buf("embedding", emb)
        buf("lm_head_t", emb.t())  # tied head as MatMul(x, E^T)
        buf("final_norm", weights.final_norm)
        for i, L in enumerate(weights.layers):
            buf(f"l{i}_attn_norm", L.attn_norm)
            buf(f"l{i}_ffn_norm", L.ffn_norm)
            buf(f"l{i}_qkv_t", L.qkv.dequantize().t())
            buf(f"l{i}_o_t", L.o.dequantize().t())
            buf(f"l{i}_gate_up_t", L.gate_up.dequantize().t())
            buf(f"l{i}_down_t", L.down.dequantize().t())
        # RoPE tables exactly as LlamaModel builds them (float64, then cast)
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        freqs = torch.outer(torch.arange(cfg.context_length, dtype=torch.float64), inv_freq)
        e = torch.cat([freqs, freqs], dim=-1)
        buf("rope_cos", e.cos())
        buf("rope_sin", e.sin())
        self.scale = 1.0 / hd**0.5

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg.rms_eps) * w

    def forward(self, input_ids, position_ids, attention_mask, past_key, past_value):
        cfg = self.cfg
        nh, nkv, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        g = nh // nkv
        half = hd // 2
        B, T = input_ids.shape[0], input_ids.shape[1]
        x = self.embedding[input_ids]  # [B, T, H]
        cos = self.rope_cos[position_ids].unsqueeze(1)  # [B, 1, T, hd]
        sin = self.rope_sin[position_ids].unsqueeze(1)
        # mask [B, 1, 1, T, S]: causal over cache indices (new token t is at index S - T + t) and padding
        S = attention_mask.shape[1]
        kpos = torch.ones_like(attention_mask[0]).cumsum(0) - 1  # arange(S), built from a dynamic shape
        qpos = kpos[S - T :]
        allowed = (kpos[None, :] <= qpos[:, None])[None] & (attention_mask[:, None, :] > 0)  # [B, T, S]
        allowed = allowed[:, None, None]

        def rope(t: torch.Tensor) -> torch.Tensor:
            return t * cos + torch.cat([-t[..., half:], t[..., :half]], dim=-1) * sin

        keys, values = [], []
        for i in range(cfg.n_layers):
            h = self._rms(x, getattr(self, f"l{i}_attn_norm"))
            qkv = torch.matmul(h, getattr(self, f"l{i}_qkv_t")).view(B, T, nh + 2 * nkv, hd).transpose(1, 2)
            q = rope(qkv[:, :nh])  # [B, nh, T, hd]
            k = rope(qkv[:, nh : nh + nkv])  # [B, nkv, T, hd]
            v = qkv[:, nh + nkv :]
            k = torch.cat([past_key[i], k], dim=2)  # [B, nkv, S, hd]
            v = torch.cat([past_value[i], v], dim=2)
            keys.append(k)
            values.append(v)
            qg = q.reshape(B, nkv, g, T, hd)  # query heads grouped by their KV head
            scores = torch.matmul(qg, k.unsqueeze(2).transpose(-1, -2)) * self.scale  # [B, nkv, g, T, S]
            scores = scores.masked_fill(~allowed, MASK_VALUE)
            att = torch.matmul(torch.softmax(scores, dim=-1), v.unsqueeze(2))  # [B, nkv, g, T, hd]
            att = att.reshape(B, nh, T, hd).transpose(1, 2).reshape(B, T, nh * hd)
            x = x + torch.matmul(att, getattr(self, f"l{i}_o_t"))
            h = self._rms(x, getattr(self, f"l{i}_ffn_norm"))
            gu = torch.matmul(h, getattr(self, f"l{i}_gate_up_t"))
            x = x + torch.matmul(torch.nn.functional.silu(gu[..., : cfg.ffn]) * gu[..., cfg.ffn :],
                                 getattr(self, f"l{i}_down_t"))
        if self.last_logits_only:
            x = x[:, -1:]
        logits = torch.matmul(self._rms(x, self.final_norm), self.lm_head_t)
        return logits, torch.stack(keys), torch.stack(values)


def example_inputs(cfg: LlamaConfig, batch: int = 1, new: int = 3, past: int = 2) -> tuple[torch.Tensor, ...]:
    """Dummy step inputs; P > 0 and T > 1 so no dimension is specialised to 0 or 1 by tracing."""
    ids = torch.randint(0, cfg.vocab_size, (batch, new), dtype=torch.int64)
    pos = torch.arange(past, past + new, dtype=torch.int64).expand(batch, new).contiguous()
    mask = torch.ones(batch, past + new, dtype=torch.int64)
    kv = (cfg.n_layers, batch, cfg.n_kv_heads, past, cfg.head_dim)
    return ids, pos, mask, torch.randn(kv), torch.randn(kv)


def export_onnx(
    weights: LlamaWeights, path: str | Path, opset: int = 17, last_logits_only: bool = False
) -> Path:
    """Write the step graph to ``path`` (weights > 2 GB would need external data; SmolLM2 is ~0.7 GB).

    ``last_logits_only``: the head runs on the last new token only (``logits`` [B, 1, vocab]),
    which is all a serving step samples from; prefill then skips T-1 rows of the 49k-wide head.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = OnnxLlamaStep(weights, last_logits_only=last_logits_only).eval()
    dyn = {
        "input_ids": {0: "batch", 1: "new_tokens"},
        "position_ids": {0: "batch", 1: "new_tokens"},
        "attention_mask": {0: "batch", 1: "total_len"},
        "past_key": {1: "batch", 3: "past_len"},
        "past_value": {1: "batch", 3: "past_len"},
        "logits": {0: "batch"} if last_logits_only else {0: "batch", 1: "new_tokens"},
        "present_key": {1: "batch", 3: "total_len"},
        "present_value": {1: "batch", 3: "total_len"},
    }
    with torch.no_grad():
        torch.onnx.export(
            module,
            example_inputs(weights.config),
            str(path),
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes=dyn,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


# ------------------------------------------------------------------------------------------------
# Quantized variants


def _weight_matmuls(model) -> list:
    """MatMul nodes whose second input is a 2-D initializer: the model's linears and LM head."""
    inits = {t.name: t for t in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits
            and len(inits[n.input[1]].dims) == 2]


def quantize_onnx_int8(src: str | Path, dst: str | Path) -> Path:
    """ONNX Runtime dynamic quantization: int8 per-channel weights, uint8 activations per call."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [n.name for n in _weight_matmuls(onnx.load(str(src), load_external_data=False))]
    quantize_dynamic(
        str(src), str(dst), op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes,
        per_channel=True, weight_type=QuantType.QInt8,
        extra_options={"MatMulConstBOnly": True},
    )
    return Path(dst)


def int4_available() -> tuple[bool, str]:
    """MatMulNBits quantizer importable? (It needs ``onnx_ir``, installed with ``onnxscript``.)"""
    try:
        from onnxruntime.quantization import matmul_nbits_quantizer  # noqa: F401
    except ImportError as exc:
        return False, f"onnxruntime.quantization.matmul_nbits_quantizer unavailable: {exc}"
    return True, ""


def quantize_onnx_int4(src: str | Path, dst: str | Path, block_size: int = 32) -> Path:
    """Weight-only int4 (``MatMulNBits``), asymmetric blocks of ``block_size`` along K (Q4_1-like)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    q = MatMulNBitsQuantizer(model, block_size=block_size, is_symmetric=False, accuracy_level=4)
    q.process()
    q.model.save_model_to_file(str(dst), use_external_data_format=False)
    return Path(dst)


def qdq_weight_only(src: str | Path, dst: str | Path, dtype: str = "int8") -> Path:
    """Rewrite each weight MatMul as ``DequantizeLinear(W^T_q, scale[N], axis=1) -> MatMul``.

    Weight-only quantization in explicit Q/DQ form (what TensorRT's strongly typed networks and
    ModelOpt emit): ``int8`` symmetric per output channel; ``fp8`` (float8 e4m3fn, needs an
    opset >= 19 graph) with a per-tensor scale, the granularity TensorRT's FP8 DQ accepts.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if dtype == "fp8" and opset < 19:
        raise ValueError("fp8 DequantizeLinear needs opset >= 19: export_onnx(..., opset=19)")
    if dtype not in ("int8", "fp8"):
        raise ValueError(f"dtype must be 'int8' or 'fp8', not {dtype!r}")
    inits = {t.name: t for t in model.graph.initializer}
    new_nodes = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and len(inits[node.input[1]].dims) == 2:
            name = node.input[1]
            w = numpy_helper.to_array(inits[name]).astype(np.float32)  # [K, N]
            if dtype == "int8":
                scale = np.maximum(np.abs(w).max(axis=0) / 127.0, 1e-12).astype(np.float32)  # [N]
                q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
                q_t = numpy_helper.from_array(q, name + "_q")
                attrs = {"axis": 1}
            else:
                scale = np.float32(max(float(np.abs(w).max()) / 448.0, 1e-12))
                q_t = helper.make_tensor(name + "_q", TensorProto.FLOAT8E4M3FN, w.shape,
                                         (w / scale).astype(np.float32).ravel().tolist())
                attrs = {}
            model.graph.initializer.remove(inits[name])
            model.graph.initializer.extend([q_t, numpy_helper.from_array(np.asarray(scale, np.float32), name + "_s")])
            new_nodes.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_s"], [name + "_dq"],
                                              name=name + "_DequantizeLinear", **attrs))
            node.input[1] = name + "_dq"
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    onnx.save(model, str(dst))
    return Path(dst)


def weight_bytes(path: str | Path) -> int:
    """Bytes of the graph's initializers (weights, RoPE tables): the 'MB of weights' of a variant."""
    import onnx

    model = onnx.load(str(path))
    total = 0
    for t in model.graph.initializer:
        total += len(t.raw_data) if t.HasField("raw_data") else numpy_helper_nbytes(t)
    return total


def numpy_helper_nbytes(t) -> int:
    from onnx import numpy_helper

    return int(numpy_helper.to_array(t).nbytes)
