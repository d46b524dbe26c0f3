"""``/tokenize`` and ``/detokenize`` as vLLM's and llama-server's OpenAI servers have them.

Benchmark clients (``vllm bench serve``, GuideLLM) and RAG builders count tokens through the server
so that they count what the served model counts: the chat template applied, special tokens included.
A request names a ``model`` (optional with one model) and one of ``prompt`` (vLLM), ``content``
(llama-server) or ``messages`` (vLLM's chat form, templated with the generation prompt as a chat
request would be). The answers carry both servers' fields: ``tokens``, ``count`` and
``max_model_len`` for ``/tokenize``; ``prompt`` (vLLM) and ``content`` (llama-server) for
``/detokenize``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.llm.params import SamplingParams
from server.llm.serving import LLMJob
from server.protocol.errors import invalid

MAX_TOKENIZE_CHARS = 1_000_000  # a prompt longer than any context we serve, by far
MAX_DETOKENIZE_TOKENS = 262_144


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant"]
    content: str


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = ""
    prompt: str | None = None
    content: str | None = None
    messages: list[_Message] | None = None

    def job(self) -> LLMJob:
        """The prompt as the engine would receive it; INVALID_ARGUMENT names the field at fault."""
        given = [name for name in ("prompt", "content", "messages") if getattr(self, name) is not None]
        if len(given) != 1:
            raise invalid("prompt", "give exactly one of prompt, content or messages"
                          + (f" (got {', '.join(given)})" if given else ""))
        if self.messages is not None:
            if not self.messages:
                raise invalid("messages", "must not be empty")
            return LLMJob("chat", SamplingParams(), True, messages=tuple((m.role, m.content) for m in self.messages))
        text = self.prompt if self.prompt is not None else self.content
        field = given[0]
        assert text is not None
        if not text:
            raise invalid(field, "must not be empty")
        if len(text) > MAX_TOKENIZE_CHARS:
            raise invalid(field, f"{len(text)} characters; at most {MAX_TOKENIZE_CHARS}")
        return LLMJob("generate", SamplingParams(), True, prompt=text)


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = ""
    tokens: list[int] = Field(max_length=MAX_DETOKENIZE_TOKENS)
