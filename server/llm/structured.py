"""Structured output: JSON mode and JSON-Schema-constrained decoding with llguidance.

Why llguidance: it is what vLLM and llama.cpp use for grammar-constrained decoding; it compiles a
JSON Schema to a grammar and, at every step, computes the set of tokens that keep the output a
prefix of some valid document (a bitmask over the vocabulary, tens of microseconds per token).
Masked logits are -inf, so whatever the sampling settings, only those tokens can be drawn; once
the document is complete only EOS remains, and the request ends with ``stop``. The output therefore
always parses and validates, unless ``max_tokens`` cuts it first (``finish_reason: length``).

The tokenizer llguidance needs is built once per engine from our own (the GGUF's vocabulary as a
``tokenizers`` JSON), lazily at the first constrained request (~0.2 s).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import torch

#: response_format values (OpenAI's names); "" = free text
FORMATS = ("", "json_object", "json_schema")
ANY_OBJECT = '{"type": "object"}'


def _llguidance() -> Any:
    try:
        import llguidance
    except ImportError as exc:  # pragma: no cover - installed with the package
        raise RuntimeError("structured output needs the llguidance package") from exc
    return llguidance


#: llguidance's JSON layout options: one space after ',' and ':', no other whitespace. Flexible
#: whitespace lets a small model pad with newlines and indentation for ever (and costs tokens).
COMPACT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def grammar_for(response_format: str, json_schema: str) -> str:
    """The llguidance grammar of a response format (validated first: ``check_format``); compact
    layout unless the schema brings its own ``x-guidance`` options."""
    schema = json.loads(ANY_OBJECT if response_format == "json_object" else json_schema)
    if isinstance(schema, dict) and "x-guidance" not in schema:
        schema = {**schema, "x-guidance": COMPACT}
    return _llguidance().LLMatcher.grammar_from_json_schema(json.dumps(schema))


def check_format(response_format: str, json_schema: str) -> str | None:
    """Why this response format cannot be used, or None: checked at the door, without a tokenizer."""
    if response_format not in FORMATS:
        return f"must be one of {', '.join(repr(f) for f in FORMATS)}, got {response_format!r}"
    if response_format != "json_schema":
        return "json_schema is set but response_format is not 'json_schema'" if json_schema else None
    if not json_schema:
        return "response_format 'json_schema' needs a schema"
    try:
        parsed = json.loads(json_schema)
    except ValueError as exc:
        return f"the schema is not valid JSON: {exc}"
    if not isinstance(parsed, dict | bool):
        return "the schema must be a JSON object"
    llg = _llguidance()
    try:
        error = llg.LLMatcher.validate_grammar(grammar_for(response_format, json_schema), None)
    except Exception as exc:  # the compiler raises on some malformed schemas instead of reporting
        error = str(exc)
    return f"the schema cannot be enforced: {error}" if error else None


class GrammarMatcher:
    """One request's grammar state: masks a row of logits, then follows the sampled token."""

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        import llguidance.torch as lt

        self._lt = lt
        self.matcher = matcher
        self.vocab_size = vocab_size
        self.bitmask = lt.allocate_token_bitmask(1, vocab_size)

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` [V] with every token the grammar forbids at -inf (a copy: the batch's logits
        stay untouched for the other rows)."""
        self._lt.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        out = logits.detach().clone().unsqueeze(0)
        self._lt.apply_token_bitmask_inplace(out, self.bitmask)
        return out[0]

    def accept(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise RuntimeError(f"grammar rejected token {token}: {self.matcher.get_error()}")


class StructuredDecoding:
    """Builds matchers for one engine; the llguidance tokenizer is made once, on first use."""

    def __init__(self, tokenizer_json: str, vocab_size: int, eos_id: int) -> None:
        self._json = tokenizer_json
        self.vocab_size = vocab_size
        self.eos_id = eos_id
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _llg_tokenizer(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = _llguidance().LLTokenizer(self._json, n_vocab=self.vocab_size, eos_token=self.eos_id)
            return self._tokenizer

    def matcher(self, response_format: str, json_schema: str) -> GrammarMatcher:
        llg = _llguidance()
        m = llg.LLMatcher(self._llg_tokenizer(), grammar_for(response_format, json_schema))
        if m.is_error():
            raise ValueError(f"response format cannot be enforced: {m.get_error()}")
        return GrammarMatcher(m, self.vocab_size)
