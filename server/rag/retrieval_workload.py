"""The retrieval workload behind async calls: what the gateway's RetrieverService delegates to.

Embedding and search are CPU work that releases the GIL (torch, FAISS), so they run in worker
threads and the event loop keeps serving other calls. Ingests are serialised (one writer per
store; each ends in a new store generation) and swap the in-memory snapshot only once the new
generation is saved, so a search during an ingest sees the old store whole, never half of the new.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from server.config import Settings
from server.executors import RETRIEVAL, run_in
from server.rag.documents import Document
from server.rag.embedder import Embedder, TextEmbedder
from server.rag.filters import ChunkFilter
from server.rag.ingest import IngestReport, ingest
from server.rag.retriever import Hit, Retriever
from server.rag.store_from_config import open_store


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    query_vec: np.ndarray  # the embedded query, for callers that rank text against it again
    embed_s: float
    search_s: float


class RetrievalWorkload:
    def __init__(self, settings: Settings, embedder: TextEmbedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder  # None: an Embedder in this process, loaded at start
        self.store = open_store(settings)  # rag.backend: local FAISS generations or PostgreSQL + pgvector
        self.retriever: Retriever | None = None
        self._ingest_lock = asyncio.Lock()

    async def start(self) -> RetrievalWorkload:
        """Load (or wait for) the embedder, then the store's current generation (off the event loop)."""
        embedder = self._embedder
        if embedder is None:
            embedder = await asyncio.to_thread(Embedder, None, 8192, self.settings.rag.embedder.precision)
        await embedder.wait_ready()
        self.retriever = await asyncio.to_thread(Retriever, self.store, embedder)
        return self

    @property
    def ready(self) -> bool:
        return self.retriever is not None

    def _search(self, query: str, k: int, where: ChunkFilter | None) -> SearchResult:
        assert self.retriever is not None
        t0 = time.perf_counter()
        q = self.retriever.embedder.encode([query])
        t1 = time.perf_counter()
        hits = self.retriever.search_vectors(q, k, where)[0]
        return SearchResult(hits, q[0], t1 - t0, time.perf_counter() - t1)

    async def search(self, query: str, k: int, where: ChunkFilter | None = None) -> SearchResult:
        return await run_in(RETRIEVAL, self._search, query, k, where)

    async def ingest(self, documents: list[Document]) -> IngestReport:
        assert self.retriever is not None
        retriever = self.retriever
        async with self._ingest_lock:
            report = await run_in(RETRIEVAL, ingest, documents, self.store, retriever.embedder, self.settings.rag)
            await run_in(RETRIEVAL, retriever.reload)
        return report
