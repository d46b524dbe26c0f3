"""Byte-level BPE and SentencePiece-BPE tokenizers and chat templates, read from the GGUF file.

Why not transformers: it is a heavy import for the replica and only a test reference here. The
``tokenizers`` library (Rust) does the BPE; we rebuild the GGUF's pre-tokenizer (named by
``tokenizer.ggml.pre``, as llama.cpp reads it) from :data:`PRE_TOKENIZERS` — SmolLM2's is digits
split one by one, then GPT-2 byte-level pre-tokenization — and the BPE from its vocabulary and
merges. A pre-tokenizer we do not know is refused: another regex would split text differently
from the model's training and silently change its ids.

SentencePiece models (``tokenizer.ggml.model == "llama"``, Gemma's) carry no merges: they are
rebuilt from the vocabulary (every split of a token into two tokens is a merge), ranked by the
token's position in the file: Gemma's scores do not follow its merge order, its file order does
(transformers' GGUF loader found the same). Spaces become "▁" (no prefix space unless the file asks),
unknown characters fall back to the byte tokens ``<0xXX>``, and tokens made of spaces, which Gemma's
file spells with real spaces, are respelled with "▁" so that the merges reach them.

Chat templates render in the Jinja environment transformers gives them (``ChatTemplate``), so a
template written for ``tokenizer.apply_chat_template`` renders the same here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

CONTROL = 3  # GGUF token_type for control/special tokens
USER_DEFINED = 4  # added tokens matched whole in the text (Gemma: runs of newlines, image markers)
BYTE = 6  # SentencePiece byte-fallback tokens <0xXX>
SPACE = "\u2581"
#: Chat templates for GGUFs that carry none, by ``general.architecture`` (the models' published ones).
DEFAULT_TEMPLATES = {
    "gemma3": (
        "{{ bos_token }}"
        "{% if messages and messages[0]['role'] == 'system' %}"
        "{% set system = messages[0]['content'] + '\n\n' %}{% set messages = messages[1:] %}"
        "{% else %}{% set system = '' %}{% endif %}"
        "{% for message in messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
        "{{ '<start_of_turn>' + role + '\n' + (system if loop.first else '') + message['content'] | trim"
        " + '<end_of_turn>\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
    ),
}
#: Tokens that end an assistant turn besides EOS, by architecture (llama.cpp's end-of-turn ids).
END_OF_TURN = {"gemma3": ("<end_of_turn>",)}


def _gpt2() -> list:
    return []


def _smollm() -> list:
    return [pre_tokenizers.Digits(individual_digits=True)]


#: ``tokenizer.ggml.pre`` values we can rebuild -> the steps before GPT-2's byte-level regex split
#: (llama.cpp: LLAMA_VOCAB_PRE_TYPE_GPT2 = GPT-2's regex alone; _SMOLLM = each digit on its own first).
PRE_TOKENIZERS: dict[str, Callable[[], list]] = {"gpt-2": _gpt2, "smollm": _smollm}


class UnsupportedTokenizerError(ValueError):
    """The GGUF's tokenizer (model or pre-tokenizer) is not one this module can rebuild."""


def pre_tokenizer_for(fields) -> pre_tokenizers.PreTokenizer:
    """The pre-tokenizer named by the GGUF's ``tokenizer.ggml.pre``; raises for any other value."""
    supported = ", ".join(repr(k) for k in PRE_TOKENIZERS)
    if "tokenizer.ggml.pre" not in fields:
        raise UnsupportedTokenizerError(
            f"the GGUF has no tokenizer.ggml.pre, so its pre-tokenizer (text split before BPE) is unknown; "
            f"supported: {supported}"
        )
    pre = fields["tokenizer.ggml.pre"].contents()
    if pre not in PRE_TOKENIZERS:
        raise UnsupportedTokenizerError(
            f"GGUF pre-tokenizer tokenizer.ggml.pre={pre!r} is not supported; supported: {supported}"
        )
    parts = PRE_TOKENIZERS[pre]()
    parts.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    return pre_tokenizers.Sequence(parts)


