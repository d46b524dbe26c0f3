"""OpenAI-compatible requests (``/v1/chat/completions``, ``/v1/completions``) as our gRPC messages.

Why translate instead of validating twice: the gRPC path already checks every sampling field,
the context fit and the model name (llm_validation.py). An OpenAI request becomes the same
``ChatRequest`` / ``GenerateRequest`` and goes through the same checks, so both APIs accept and
refuse exactly the same things, with the field named the OpenAI way (``top_p``, not
``sampling.top_p``) in the error's ``param``.

Fields that would change the answer and that we do not implement yet (tools, ``logit_bias``,
``echo``, ...) are refused with a 400 naming them, never ignored: a client that asked for them
must not get an answer that silently lacks them.

Log-probabilities: chat takes ``logprobs: true`` + ``top_logprobs`` (0-20); completions take
``logprobs: N`` (the number of top entries, 0-20 here, OpenAI allows 5). Both become
``sampling.logprobs`` / ``top_logprobs``; the responses are built by :func:`chat_logprobs` and
:func:`completion_logprobs` in OpenAI's two shapes.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import grpc
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.gen.stackserve.v1 import llm_pb2 as pb
from server.protocol.errors import ServingError, clip, invalid

MAX_CHOICES = 8  # n: each choice is a request in the engine
#: OpenAI fields we do not implement, with the values that ask for nothing (accepted, ignored)
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "tools": (None, []), "functions": (None, []), "logit_bias": (None, {}), "best_of": (None, 1),
    "suffix": (None, ""), "echo": (None, False),
}

#: gRPC status → (HTTP status, OpenAI error type).
HTTP_STATUS: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout"),
    grpc.StatusCode.INTERNAL: (500, "internal_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
}


class _Request(BaseModel):
    # Unknown fields are accepted (clients send `user`, `metadata`, ...); the ones that would
    # change the output are declared below and refused unless at their no-op value.
    model_config = ConfigDict(extra="allow")

    model: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = 1
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | int | None = None  # chat: bool; completions: the number of top entries
    top_logprobs: int | None = None  # chat only
    # extensions (vLLM accepts the same names)
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool | None = None
    stop_token_ids: list[int] | None = None
    response_format: dict[str, Any] | None = None
    priority: int | None = None

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    def unsupported(self) -> None:
        """Refuse what would change the answer and is not implemented."""
        if not 1 <= self.n <= MAX_CHOICES:
            raise invalid("n", f"must be in [1, {MAX_CHOICES}], got {self.n}")
        extra = self.model_extra or {}
        for name, no_op in UNSUPPORTED.items():
            if name in extra and extra[name] not in no_op:
                raise invalid(name, "is not supported")

    def choice_protos(self) -> list[Any]:
        """One request message per choice (``n``): with a seed, choice i samples with seed + i, so
        the choices differ and the whole answer is reproducible."""
        first = self.to_proto()
        protos = [first]
        for i in range(1, self.n):
            p = type(first)()
            p.CopyFrom(first)
            if p.sampling.HasField("seed"):
                p.sampling.seed = (p.sampling.seed + i) % 2**63
            protos.append(p)
        return protos

    def sampling(self) -> pb.SamplingOptions:
        s = pb.SamplingOptions()
        for name in ("max_tokens", "temperature", "top_p", "seed", "top_k", "repetition_penalty", "ignore_eos",
                     "presence_penalty", "frequency_penalty", "min_p", "priority"):
            value = getattr(self, name)
            if value is not None:
                if name == "seed" and value < 0:
                    raise invalid("seed", "must be >= 0")
                try:
                    setattr(s, name, value)
                except (ValueError, TypeError) as exc:  # out of the wire type's range
                    raise invalid(name, str(exc)) from None
        if self.stop is not None:
            s.stop.extend([self.stop] if isinstance(self.stop, str) else self.stop)
        if self.response_format is not None:
            s.response_format, s.json_schema = _response_format(self.response_format)
        if self.stop_token_ids:
            try:
                s.stop_token_ids.extend(self.stop_token_ids)
            except (ValueError, TypeError) as exc:
                raise invalid("stop_token_ids", str(exc)) from None
        self.logprob_options(s)
        return s

    def logprob_options(self, s: pb.SamplingOptions) -> None:
        """Chat's shape: ``logprobs`` a bool, ``top_logprobs`` the count (CompletionRequest overrides)."""
        if self.logprobs is not None and not isinstance(self.logprobs, bool):
            raise invalid("logprobs", "must be a boolean for chat completions (top_logprobs gives the count)")
        if self.logprobs:
            s.logprobs = True
        if self.top_logprobs is not None:
            if not isinstance(self.top_logprobs, int) or not 0 <= self.top_logprobs <= 20:
                raise invalid("top_logprobs", f"must be an integer in [0, 20], got {self.top_logprobs!r}")
            if self.top_logprobs and not self.logprobs:
                raise invalid("top_logprobs", "needs logprobs: true")
            s.top_logprobs = self.top_logprobs


