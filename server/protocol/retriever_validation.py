"""RetrieverService requests as domain objects, each bad field named (INVALID_ARGUMENT)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from server.gen.stackserve.v1 import retriever_pb2 as pb
from server.protocol.errors import clip, invalid
from server.protocol.registration import DecodeFailure, decode_error
from server.rag.documents import FORMATS, Document, UnsupportedFileError, parse_text
from server.rag.filters import ChunkFilter

MAX_QUERY_CHARS = 2000
MAX_K = 100
DEFAULT_K = 5
MAX_DOCUMENT_CHARS = 5_000_000
MAX_TAGS = 16


def _decode(request: Any) -> None:
    if isinstance(request, DecodeFailure):
        raise decode_error(request)


def parse_filter(f: pb.ChunkFilter) -> ChunkFilter | None:
    raw: dict[str, Any] = {
        "equals": dict(f.equals),
        "any_of": {k: list(v.values) for k, v in f.any_of.items()},
        "range": {k: {n: getattr(r, n) for n in ("gte", "lte") if r.HasField(n)} for k, r in f.range.items()},
    }
    try:
        parsed = ChunkFilter.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        raise invalid(f"filter.{where}", e["msg"]) from None
    return None if parsed.empty else parsed


def parse_search(request: Any) -> tuple[str, int, ChunkFilter | None]:
    _decode(request)
    query = request.query
    if not query.strip():
        raise invalid("query", "must not be empty")
    if len(query) > MAX_QUERY_CHARS:
        raise invalid("query", f"{len(query)} characters; at most {MAX_QUERY_CHARS}")
    k = request.k or DEFAULT_K
    if not 1 <= k <= MAX_K:
        raise invalid("k", f"must be in 1..{MAX_K}, got {request.k}")
    return query, k, parse_filter(request.filter) if request.HasField("filter") else None


def parse_document(request: Any, index: int) -> Document:
    """One streamed Document; ``index`` names it in errors (``documents[3].text``)."""
    where = f"documents[{index}]"
    if isinstance(request, DecodeFailure):
        raise decode_error(request, where)
    if not request.source.strip():
        raise invalid(f"{where}.source", "must not be empty (it names the document for re-ingest)")
    if not request.text.strip():
        raise invalid(f"{where}.text", "must not be empty")
    if len(request.text) > MAX_DOCUMENT_CHARS:
        raise invalid(f"{where}.text", f"{len(request.text)} characters; at most {MAX_DOCUMENT_CHARS}")
    if len(request.tags) > MAX_TAGS:
        raise invalid(f"{where}.tags", f"{len(request.tags)} tags; at most {MAX_TAGS}")
    fmt = request.format or "txt"
    try:
        return parse_text(request.source, request.text, fmt, request.title, tuple(request.tags))
    except UnsupportedFileError:
        raise invalid(f"{where}.format", f"{clip(fmt)!r} is not one of {', '.join(FORMATS)}") from None


def check_unique(docs: list[Document]) -> None:
    seen: set[str] = set()
    for i, d in enumerate(docs):
        if d.source in seen:
            raise invalid(f"documents[{i}].source", f"{clip(d.source)!r} appears twice in one ingest")
        seen.add(d.source)
