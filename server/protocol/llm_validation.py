"""Turn a GenerateRequest / ChatRequest into a checked ``LLMJob``, or an error naming the field.

Runs in the gateway so that bad input never crosses into Ray: every sampling field, the
prompt's presence and form, token ids against the vocabulary, chat roles, and the context
length wherever it can be known without the tokenizer (token-id prompts exactly; text prompts
by a byte bound: no token is longer than ``max_token_bytes``). The exact fit of a text prompt
is checked in the replica, after tokenization, and comes back as the same INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
from typing import Any

from server.gen.stackserve.v1 import llm_pb2 as pb
from server.llm.errors import LLMRequestError
from server.llm.params import SamplingParams
from server.llm.serving import EngineInfo, LLMJob
from server.protocol.errors import clip, invalid, not_found
from server.protocol.registration import check_decoded

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 256
SAMPLING_FIELDS = ("max_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "ignore_eos",
                   "presence_penalty", "frequency_penalty", "min_p", "priority", "logprobs", "top_logprobs")


def _check_envelope(request: Any, descriptor: Any, info: EngineInfo) -> None:
    check_decoded(request)
    if request.model and request.model != info.model:
        raise not_found("model", f"unknown model {clip(request.model)!r}; serving [{info.model!r}]")


def sampling_params(opts: pb.SamplingOptions, info: EngineInfo) -> tuple[SamplingParams, bool]:
    """SamplingParams from the optional proto fields (unset → engine default); errors name ``sampling.X``."""
    has = opts.HasField
    kw: dict[str, Any] = {}
    for name in SAMPLING_FIELDS:
        if has(name):
            kw[name] = getattr(opts, name)
    if opts.stop:
        kw["stop"] = tuple(opts.stop)
    if opts.response_format or opts.json_schema:
        kw["response_format"], kw["json_schema"] = opts.response_format, opts.json_schema
    if opts.stop_token_ids:
        for i, t in enumerate(opts.stop_token_ids):
            if not 0 <= t < info.vocab_size:
                raise invalid("sampling.stop_token_ids", f"id {t} at position {i} is outside the vocabulary "
                              f"[0, {info.vocab_size})")
        kw["stop_token_ids"] = tuple(opts.stop_token_ids)
    max_tokens_set = "max_tokens" in kw
    kw.setdefault("max_tokens", info.default_max_tokens)
    for name in ("temperature", "top_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "min_p"):
        if name in kw and math.isnan(kw[name]):
            raise invalid(f"sampling.{name}", "is NaN")
    params = SamplingParams(**kw)
    try:
        params.validate()
    except LLMRequestError as exc:
        raise invalid(f"sampling.{exc.field}", exc.reason) from None
    if params.max_tokens >= info.max_model_len:
        raise invalid(
            "sampling.max_tokens",
            f"{params.max_tokens} leaves no room for the prompt in the context of {info.max_model_len} tokens",
        )
    return params, max_tokens_set


def _check_text(field: str, text: str, info: EngineInfo) -> None:
    limit = info.max_model_len * max(info.max_token_bytes, 1)
    n = len(text.encode())
    if n > limit:
        raise invalid(
            field, f"{n} bytes cannot fit the context of {info.max_model_len} tokens (prompt + output)"
        )


def parse_generate(request: Any, info: EngineInfo) -> LLMJob:
    """A GenerateRequest (Generate and Complete) → LLMJob."""
    _check_envelope(request, pb.GenerateRequest.DESCRIPTOR, info)
    prompt, ids = request.prompt, list(request.prompt_token_ids)
    if prompt and ids:
        raise invalid("prompt", "set either prompt or prompt_token_ids, not both")
    if not prompt and not ids:
        raise invalid("prompt", "is empty: set prompt (text) or prompt_token_ids")
    params, max_set = sampling_params(request.sampling, info)
    if prompt:
        _check_text("prompt", prompt, info)
        return LLMJob("generate", params, max_set, prompt=prompt)
    for i, t in enumerate(ids):
        if not 0 <= t < info.vocab_size:
            raise invalid(
                "prompt_token_ids", f"id {t} at position {i} is outside the vocabulary [0, {info.vocab_size})"
            )
    limit = info.max_model_len
    if len(ids) >= limit:
        raise invalid("prompt_token_ids", f"{len(ids)} tokens; the context holds {limit} (prompt + output)")
    if max_set and len(ids) + params.max_tokens > limit:
        raise invalid(
            "sampling.max_tokens",
            f"prompt ({len(ids)}) + max_tokens ({params.max_tokens}) exceeds the context of {limit} tokens; "
            f"ask for at most {limit - len(ids)}",
        )
    return LLMJob("generate", params, max_set, prompt_token_ids=tuple(ids))


def parse_chat(request: Any, info: EngineInfo) -> LLMJob:
    """A ChatRequest → LLMJob; the replica applies the chat template."""
    _check_envelope(request, pb.ChatRequest.DESCRIPTOR, info)
    messages = request.messages
    if not messages:
        raise invalid("messages", "is empty: send at least one message")
    if len(messages) > MAX_MESSAGES:
        raise invalid("messages", f"at most {MAX_MESSAGES} messages, got {len(messages)}")
    for i, m in enumerate(messages):
        if m.role not in ROLES:
            raise invalid(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}, got {clip(m.role)!r}")
    if not any(m.content for m in messages):
        raise invalid("messages", "every message's content is empty")
    _check_text("messages", "".join(m.content for m in messages), info)
    params, max_set = sampling_params(request.sampling, info)
    return LLMJob("chat", params, max_set, messages=tuple((m.role, m.content) for m in messages))