def _response_format(rf: dict[str, Any]) -> tuple[str, str]:
    """OpenAI's ``response_format`` as (kind, schema text): text, json_object, or json_schema with
    ``json_schema.schema`` (``strict`` is always true here: the grammar enforces the schema)."""
    kind = rf.get("type")
    if kind == "text":
        return "", ""
    if kind == "json_object":
        return "json_object", ""
    if kind == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise invalid("response_format.json_schema.schema", "must be a JSON Schema object")
        return "json_schema", json.dumps(spec["schema"])
    raise invalid("response_format.type", f"must be 'text', 'json_object' or 'json_schema', got {clip(str(kind))!r}")


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(default_factory=list)
    max_completion_tokens: int | None = None  # the newer name of max_tokens

    def to_proto(self) -> pb.ChatRequest:
        self.unsupported()
        sampling = self.sampling()
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise invalid("max_completion_tokens", "differs from max_tokens: set one")
            sampling.max_tokens = self.max_completion_tokens
        messages = [pb.ChatMessage(role=m.role, content=m.text()) for m in self.messages]
        return pb.ChatRequest(messages=messages, sampling=sampling, model=self.model)


class CompletionRequest(_Request):
    prompt: str | list[int] | list[str] = ""

    def logprob_options(self, s: pb.SamplingOptions) -> None:
        """Completions' shape: ``logprobs`` is the number of top entries (0 = the sampled token's only)."""
        if self.top_logprobs is not None:
            raise invalid("top_logprobs", "is a chat completions field; completions take logprobs: N")
        if self.logprobs is None:
            return
        if isinstance(self.logprobs, bool) or not 0 <= self.logprobs <= 20:
            raise invalid("logprobs", f"must be an integer in [0, 20], got {self.logprobs!r}")
        s.logprobs = True
        s.top_logprobs = self.logprobs

    def to_proto(self) -> pb.GenerateRequest:
        self.unsupported()
        req = pb.GenerateRequest(sampling=self.sampling(), model=self.model)
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            if len(prompt) != 1:
                raise invalid("prompt", "one prompt per request (a list of several is not supported)")
            prompt = prompt[0]
        if isinstance(prompt, str):
            req.prompt = prompt
        else:
            req.prompt_token_ids.extend(prompt)
        return req


def _token_text(token: bytes) -> str:
    return token.decode("utf-8", errors="replace")


def chat_logprobs(logprobs: list[Any]) -> dict[str, Any]:
    """OpenAI chat's ``choice.logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    return {"content": [
        {"token": _token_text(lp.token), "logprob": lp.logprob, "bytes": list(lp.token),
         "top_logprobs": [{"token": _token_text(b), "logprob": v, "bytes": list(b)} for _, v, b in lp.top]}
        for lp in logprobs]}  # fmt: skip


def completion_logprobs(logprobs: list[Any], text_start: int = 0) -> dict[str, Any]:
    """OpenAI completions' ``choice.logprobs``: parallel lists, ``top_logprobs`` as {token: logprob}
    and ``text_offset`` as character offsets of each token in the completion."""
    tokens = [_token_text(lp.token) for lp in logprobs]
    offsets, at = [], text_start
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {"tokens": tokens, "token_logprobs": [lp.logprob for lp in logprobs],
            "top_logprobs": [{_token_text(b): v for _, v, b in lp.top} for lp in logprobs],
            "text_offset": offsets}  # fmt: skip


def parse_body(model: type[BaseModel], body: Any) -> Any:
    """The JSON body as ``model``; a shape error becomes INVALID_ARGUMENT naming the field."""
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise invalid(field, first["msg"]) from None


def openai_param(field: str | None) -> str | None:
    """Our field name as the OpenAI request spells it (``sampling.top_p`` → ``top_p``)."""
    if field is None:
        return None
    return field.removeprefix("sampling.").replace("prompt_token_ids", "prompt")


def error_body(err: ServingError) -> tuple[int, dict[str, Any]]:
    """HTTP status and OpenAI-shaped error object for a refusal."""
    status, kind = HTTP_STATUS.get(err.code, (500, "internal_error"))
    param = openai_param(err.field)
    message = f"{param}: {err.reason}" if param else err.reason
    code = "model_not_found" if err.code is grpc.StatusCode.NOT_FOUND else None
    return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}
