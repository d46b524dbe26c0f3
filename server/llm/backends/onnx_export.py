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

``OnnxLlamaStep`` is a small dedicated ``nn.Module`` whose math matches ``server/llm/llama.py``:
RMSNorm, HF rotate_half RoPE (cos/sin tables computed in float64 like ours, stored as constants
and gathered by ``position_ids``), grouped-query attention (9 query heads over 3 KV heads, as a
broadcast MatMul rather than a repeat), SiLU-gated MLP and the LM head tied to the embedding.
Weights are the GGUF's Q4_1 / Q8_0 values dequantized to fp32 (``Int4Weight.dequantize()``), so
the fp32 graph computes what our fp32 reference does; every linear is ``MatMul(x, W^T)`` with
``W^T`` an initializer, which is the pattern the ONNX Runtime quantizers rewrite.

Exporter: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``): it needs no
extra package (the dynamo exporter needs ``onnxscript``) and exports the 30-layer model in ~25 s
on our 2-core machines (a 2-layer model in ~1 s). ``OnnxLlamaStep(dtype=float16)`` gives the
mixed-precision graph the TensorRT backend builds.

``qdq_weight_only`` puts every weight ``MatMul`` behind ``DequantizeLinear(int8 or fp8 W^T)``
(weight-only, explicit Q/DQ), the form TensorRT's strongly typed networks build. The ONNX Runtime
quantizations of the same graph, which we measured and did not ship, are in
``bench/candidates/onnx_quantize.py``.
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


def _to(t: torch.Tensor, dtype) -> torch.Tensor:
    """Cast only when the type differs, so the fp32 graph has no (no-op) Cast nodes."""
    return t if t.dtype == dtype else t.to(dtype)


class OnnxLlamaStep(nn.Module):
    """One decoder step over [B, T] new tokens with the past KV cache as explicit tensors.

    ``dtype``: the type of the weights, the matmuls and the KV-cache I/O. float32 is the reference
    graph. float16 is the mixed-precision graph a strongly typed TensorRT network builds as written
    (what ModelOpt AutoCast would produce): the residual stream, RMSNorm, RoPE and softmax stay in
    fp32, the matmuls and the cache are fp16, logits are returned in fp32.
    """

    def __init__(self, weights: LlamaWeights, last_logits_only: bool = False, dtype=torch.float32) -> None:
        super().__init__()
        cfg: LlamaConfig = weights.config
        self.cfg = cfg
        self.last_logits_only = last_logits_only
        self.dtype = dtype
        hd = cfg.head_dim

        def buf(name: str, t: torch.Tensor, dt=dtype) -> None:
            self.register_buffer(name, t.to(dt).contiguous(), persistent=True)

        emb = weights.embedding.dequantize()  # [vocab, hidden]
        buf("embedding", emb, torch.float32)
        buf("lm_head_t", emb.t())  # tied head as MatMul(x, E^T)
        buf("final_norm", weights.final_norm, torch.float32)
        for i, L in enumerate(weights.layers):
            buf(f"l{i}_attn_norm", L.attn_norm, torch.float32)
            buf(f"l{i}_ffn_norm", L.ffn_norm, torch.float32)
            buf(f"l{i}_qkv_t", L.qkv.dequantize().t())
            buf(f"l{i}_o_t", L.o.dequantize().t())
            buf(f"l{i}_gate_up_t", L.gate_up.dequantize().t())
            buf(f"l{i}_down_t", L.down.dequantize().t())
        # RoPE tables exactly as LlamaModel builds them (float64, then cast)
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        freqs = torch.outer(torch.arange(cfg.context_length, dtype=torch.float64), inv_freq)
        e = torch.cat([freqs, freqs], dim=-1)
        buf("rope_cos", e.cos(), torch.float32)
        buf("rope_sin", e.sin(), torch.float32)
        self.scale = 1.0 / hd**0.5

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """fp32 RMSNorm, then cast to the matmul type (a no-op, so no Cast node, for fp32)."""
        return _to(x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg.rms_eps) * w, self.dtype)

    def forward(self, input_ids, position_ids, attention_mask, past_key, past_value):
        cfg = self.cfg
        dt = self.dtype
        nh, nkv, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        g = nh // nkv
        half = hd // 2
        B, T = input_ids.shape[0], input_ids.shape[1]
        x = self.embedding[input_ids]  # [B, T, H] fp32 residual stream
        cos = self.rope_cos[position_ids].unsqueeze(1)  # [B, 1, T, hd]
        sin = self.rope_sin[position_ids].unsqueeze(1)
        # mask [B, 1, 1, T, S]: causal over cache indices (new token t is at index S - T + t) and padding
        S = attention_mask.shape[1]
        kpos = torch.arange(S, dtype=torch.int64)  # traced from the dynamic shape: an ONNX Range node
        qpos = kpos[S - T :]
        allowed = (kpos[None, :] <= qpos[:, None])[None] & (attention_mask[:, None, :] > 0)  # [B, T, S]
        allowed = allowed[:, None, None]

        def rope(t: torch.Tensor) -> torch.Tensor:
            t = _to(t, torch.float32)
            return _to(t * cos + torch.cat([-t[..., half:], t[..., :half]], dim=-1) * sin, dt)

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
            scores = torch.matmul(qg, k.unsqueeze(2).transpose(-1, -2))  # [B, nkv, g, T, S]
            scores = _to(scores, torch.float32) * self.scale
            scores = scores.masked_fill(~allowed, MASK_VALUE)
            att = torch.matmul(_to(torch.softmax(scores, dim=-1), dt), v.unsqueeze(2))  # [B, nkv, g, T, hd]
            att = att.reshape(B, nh, T, hd).transpose(1, 2).reshape(B, T, nh * hd)
            x = x + _to(torch.matmul(att, getattr(self, f"l{i}_o_t")), torch.float32)
            h = self._rms(x, getattr(self, f"l{i}_ffn_norm"))
            gu = _to(torch.matmul(h, getattr(self, f"l{i}_gate_up_t")), torch.float32)
            act = _to(torch.nn.functional.silu(gu[..., : cfg.ffn]) * gu[..., cfg.ffn :], dt)
            x = x + _to(torch.matmul(act, getattr(self, f"l{i}_down_t")), torch.float32)
        if self.last_logits_only:
            x = x[:, -1:]
        logits = _to(torch.matmul(self._rms(x, self.final_norm), self.lm_head_t), torch.float32)
        return logits, torch.stack(keys), torch.stack(values)


