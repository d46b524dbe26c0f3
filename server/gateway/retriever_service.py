"""RetrieverService: parse (server/protocol/retriever_validation.py), delegate to the RetrievalWorkload
(server/rag/retrieval_workload.py), answer. Nothing of retrieval itself lives here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from server.gen.stackserve.v1 import retriever_pb2 as pb
from server.protocol import errors
from server.protocol.retriever_validation import check_unique, parse_document, parse_search
from server.rag.ingest import IngestReport
from server.rag.retrieval_workload import RetrievalWorkload
from server.rag.retriever import EmptyStoreError, Hit


def _hit(h: Hit) -> pb.SearchHit:
    c = h.chunk
    return pb.SearchHit(
        chunk=pb.Chunk(id=c.id, text=c.text, source=c.source, title=c.title, section=c.section, tags=list(c.tags),
                       ingested_at=c.ingested_at),
        score=h.score,
    )


def _report(r: IngestReport) -> pb.IngestReport:
    return pb.IngestReport(
        documents=r.documents, new=r.new, changed=r.changed, unchanged=r.unchanged, chunks_total=r.chunks_total,
        chunks_embedded=r.chunks_embedded, duplicates_skipped=r.duplicates_skipped, pii_redacted=dict(r.pii),
        index=r.index, recall_at_10=r.recall_at_10, seconds=r.seconds.get("total", 0.0),
    )


class RetrieverService:
    def __init__(self, engine: RetrievalWorkload) -> None:
        self.engine = engine

    def _ready(self) -> None:
        if not self.engine.ready:
            raise errors.unavailable("the embedder is still loading; retry shortly")

    async def Search(self, request: Any, context: grpc.aio.ServicerContext) -> pb.SearchResponse:
        try:
            self._ready()
            query, k, where = parse_search(request)
            try:
                result = await self.engine.search(query, k, where)
            except EmptyStoreError as exc:
                raise errors.ServingError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        except errors.ServingError as err:
            await errors.abort(context, err)
        return pb.SearchResponse(hits=[_hit(h) for h in result.hits], embed_ms=result.embed_s * 1e3,
                                 search_ms=result.search_s * 1e3)

    async def Ingest(self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> pb.IngestReport:
        """All documents are read and checked before anything is written: one bad document
        rejects the whole ingest (INVALID_ARGUMENT naming it) and the store is unchanged."""
        try:
            self._ready()
            docs = [parse_document(r, i) async for i, r in _enumerate(request_iterator)]
            if not docs:
                raise errors.invalid("documents", "the stream carried no documents")
            check_unique(docs)
            report = await self.engine.ingest(docs)
        except errors.ServingError as err:
            await errors.abort(context, err)
        return _report(report)


async def _enumerate(it: AsyncIterator[Any]) -> AsyncIterator[tuple[int, Any]]:
    i = 0
    async for x in it:
        yield i, x
        i += 1