# ---- chat templates -------------------------------------------------------------------------------


def _raise_exception(message: str):
    """``raise_exception(msg)`` in a template: the template refuses its input (e.g. a bad role)."""
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys: bool = False):
    """transformers' ``tojson``: plain ``json.dumps`` (Jinja's own escapes <, >, & and ' for HTML)."""
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _GenerationTag(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` (transformers marks assistant text with it for
    training masks); here it renders its body unchanged."""

    tags = frozenset({"generation"})

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


class _TemplateDict:
    """``dict(...)`` / ``dict.fromkeys(...)`` in a template, without handing it the ``dict`` type."""

    def __call__(self, *args, **kwargs) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs) -> dict:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """``namespace(...)`` that refuses underscore names (no reaching CPython internals through it)."""

    def __init__(*args, **kwargs):  # Jinja's signature trick: namespace(self=...) still works
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _TemplateNamespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"a chat template cannot set {name!r} on a namespace")


def chat_template_environment() -> ImmutableSandboxedEnvironment:
    """The Jinja environment of transformers' ``apply_chat_template`` (``_compile_jinja_template``):
    sandboxed, trim_blocks + lstrip_blocks, ``loopcontrols`` ({% break %} / {% continue %}), its
    ``tojson`` filter, the globals ``raise_exception``, ``strftime_now``, ``dict`` and ``namespace``,
    ``{% generation %}``; undefined names are falsy and render empty, as there."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols, _GenerationTag]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env


class ChatTemplate:
    """A compiled chat template and the special-token strings it may use."""

    def __init__(self, source: str, special_tokens: dict[str, str] | None = None) -> None:
        self.source = source
        self.special_tokens = dict(special_tokens or {})  # bos_token, eos_token, ...
        self._template = chat_template_environment().from_string(source)

    def render(
        self,
        messages: Sequence[dict],
        add_generation_prompt: bool = True,
        tools: list[dict] | None = None,
        documents: list[dict] | None = None,
        **extra: Any,
    ) -> str:
        """Render like transformers: ``messages`` (keys whose value is None dropped: templates test
        for a missing key, not for None), ``tools``, ``documents``, ``add_generation_prompt``, the
        special tokens (``bos_token``, ``eos_token``, ...) and any extra template variables."""
        return self._template.render(
            **self.special_tokens,
            **extra,
            messages=[{k: v for k, v in m.items() if v is not None} for m in messages],
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
        )


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str


def _spm_tokenizer(f, tokens: list[str], types: list[int]) -> Tokenizer:
    """SentencePiece-BPE (see the module docstring) as a ``tokenizers`` BPE with byte fallback."""
    pieces = [SPACE * len(t) if t and " " in t and not t.strip() else t for t in tokens]
    vocab = {t: i for i, t in enumerate(pieces)}
    ranked = []
    for i, t in enumerate(pieces):
        if types[i] not in (1, USER_DEFINED):  # normal and user-defined tokens are BPE results
            continue
        for cut in range(1, len(t)):
            left, right = t[:cut], t[cut:]
            if left in vocab and right in vocab:
                ranked.append((i, -len(left), left, right))
    ranked.sort()
    merges = [(left, right) for _, _, left, right in ranked]
    unk = int(f["tokenizer.ggml.unknown_token_id"].contents()) if "tokenizer.ggml.unknown_token_id" in f else None
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, fuse_unk=True,
                               unk_token=pieces[unk] if unk is not None else None))  # fmt: skip
    steps = [normalizers.Replace(" ", SPACE)]
    prefix = f.get("tokenizer.ggml.add_space_prefix")
    if prefix is not None and bool(prefix.contents()):
        steps.insert(0, normalizers.Prepend(SPACE))
    tok.normalizer = normalizers.Sequence(steps)
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    # user-defined tokens are matched whole, except runs of spaces: respelled, the merges reach them
    tok.add_tokens([AddedToken(t, normalized=False) for t, p, ty in zip(tokens, pieces, types, strict=True)
                    if ty == USER_DEFINED and t == p])  # fmt: skip
    return tok


class GGUFTokenizer:
    """Encode/decode plus incremental detokenization for streaming."""

    def __init__(self, reader) -> None:
        f = reader.fields
        model = f["tokenizer.ggml.model"].contents()
        if model not in ("gpt2", "llama"):
            raise UnsupportedTokenizerError(
                f"tokenizer model {model!r} not supported (byte-level BPE 'gpt2', SentencePiece 'llama')"
            )
        self.spm = model == "llama"
        tokens: list[str] = f["tokenizer.ggml.tokens"].contents()
        types: list[int] = f["tokenizer.ggml.token_type"].contents()
        if self.spm:
            tok = _spm_tokenizer(f, tokens, types)
        else:
            pre_tokenizer = pre_tokenizer_for(f)  # before the vocabulary: an unknown one fails fast
            merges = [tuple(m.split(" ", 1)) for m in f["tokenizer.ggml.merges"].contents()]
            vocab = {t: i for i, t in enumerate(tokens)}
            tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
            tok.pre_tokenizer = pre_tokenizer
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
        arch = f["general.architecture"].contents() if "general.architecture" in f else ""
        tmpl = f["tokenizer.chat_template"].contents() if "tokenizer.chat_template" in f else None
        tmpl = tmpl or DEFAULT_TEMPLATES.get(arch)
        ids = {t: i for i, t in enumerate(tokens)}
        # ids that end generation: EOS, and the architecture's end-of-turn token (Gemma's <end_of_turn>)
        self.stop_ids = frozenset({self.eos_id, *(ids[t] for t in END_OF_TURN.get(arch, ()) if t in ids)})
        specials = {"bos_token": tokens[self.bos_id], "eos_token": tokens[self.eos_id]}
        for name in ("unknown", "padding"):
            key = f"tokenizer.ggml.{name}_token_id"
            if key in f and 0 <= int(f[key].contents()) < len(tokens):
                specials["unk_token" if name == "unknown" else "pad_token"] = tokens[int(f[key].contents())]
        self.chat_template = ChatTemplate(tmpl, specials) if tmpl else None
        # ids whose text is a complete UTF-8 string on its own; others need their neighbours
        self._byte_decoder = {c: b for b, c in _bytes_to_unicode().items()}
        self._types = types
        self._token_bytes = [self._bytes_of(t, i) for i, t in enumerate(tokens)]

    def _bytes_of(self, token: str, i: int) -> bytes:
        if i in self.special_ids:
            return token.encode()
        if self.spm:
            if self._types[i] == BYTE and len(token) == 6 and token.startswith("<0x"):
                return bytes([int(token[3:5], 16)])
            return token.replace(SPACE, " ").encode()
        try:
            return bytes(self._byte_decoder[c] for c in token)
        except KeyError:
            return token.encode()

    def to_json(self) -> str:
        """The tokenizer as Hugging Face ``tokenizers`` JSON (what grammar engines load)."""
        return self._tok.to_str()

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        # a chat template may write bos_token itself (transformers then tokenizes without adding one)
        if add_special and self.add_bos and ids[:1] != [self.bos_id]:
            ids = [self.bos_id, *ids]
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        return self.token_bytes(ids, skip_special).decode("utf-8", errors="replace")

    def token_bytes(self, ids: Sequence[int], skip_special: bool = True) -> bytes:
        return b"".join(
            self._token_bytes[i] for i in ids if not (skip_special and i in self.special_ids)
        )

    def apply_chat_template(
        self, messages: Sequence[ChatMessage | dict], add_generation_prompt: bool = True, **extra: Any
    ) -> str:
        """The prompt text (transformers' ``apply_chat_template(..., tokenize=False)``); ``extra``:
        ``tools``, ``documents`` or other variables the template reads."""
        if self.chat_template is None:
            raise ValueError("this model has no chat template")
        msgs = [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in messages]
        return self.chat_template.render(msgs, add_generation_prompt=add_generation_prompt, **extra)


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