def example_inputs(
    cfg: LlamaConfig, batch: int = 1, new: int = 3, past: int = 2, dtype=torch.float32
) -> tuple[torch.Tensor, ...]:
    """Dummy step inputs; P > 0 and T > 1 so no dimension is specialised to 0 or 1 by tracing."""
    ids = torch.randint(0, cfg.vocab_size, (batch, new), dtype=torch.int64)
    pos = torch.arange(past, past + new, dtype=torch.int64).expand(batch, new).contiguous()
    mask = torch.ones(batch, past + new, dtype=torch.int64)
    kv = (cfg.n_layers, batch, cfg.n_kv_heads, past, cfg.head_dim)
    return ids, pos, mask, torch.randn(kv, dtype=dtype), torch.randn(kv, dtype=dtype)


def export_onnx(
    weights: LlamaWeights, path: str | Path, opset: int = 17, last_logits_only: bool = False, dtype=torch.float32
) -> Path:
    """Write the step graph to ``path`` (weights > 2 GB would need external data; SmolLM2 is ~0.7 GB).

    ``last_logits_only``: the head runs on the last new token only (``logits`` [B, 1, vocab]),
    which is all a serving step samples from; prefill then skips T-1 rows of the 49k-wide head.
    ``dtype=torch.float16``: the mixed-precision graph for TensorRT (fp16 weights, matmuls and
    KV-cache I/O; see ``OnnxLlamaStep``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = OnnxLlamaStep(weights, last_logits_only=last_logits_only, dtype=dtype).eval()
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
            example_inputs(weights.config, dtype=dtype),
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


def weight_matmuls(model) -> list:
    """MatMul nodes whose second input is a 2-D initializer: the model's linears and LM head."""
    inits = {t.name: t for t in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits
            and len(inits[n.input[1]].dims) == 2]


def qdq_weight_only(src: str | Path, dst: str | Path, dtype: str = "int8") -> Path:
    """Rewrite each weight MatMul as ``DequantizeLinear(W^T_q, scale) -> MatMul``: weight-only
    quantization in explicit Q/DQ form, the form TensorRT's strongly typed networks take (and what
    NVIDIA ModelOpt emits). The scale has the type of the original weight, so in the fp16 graph the
    DQ yields fp16 and the GEMM runs in fp16 on int8/fp8-stored weights.

    * ``int8``: symmetric, per output channel (``axis=1`` of W^T [K, N]), q in [-127, 127].
    * ``fp8``: float8 e4m3fn with one scale per tensor (amax / 448), the granularity TensorRT's FP8
      DQ accepts; needs a graph of opset >= 19 (``export_onnx(..., opset=19)``).
    """
    import ml_dtypes
    import onnx
    from onnx import helper, numpy_helper

    if dtype not in ("int8", "fp8"):
        raise ValueError(f"dtype must be 'int8' or 'fp8', not {dtype!r}")
    model = onnx.load(str(src))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if dtype == "fp8" and opset < 19:
        raise ValueError("fp8 DequantizeLinear needs opset >= 19: export_onnx(..., opset=19)")
    inits = {t.name: t for t in model.graph.initializer}
    targets = {n.input[1] for n in weight_matmuls(model)}
    for name in targets:
        w_init = inits[name]
        w_orig = numpy_helper.to_array(w_init)
        w = w_orig.astype(np.float32)  # [K, N]
        if dtype == "int8":
            scale = np.maximum(np.abs(w).max(axis=0) / 127.0, 1e-8)  # [N]
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
            attrs = {"axis": 1}
        else:
            scale = np.asarray(max(float(np.abs(w).max()) / 448.0, 1e-8))
            q = (w / scale).astype(ml_dtypes.float8_e4m3fn)
            attrs = {}
        model.graph.initializer.remove(w_init)
        model.graph.initializer.extend([
            numpy_helper.from_array(q, name + "_q"),
            numpy_helper.from_array(scale.astype(w_orig.dtype), name + "_scale"),
        ])
        # the DQ output keeps the weight's name, so the MatMul nodes are unchanged
        model.graph.node.insert(0, helper.make_node("DequantizeLinear", [name + "_q", name + "_scale"], [name],
                                                    name=name + "_DequantizeLinear", **attrs))
    onnx.save(model, str(dst))
    return Path(dst)
