"""Llama forward pass in PyTorch over a packed batch of prefill chunks and decode tokens.

One ``forward`` serves a whole engine step (vLLM v1 style): all tokens of the step are packed into
rows of one matrix so every matmul runs once per layer; only attention is per kind of work
(batched over slots for decode tokens, per sequence for prefill chunks). Quantized matmuls come
from a ``LinearBackend`` (module swap, as in gpt-fast), so the same forward runs fp32, our C++
int4/int8 kernels or Triton kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from server.llm.gguf_weights import LlamaConfig, LlamaWeights
from server.llm.kv_cache import PagedKVCache

Linear = Callable[[torch.Tensor], torch.Tensor]


@dataclass(slots=True)
class PrefillSegment:
    slot: int
    start: int  # first position of the chunk in the sequence
    length: int  # tokens in the chunk
    row: int  # first packed row


@dataclass(slots=True)
class StepBatch:
    """Rows: the decode tokens first (one per decoding slot), then the prefill chunks."""

    token_ids: torch.Tensor  # int64 [T]
    positions: torch.Tensor  # int64 [T]
    decode_slots: torch.Tensor  # int64 [Bd] slot of decode row i
    decode_lengths: list[int]  # cache length of each decode slot *after* this step
    prefills: list[PrefillSegment]
    sample_rows: torch.Tensor  # int64 rows whose next-token logits are needed


class LlamaModel:
    def __init__(
        self,
        weights: LlamaWeights,
        make_linear: Callable[[object], Linear],
        dtype=torch.float32,
        device: str | torch.device = "cpu",
        rms_norm: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] | None = None,
        rotary: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        cfg = weights.config
        self.config: LlamaConfig = cfg
        self.dtype = dtype
        self.device = torch.device(device)
        self._rms = rms_norm or (lambda x, w, eps: F.rms_norm(x, (x.shape[-1],), w, eps))
        self._rotary = rotary  # (qk [T, heads, hd], positions [T]) -> rotated; None = inline PyTorch
        dev = self.device
        self.layers = [
            (
                L.attn_norm.to(dev, dtype),
                make_linear(L.qkv),
                make_linear(L.o),
                L.ffn_norm.to(dev, dtype),
                make_linear(L.gate_up),
                make_linear(L.down),
            )
            for L in weights.layers
        ]
        self.final_norm = weights.final_norm.to(dev, dtype)
        self.lm_head = make_linear(weights.embedding)
        self._emb_q = weights.embedding.qweight.to(dev)
        self._emb_s = weights.embedding.scales.to(dev)
        hd = cfg.head_dim
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        self._inv_freq = inv_freq
        self._rope_len = 0
        self._cos = self._sin = torch.empty(0)
        self.scale = 1.0 / hd**0.5

    def _rope_tables(self, n: int) -> None:
        if n <= self._rope_len:
            return
        n = max(n, 2 * self._rope_len, 256)
        t = torch.arange(n, dtype=torch.float64)
        freqs = torch.outer(t, self._inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        self._cos = emb.cos().to(self.device, self.dtype)
        self._sin = emb.sin().to(self.device, self.dtype)
        self._rope_len = n

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        q = self._emb_q.index_select(0, ids).view(ids.shape[0], -1, 32).to(self.dtype)
        s = self._emb_s.index_select(0, ids).to(self.dtype)
        return (q * s[..., None]).reshape(ids.shape[0], -1)

    @torch.inference_mode()
    def forward(self, batch: StepBatch, cache: PagedKVCache) -> torch.Tensor:
        cfg = self.config
        dev = self.device
        nh, nkv, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        if dev.type != "cpu":
            batch = _to_device(batch, dev)
        T = batch.token_ids.shape[0]
        n_dec = batch.decode_slots.shape[0]
        self._rope_tables(int(batch.positions.max()) + 1 if T else 1)
        cos = self._cos.index_select(0, batch.positions)[:, None, :]
        sin = self._sin.index_select(0, batch.positions)[:, None, :]
        x = self.embed(batch.token_ids)

        if n_dec:  # decode rows attend over their own positions 0..pos (a boolean mask per row)
            dec_len = max(batch.decode_lengths)
            dec_pos = batch.positions[:n_dec]
            dec_mask = (torch.arange(dec_len, device=dev)[None, :] <= dec_pos[:, None])[:, None, None, :]
        for layer, (attn_norm, qkv_proj, o_proj, ffn_norm, gate_up, down) in enumerate(self.layers):
            h = self._rms(x, attn_norm, cfg.rms_eps)
            qkv = qkv_proj(h).view(T, nh + 2 * nkv, hd)
            qk = self.rotate(qkv[:, : nh + nkv], batch.positions, cos, sin)
            q = qk[:, :nh]
            k = qk[:, nh:]
            v = qkv[:, nh + nkv :]
            out = torch.empty(T, nh, hd, dtype=x.dtype, device=dev)
            if n_dec:
                cache.write(layer, batch.decode_slots, dec_pos, k[:n_dec], v[:n_dec])
                kd, vd = cache.gather(layer, batch.decode_slots, dec_len)
                out[:n_dec] = self.decode_attention(q[:n_dec], kd, vd, dec_mask)
            for seg in batch.prefills:
                r0, r1 = seg.row, seg.row + seg.length
                end = seg.start + seg.length
                slot = torch.tensor([seg.slot], device=dev)
                cache.write(layer, slot.expand(seg.length), batch.positions[r0:r1], k[r0:r1], v[r0:r1])
                ks, vs = cache.gather(layer, slot, end)
                qs = q[r0:r1].transpose(0, 1)[None]  # [1, nh, n, hd]
                ks, vs = ks.to(x.dtype), vs.to(x.dtype)
                if seg.start == 0:
                    att = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=self.scale, enable_gqa=True)
                else:
                    mask = torch.arange(end, device=dev)[None, :] <= torch.arange(seg.start, end, device=dev)[:, None]
                    att = F.scaled_dot_product_attention(
                        qs, ks, vs, attn_mask=mask, scale=self.scale, enable_gqa=True
                    )
                out[r0:r1] = att[0].transpose(0, 1)
            x = x + o_proj(out.view(T, nh * hd))
            x = self.mlp(x, ffn_norm, gate_up, down)
        return self.head(x.index_select(0, batch.sample_rows)).float().cpu()

    # The pieces below are shared with the static decode step (server/llm/static_step.py), which runs
    # them on fixed shapes so that one step can be compiled / captured per batch-size bucket.
    def rotate(self, qk: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """RoPE on the query and key heads ``[T, heads, hd]`` (HF's rotate_half order); ``cos``/``sin``
        are this step's rows of the tables, ``[T, 1, hd]``, used when no rotary kernel was plugged in."""
        if self._rotary is not None:
            return self._rotary(qk, positions)
        half = self.config.head_dim // 2
        rot = torch.cat([-qk[..., half:], qk[..., :half]], dim=-1)
        return qk * cos + rot * sin

    def decode_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One query token per row: ``q`` [n, heads, hd] against its cached ``k``/``v``
        [n, kv_heads, L, hd] under ``mask`` [n, 1, 1, L] (True = attend). A row's query heads are laid
        out as the query length of its KV-head group, so grouped-query attention needs no repeat."""
        cfg = self.config
        n = q.shape[0]
        att = F.scaled_dot_product_attention(
            q.reshape(n, cfg.n_kv_heads, cfg.n_heads // cfg.n_kv_heads, cfg.head_dim), k.to(q.dtype),
            v.to(q.dtype), attn_mask=mask, scale=self.scale,
        )
        return att.reshape(n, cfg.n_heads, cfg.head_dim)

    def mlp(self, x: torch.Tensor, ffn_norm: torch.Tensor, gate_up: Linear, down: Linear) -> torch.Tensor:
        """The residual stream after one SwiGLU feed-forward block."""
        ffn = self.config.ffn
        gu = gate_up(self._rms(x, ffn_norm, self.config.rms_eps))
        return x + down(F.silu(gu[:, :ffn]) * gu[:, ffn:])

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Final norm and LM head over the rows to sample."""
        return self.lm_head(self._rms(x, self.final_norm, self.config.rms_eps))


def _to_device(b: StepBatch, dev: torch.device) -> StepBatch:
    return StepBatch(
        b.token_ids.to(dev), b.positions.to(dev), b.decode_slots.to(dev), b.decode_lengths, b.prefills,
        b.sample_rows.to(dev),
    )

