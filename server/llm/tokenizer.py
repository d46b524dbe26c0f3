"""Byte-level BPE tokenizer and chat template, both read from the GGUF file.

Why not transformers: it is a heavy import for the replica and only a test reference here. The
``tokenizers`` library (Rust) does the BPE; we rebuild SmolLM2's pipeline (digits split one by
one, then GPT-2 byte-level pre-tokenization) from the GGUF vocabulary and merges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

CONTROL = 3  # GGUF token_type for control/special tokens


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str


class GGUFTokenizer:
    """Encode/decode plus incremental detokenization for streaming."""

    def __init__(self, reader) -> None:
        f = reader.fields
        model = f["tokenizer.ggml.model"].contents()
        if model != "gpt2":
            raise ValueError(f"tokenizer model {model!r} not supported (byte-level BPE 'gpt2' only)")
        tokens: list[str] = f["tokenizer.ggml.tokens"].contents()
        types: list[int] = f["tokenizer.ggml.token_type"].contents()
        merges = [tuple(m.split(" ", 1)) for m in f["tokenizer.ggml.merges"].contents()]
        vocab = {t: i for i, t in enumerate(tokens)}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
        pre = f["tokenizer.ggml.pre"].contents() if "tokenizer.ggml.pre" in f else "default"
        parts = [pre_tokenizers.Digits(individual_digits=True)] if pre == "smollm" else []
        parts.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(parts)
        tok.decoder = decoders.ByteLevel()
        specials = [
            AddedToken(t, special=True, normalized=False)
            for t, ty in zip(tokens, types, strict=True)
            if ty == CONTROL
        ]
        tok.add_special_tokens(specials)
        self._tok = tok
        self.vocab_size = len(tokens)
        self.special_ids = frozenset(i for i, ty in enumerate(types) if ty == CONTROL)
        self.bos_id = int(f["tokenizer.ggml.bos_token_id"].contents())
        self.eos_id = int(f["tokenizer.ggml.eos_token_id"].contents())
        add_bos = f.get("tokenizer.ggml.add_bos_token")
        self.add_bos = bool(add_bos.contents()) if add_bos is not None else False
        tmpl = f["tokenizer.chat_template"].contents() if "tokenizer.chat_template" in f else None
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
        self._template = env.from_string(tmpl) if tmpl else None
        # ids whose text is a complete UTF-8 string on its own; others need their neighbours
        self._byte_decoder = {c: b for b, c in _bytes_to_unicode().items()}
        self._token_bytes = [self._bytes_of(t, i) for i, t in enumerate(tokens)]

    def _bytes_of(self, token: str, i: int) -> bytes:
        if i in self.special_ids:
            return token.encode()
        try:
            return bytes(self._byte_decoder[c] for c in token)
        except KeyError:
            return token.encode()

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        if add_special and self.add_bos:
            ids = [self.bos_id, *ids]
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        return self.token_bytes(ids, skip_special).decode("utf-8", errors="replace")

    def token_bytes(self, ids: Sequence[int], skip_special: bool = True) -> bytes:
        return b"".join(
            self._token_bytes[i] for i in ids if not (skip_special and i in self.special_ids)
        )

    def apply_chat_template(self, messages: Sequence[ChatMessage | dict], add_generation_prompt: bool = True) -> str:
        if self._template is None:
            raise ValueError("this model has no chat template")
        msgs = [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in messages]
        return self._template.render(messages=msgs, add_generation_prompt=add_generation_prompt)


class IncrementalDecoder:
    """Turns a token stream into text pieces that never split a UTF-8 character.

    A byte-level BPE token can end in the middle of a multi-byte character; such bytes are held
    back until the character completes, so every streamed piece is valid UTF-8.
    """

    __slots__ = ("_pending", "_skip", "_tok")

    def __init__(self, tokenizer: GGUFTokenizer, skip_special: bool = True) -> None:
        self._tok = tokenizer
        self._pending = b""
        self._skip = skip_special

    def push(self, token_id: int) -> str:
        if self._skip and token_id in self._tok.special_ids:
            return ""
        data = self._pending + self._tok._token_bytes[token_id]
        # keep an incomplete trailing sequence (at most 3 bytes) for the next token
        for cut in range(len(data), max(len(data) - 4, -1), -1):
            try:
                text = data[:cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
            self._pending = data[cut:]
            if len(self._pending) > 3:  # not a prefix of a valid character: emit replacement
                text += self._pending.decode("utf-8", errors="replace")
                self._pending = b""
            return text
        text = data.decode("utf-8", errors="replace")
        self._pending = b""
        return text

    def flush(self) -> str:
        text = self._pending.decode("utf-8", errors="replace")
        self._pending = b""
        return text


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-character map used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))
