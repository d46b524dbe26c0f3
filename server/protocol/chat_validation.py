"""ChatService requests as domain values, each bad field named (INVALID_ARGUMENT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.protocol.errors import invalid
from server.protocol.registration import DecodeFailure, decode_error
from server.protocol.retriever_validation import MAX_QUERY_CHARS, parse_filter
from server.rag.filters import ChunkFilter

MAX_K = 8
MAX_TOKENS = 512


@dataclass(frozen=True, slots=True)
class AskParams:
    question: str
    k: int | None
    where: ChunkFilter | None
    max_tokens: int | None


def parse_ask(request: Any) -> AskParams:
    if isinstance(request, DecodeFailure):
        raise decode_error(request)
    q = request.question
    if not q.strip():
        raise invalid("question", "must not be empty")
    if len(q) > MAX_QUERY_CHARS:
        raise invalid("question", f"{len(q)} characters; at most {MAX_QUERY_CHARS}")
    if not 0 <= request.k <= MAX_K:
        raise invalid("k", f"must be in 1..{MAX_K} (0 selects the default), got {request.k}")
    if not 0 <= request.max_tokens <= MAX_TOKENS:
        raise invalid("max_tokens", f"must be in 1..{MAX_TOKENS} (0 selects the default), got {request.max_tokens}")
    where = parse_filter(request.filter) if request.HasField("filter") else None
    return AskParams(q, request.k or None, where, request.max_tokens or None)
