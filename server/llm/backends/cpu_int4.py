"""The ``cpu-int4`` backend: :meth:`LlamaModel.forward`'s contract on the C++ whole-step kernel.

Adapts the engine's batch (``StepBatch``) and paged KV cache (``PagedKVCache``) to
``kernels/cpp/llm_step.cpp``'s flat arguments; the kernel package itself knows nothing of the
server (kernels <- server <- deployments). Why one native call per step, the activation modes
and their measured accuracy: ``kernels/llm_step.py``.
"""

from __future__ import annotations

import torch

import kernels.llm_step as ks
from kernels.quant_reference import GROUP, Int4Weight, Int8Weight
from server.llm.gemma3 import Gemma3Config, Gemma3Weights
from server.llm.gguf_weights import LlamaConfig, LlamaWeights
from server.llm.kv_cache import PagedKVCache
from server.llm.llama import StepBatch


class CppLlamaStep:
    """``LlamaModel.forward`` in one C++ call; weights are repacked at construction (~100 MB for SmolLM2-135M).

    ``activations``: how the layer matmuls quantize their inputs, ``"int8x2"`` (two int8 terms per
    block; default) or ``"int8"`` (faster, less accurate; see the module docstring).
    ``head_activations``: the same for the LM head (Q8_0); None: as ``activations``. Measured
    (50 prompts x 32 greedy tokens vs the fp32 forward): int8 everywhere 64% agreement, int8x2
    layers + int8 head 82%, int8 layers + int8x2 head 64%, int8x2 everywhere 100%.

    The KV cache it reads and writes holds fp16 (``kv_dtype``; the engine sizes its cache by it):
    attention streams K/V from memory, and 16 bits halve that traffic and the cache's size.
    """

    kv_dtype = torch.float16

    def __init__(
        self,
        weights: LlamaWeights,
        num_threads: int | None = None,
        activations: str = "int8x2",
        head_activations: str | None = None,
    ) -> None:
        self._build(weights, num_threads, activations, head_activations, head_dim=0, allow_q8=False)

    def _build(
        self,
        weights: LlamaWeights | Gemma3Weights,
        num_threads: int | None,
        activations: str,
        head_activations: str | None,
        head_dim: int,
        allow_q8: bool,
    ) -> None:
        """Validate and hand every weight to the C++ model. head_dim 0: hidden / n_heads (Llama);
        allow_q8: layer matrices may be Q8_0 as well as Q4_1 (the Gemma 3 GGUF mixes them)."""
        ks.require_built()
        ks.check_activations(activations)
        if head_activations is None:
            head_activations = activations
        ks.check_activations(head_activations)
        cfg: LlamaConfig | Gemma3Config = weights.config
        self.config = cfg
        h, hd = cfg.hidden, cfg.head_dim
        qkv_rows = (cfg.n_heads + 2 * cfg.n_kv_heads) * hd
        if len(weights.layers) != cfg.n_layers:
            raise ValueError(f"weights.layers: expected {cfg.n_layers} layers, got {len(weights.layers)}")

        # The C++ constructor reads these pointers and repacks the weights into its own memory; the
        # tensors are kept referenced anyway (cheap, and safe should that ever change).
        keep: list[torch.Tensor] = []

        def vec(t: torch.Tensor, name: str) -> int:
            ks.check_tensor(t, name, torch.float32, (h,))
            keep.append(t)
            return t.data_ptr()

        def q4(w: object, name: str, n: int, k: int) -> tuple[int, int, int]:
            if allow_q8 and isinstance(w, Int8Weight):  # mins pointer 0: the C++ side packs Q8_0
                ks.check_tensor(w.qweight, f"{name}.qweight", torch.int8, (n, k))
                ks.check_tensor(w.scales, f"{name}.scales", torch.float32, (n, k // GROUP))
                keep.extend([w.qweight, w.scales])
                return w.qweight.data_ptr(), w.scales.data_ptr(), 0
            if not isinstance(w, Int4Weight):
                raise ValueError(f"{name}: expected Int4Weight (Q4_1), got {type(w).__name__}")
            ks.check_tensor(w.qweight, f"{name}.qweight", torch.uint8, (n, k // 2))
            ks.check_tensor(w.scales, f"{name}.scales", torch.float32, (n, k // GROUP))
            ks.check_tensor(w.mins, f"{name}.mins", torch.float32, (n, k // GROUP))
            keep.extend([w.qweight, w.scales, w.mins])
            return w.qweight.data_ptr(), w.scales.data_ptr(), w.mins.data_ptr()

        emb = weights.embedding
        if not isinstance(emb, Int8Weight):
            raise ValueError(f"embedding: expected Int8Weight (Q8_0), got {type(emb).__name__}")
        ks.check_tensor(emb.qweight, "embedding.qweight", torch.int8, (cfg.vocab_size, h))
        ks.check_tensor(emb.scales, "embedding.scales", torch.float32, (cfg.vocab_size, h // GROUP))
        keep.extend([emb.qweight, emb.scales])
        lists: dict[str, list[int]] = {
            k: [] for k in ("attn_norm", "ffn_norm", *(f"{p}_{s}" for p in ("qkv", "o", "gu", "dn") for s in "qsm"))
        }
        for i, layer in enumerate(weights.layers):
            lists["attn_norm"].append(vec(layer.attn_norm, f"layers[{i}].attn_norm"))
            lists["ffn_norm"].append(vec(layer.ffn_norm, f"layers[{i}].ffn_norm"))
            for prefix, w, n, k in (
                ("qkv", layer.qkv, qkv_rows, h),
                ("o", layer.o, h, cfg.n_heads * hd),
                ("gu", layer.gate_up, 2 * cfg.ffn, h),
                ("dn", layer.down, h, cfg.ffn),
            ):
                ptrs = q4(w, f"layers[{i}].{prefix}", n, k)
                for s, p in zip("qsm", ptrs, strict=True):
                    lists[f"{prefix}_{s}"].append(p)
        self._impl = ks.native().Llama(
            n_layers=cfg.n_layers,
            hidden=h,
            ffn=cfg.ffn,
            n_heads=cfg.n_heads,
            n_kv_heads=cfg.n_kv_heads,
            vocab=cfg.vocab_size,
            rope_theta=float(cfg.rope_theta),
            rms_eps=float(cfg.rms_eps),
            emb_q=emb.qweight.data_ptr(),
            emb_s=emb.scales.data_ptr(),
            final_norm=vec(weights.final_norm, "final_norm"),
            **lists,
            activations=activations,
            head_activations=head_activations,
            head_dim=head_dim,
        )
        self.activations = activations
        self.head_activations = head_activations
        self._keep = keep
        self._weights = weights
        if num_threads is not None:
            self.num_threads = num_threads

    @property
    def num_threads(self) -> int:
        """Threads used by :meth:`forward` (0: the module default of :func:`set_num_threads`)."""
        return int(self._impl.num_threads)

    @num_threads.setter
    def num_threads(self, n: int) -> None:
        if int(n) < 0:
            raise ValueError(f"num_threads must be >= 0, got {n}")
        self._impl.num_threads = int(n)

    @property
    def packed_bytes(self) -> int:
        """Bytes of repacked weights the step reads (all of them once per single-token decode)."""
        return int(self._impl.packed_bytes)

    def set_profiling(self, on: bool) -> None:
        """Accumulate wall time per phase (embed, qkv, attention, ...) across steps; see :meth:`profile`."""
        self._impl.set_profiling(bool(on))

    def profile(self, reset: bool = False) -> dict[str, float]:
        return dict(self._impl.profile(reset))

    def _row_slots(self, batch: StepBatch, t: int) -> torch.Tensor:
        """Slot of every packed row: decode rows first, then each prefill segment's rows."""
        n_dec = int(batch.decode_slots.shape[0])
        if len(batch.decode_lengths) != n_dec:
            raise ValueError(f"decode_lengths: expected {n_dec} entries, got {len(batch.decode_lengths)}")
        if not batch.prefills:
            if n_dec != t:
                raise ValueError(f"decode_slots: {n_dec} decode rows but {t} tokens and no prefill segments")
            slots = batch.decode_slots
        else:
            slots = torch.empty(t, dtype=torch.int64)
            slots[:n_dec] = batch.decode_slots
            row = n_dec
            for i, seg in enumerate(batch.prefills):
                if seg.row != row or seg.length < 1 or seg.row + seg.length > t:
                    raise ValueError(
                        f"prefills[{i}]: rows [{seg.row}, {seg.row + seg.length}) must follow row {row} within {t} rows"
                    )
                if seg.start < 0:
                    raise ValueError(f"prefills[{i}]: start must be >= 0, got {seg.start}")
                want = torch.arange(seg.start, seg.start + seg.length, dtype=torch.int64)
                if not torch.equal(batch.positions[seg.row : seg.row + seg.length], want):
                    raise ValueError(
                        f"positions: rows of prefills[{i}] must be {seg.start}..{seg.start + seg.length - 1}"
                    )
                slots[seg.row : seg.row + seg.length] = seg.slot
                row += seg.length
            if row != t:
                raise ValueError(f"prefills: cover rows up to {row} but there are {t} tokens")
        if n_dec:
            lengths = batch.positions[:n_dec] + 1
            if lengths.tolist() != [int(v) for v in batch.decode_lengths]:
                raise ValueError("decode_lengths: must equal positions + 1 of the decode rows")
        return slots

    def forward(self, batch: StepBatch, cache: PagedKVCache) -> torch.Tensor:
        """Logits [len(sample_rows), vocab] (float32); writes this step's K/V into ``cache``."""
        cfg = self.config
        tok = ks.check_tensor(batch.token_ids, "token_ids", torch.int64)
        if tok.dim() != 1:
            raise ValueError(f"token_ids: expected 1-D, got shape {tuple(tok.shape)}")
        t = int(tok.shape[0])
        pos = ks.check_tensor(batch.positions, "positions", torch.int64, (t,))
        ks.check_tensor(batch.decode_slots, "decode_slots", torch.int64)
        if batch.decode_slots.dim() != 1:
            raise ValueError("decode_slots: expected 1-D")
        sample = ks.check_tensor(batch.sample_rows, "sample_rows", torch.int64)
        if sample.dim() != 1:
            raise ValueError("sample_rows: expected 1-D")
        shape = (cfg.n_layers, cfg.n_kv_heads, cache.n_blocks, cache.block_size, cfg.head_dim)
        ks.check_tensor(cache.k, "cache.k", self.kv_dtype, shape)
        ks.check_tensor(cache.v, "cache.v", self.kv_dtype, shape)
        slots = ks.check_tensor(self._row_slots(batch, t), "slots", torch.int64, (t,))
        logits = torch.empty(int(sample.shape[0]), cfg.vocab_size, dtype=torch.float32)
        # Ranges (token ids, positions within the table, slots < table rows, the blocks a row reaches
        # < n_blocks, sample rows < T, no repeated cache cell) are checked in C++ before any work,
        # with ValueErrors naming the argument. Positions beyond max_len are refused here.
        if t and int(pos.max()) >= cache.max_len:
            raise ValueError(f"positions: {int(pos.max())} is out of range [0, max_len={cache.max_len})")
        self._impl.step(
            tok.numpy(),
            pos.numpy(),
            slots.numpy(),
            sample.numpy(),
            cache.k.data_ptr(),
            cache.v.data_ptr(),
            cache.block_tables,
            cache.n_blocks,
            cache.block_size,
            logits.numpy(),
        )
        return logits

    __call__ = forward


class CppGemma3Step(CppLlamaStep):
    """Gemma 3's forward (:class:`server.llm.gemma3.Gemma3Model`) in one C++ call per step: the Llama
    step with Gemma's extras switched on (``enable_gemma3`` in kernels/cpp/llm_step.cpp): scaled
    embedding, q/k norms, sandwich norms, GeGLU, sliding-window layers with their own RoPE base.

    Why not the PyTorch forward with a native matmul per linear: ~18 x 12 Python ops per token
    cost more than the arithmetic of this 270M model (docs/design/llm.md has the numbers).
    """

    def __init__(
        self,
        weights: Gemma3Weights,
        num_threads: int | None = None,
        activations: str = "int8x2",
        head_activations: str | None = None,
    ) -> None:
        cfg = weights.config
        self._build(weights, num_threads, activations, head_activations, head_dim=cfg.head_dim, allow_q8=True)
        keep = self._keep

        def vecs(attr: str, n: int) -> list[int]:
            out = []
            for i, layer in enumerate(weights.layers):
                t = getattr(layer, attr)
                ks.check_tensor(t, f"layers[{i}].{attr}", torch.float32, (n,))
                keep.append(t)
                out.append(t.data_ptr())
            return out

        self._impl.enable_gemma3(
            q_norm=vecs("q_norm", cfg.head_dim),
            k_norm=vecs("k_norm", cfg.head_dim),
            post_attn_norm=vecs("post_attn_norm", cfg.hidden),
            post_ffn_norm=vecs("post_ffn_norm", cfg.hidden),
            sliding=[cfg.is_sliding(i) for i in range(cfg.n_layers)],
            window=cfg.sliding_window,
            local_theta=float(cfg.rope_local_theta),
            embed_scale=float(torch.tensor(cfg.hidden**0.5, dtype=torch.float32).item()),
        )
