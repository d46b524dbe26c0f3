"""A static decode step: fixed shapes per (batch, context) bucket, so one step can be compiled or
captured once per bucket (CUDA graphs / ``torch.compile(mode="reduce-overhead")``), as gpt-fast does.

Why: :meth:`LlamaModel.forward` serves any mix of prefill chunks and decode rows, and pays for that
generality with Python shape logic (``max(decode_lengths)``, one attention call per prefill chunk),
host reads of device values (``int(positions.max())``, block-table lookups through the CPU) and
shapes that change every step. On a GPU that makes a decode step launch-bound (one GPU run measured
3.9 ms for 4 layers, eager) and uncapturable. Here, a decode-only step:

* is padded to the next batch bucket (1, 2, 4, ... ``max_batch``) and attends over the next context
  bucket (a power of two of KV blocks, at least :data:`MIN_CTX_BLOCKS`), both chosen on the host
  *before* the step; positions past a row's own are masked, as gpt-fast masks its fixed cache;
* takes its inputs as tensors in fixed buffers (token ids, positions, slot indices and the whole
  block table, copied in with ``copy_``), writes K/V into the engine's preallocated paged pool
  (``PagedKVCache.k``/``v``) through the table on the device, and reads nothing back to the host;
* pads by repeating the last real row: a padding row computes the same K/V for the same cell as
  the row it copies, so it needs no scratch block and changes no other sequence's cache.

Prefill chunks and speculative verification (rows beyond one per sequence) still run the eager
forward: they are a minority of steps in steady decoding and their shapes vary by nature.

Measured on the CPU (``python -m bench.llm_static_step``, see docs/design/llm.md): whether the compiled
step beats eager there decides the ``torch-fp32`` default; on a GPU ``bench/gpu_check.sh`` measures it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from server.llm.kv_cache import PagedKVCache
from server.llm.llama import LlamaModel, StepBatch

#: Smallest context bucket, in KV blocks (16 positions each by default): shorter contexts share it.
MIN_CTX_BLOCKS = 4
#: Batch buckets up to this size; a decode step with more rows runs the eager forward.
DEFAULT_MAX_BATCH = 64

StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def next_bucket(n: int, cap: int) -> int:
    """The smallest power of two >= ``n`` (at least 1), not above ``cap``; ``cap`` itself when
    ``n`` exceeds the largest power of two below it (the last bucket is the cap)."""
    if n > cap:
        raise ValueError(f"{n} exceeds the largest bucket {cap}")
    return min(cap, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


class StaticDecodeStep:
    """The decode step of ``model`` over ``cache``'s pool with fixed shapes (see the module notes).

    :meth:`step` is the function to compile or capture: pure tensor code with no host reads.
    :meth:`__call__` is its host side: pick the buckets, fill the static input buffers, run the
    (compiled) step for that bucket, return the real rows' logits.
    """

    def __init__(self, model: LlamaModel, cache: PagedKVCache, max_batch: int = DEFAULT_MAX_BATCH,
                 compile_mode: str | None = None) -> None:
        """compile_mode: None runs the step eagerly; ``"default"`` / ``"reduce-overhead"`` /
        ``"max-autotune-no-cudagraphs"`` compile it (``fullgraph=True``, one graph per bucket;
        ``"reduce-overhead"`` captures CUDA graphs on a GPU); ``"cuda-graph"`` captures the eager
        step in a ``torch.cuda.CUDAGraph`` per bucket without compiling (kernels that dynamo cannot
        trace, such as ours in kernels/triton, are captured as they launch)."""
        self.model = model
        self.cache = cache
        self.max_batch = max_batch
        dev = model.device
        model._rope_tables(cache.max_len)
        self._cos, self._sin = model._cos[: cache.max_len], model._sin[: cache.max_len]
        self._ctx_positions = torch.arange(cache.max_blocks * cache.block_size, device=dev)
        # the static inputs: every bucket's buffers are views of these
        self._tokens = torch.zeros(max_batch, dtype=torch.long, device=dev)
        self._positions = torch.zeros(max_batch, dtype=torch.long, device=dev)
        self._slots = torch.zeros(max_batch, dtype=torch.long, device=dev)
        self._tables = torch.zeros(cache.block_tables.shape, dtype=torch.long, device=dev)
        self._ctx_blocks: dict[int, torch.Tensor] = {}
        self.compile_mode = compile_mode
        self._fn: StepFn = self.step
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        if compile_mode == "cuda-graph":
            if dev.type != "cuda":
                raise ValueError("compile_mode='cuda-graph' needs the model on a CUDA device")
            self._fn = self._replay
        elif compile_mode is not None:
            # one graph per (batch, context) bucket: raise dynamo's per-function limit to their number
            import torch._dynamo.config as dynamo_config

            n_buckets = (int(math.log2(max_batch)) + 2) * (int(math.log2(max(cache.max_blocks, 1))) + 2)
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, n_buckets)
            self._fn = torch.compile(self.step, mode=compile_mode, fullgraph=True, dynamic=False)

    def buckets(self, n_rows: int, max_length: int) -> tuple[int, int]:
        """(batch bucket, context blocks) for ``n_rows`` decode rows whose longest sequence holds
        ``max_length`` positions after this step."""
        c = self.cache
        need = min(max(MIN_CTX_BLOCKS, math.ceil(max_length / c.block_size)), c.max_blocks)
        return next_bucket(n_rows, self.max_batch), next_bucket(need, c.max_blocks)

    def ctx_index(self, n_blocks: int) -> torch.Tensor:
        """``arange(n_blocks)``: a fixed tensor per context bucket, so that the step's context length
        comes from a shape, never from a Python int argument."""
        t = self._ctx_blocks.get(n_blocks)
        if t is None:
            t = self._ctx_blocks[n_blocks] = torch.arange(n_blocks, device=self.model.device)
        return t

    def step(self, tokens: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor, tables: torch.Tensor,
             ctx_blocks: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, vocab]`` (the model's dtype) for ``B`` decode rows; writes their K/V.

        tokens, positions, slots: ``[B]`` int64 (a row's token, its position, its cache slot);
        tables: the whole block table ``[n_slots, max_blocks]``; ctx_blocks: ``arange(nb)``, the
        context bucket's block indices. Every shape is fixed by its arguments' shapes."""
        m, cache = self.model, self.cache
        cfg = m.config
        nh, nkv, hd, bs = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cache.block_size
        b = tokens.shape[0]
        ctx = ctx_blocks.shape[0] * bs
        cos = self._cos.index_select(0, positions)[:, None, :]
        sin = self._sin.index_select(0, positions)[:, None, :]
        row_tables = tables.index_select(0, slots)  # [B, max_blocks]
        write_block = row_tables.gather(1, (positions // bs)[:, None])[:, 0]
        write_offset = positions % bs
        read_blocks = row_tables.index_select(1, ctx_blocks)  # [B, nb]
        mask = (self._ctx_positions[:ctx][None, :] <= positions[:, None])[:, None, None, :]
        x = m.embed(tokens)
        for layer, (attn_norm, qkv_proj, o_proj, ffn_norm, gate_up, down) in enumerate(m.layers):
            qkv = qkv_proj(m._rms(x, attn_norm, cfg.rms_eps)).view(b, nh + 2 * nkv, hd)
            qk = m.rotate(qkv[:, : nh + nkv], positions, cos, sin)
            k_pool, v_pool = cache.k[layer], cache.v[layer]  # [kvh, n_blocks, bs, hd]
            k_pool[:, write_block, write_offset] = qk[:, nh:].transpose(0, 1).to(k_pool.dtype)
            v_pool[:, write_block, write_offset] = qkv[:, nh + nkv :].transpose(0, 1).to(v_pool.dtype)
            kd = k_pool[:, read_blocks].transpose(0, 1).reshape(b, nkv, ctx, hd)
            vd = v_pool[:, read_blocks].transpose(0, 1).reshape(b, nkv, ctx, hd)
            att = m.decode_attention(qk[:, :nh], kd, vd, mask)
            x = x + o_proj(att.reshape(b, nh * hd))
            x = m.mlp(x, ffn_norm, gate_up, down)
        return m.head(x)

    def _replay(self, tokens: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor, tables: torch.Tensor,
                ctx_blocks: torch.Tensor) -> torch.Tensor:
        """Run the bucket's captured graph, capturing it on first use (after warm-up runs on a side
        stream, as torch.cuda.graphs requires). Its inputs are always the same static buffers, so a
        replay reads whatever :meth:`__call__` copied into them; the output tensor is the graph's own."""
        key = (tokens.shape[0], ctx_blocks.shape[0])
        if key not in self._graphs:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # the warm-up writes the same K/V as the replay will
                    self.step(tokens, positions, slots, tables, ctx_blocks)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.step(tokens, positions, slots, tables, ctx_blocks)
            self._graphs[key] = (graph, out)
        graph, out = self._graphs[key]
        graph.replay()
        return out

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor,
                 max_length: int) -> torch.Tensor:
        """Logits ``[n, vocab]`` for ``n`` decode rows (CPU tensors or device tensors, any of them);
        ``max_length``: the longest row's cache length after this step (known on the host)."""
        n = tokens.shape[0]
        b, nb = self.buckets(n, max_length)
        dev = self.model.device
        t, p, s = self._tokens[:b], self._positions[:b], self._slots[:b]
        for buf, src in ((t, tokens), (p, positions), (s, slots)):
            buf[:n].copy_(src, non_blocking=True)
            if b > n:  # padding rows repeat the last real row: same K/V into the same cell
                buf[n:].copy_(src[n - 1 :].to(dev, non_blocking=True).expand(b - n))
        self._tables.copy_(self.cache._tables_t, non_blocking=True)
        return self._fn(t, p, s, self._tables, self.ctx_index(nb))[:n]


class StaticDecodeForward:
    """``forward(batch, cache) -> logits`` for the engine: decode-only steps (one row per decoding
    sequence, every row sampled, at most ``max_batch`` rows) run the static step, everything else the
    model's eager forward. The static step is built for the first cache it sees (the engine has
    one). Exposes ``device``/``dtype`` so the engine sizes its KV cache from it (``kv_layout``)."""

    def __init__(self, model: LlamaModel, compile_mode: str | None = None,
                 max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.model = model
        self.device, self.dtype = model.device, model.dtype
        self.compile_mode = compile_mode
        self.max_batch = max_batch
        self._step: StaticDecodeStep | None = None
        self.static_steps = 0  # steps served by the static path (tests and benchmarks read it)

    def step_for(self, cache: PagedKVCache) -> StaticDecodeStep:
        if self._step is None or self._step.cache is not cache:
            self._step = StaticDecodeStep(self.model, cache, self.max_batch, self.compile_mode)
        return self._step

    def forward(self, batch: StepBatch, cache: PagedKVCache) -> torch.Tensor:
        n = batch.decode_slots.shape[0]
        if (batch.prefills or n == 0 or n > self.max_batch or batch.token_ids.shape[0] != n
                or not torch.equal(batch.sample_rows, torch.arange(n, device=batch.sample_rows.device))):
            return self.model.forward(batch, cache)
        self.static_steps += 1
        logits = self.step_for(cache)(batch.token_ids, batch.positions, batch.decode_slots,
                                      max(batch.decode_lengths))
        return logits.float().cpu()
