"""Search over the store: a query embedded, the index searched (filters included), chunks returned.

One ``Retriever`` per process holds a view of the store (``ChunkStore.open_view``): for the local
store the current generation in memory (chunks, metadata columns for filters, the index), swapped
atomically for readers by ``reload``; for PostgreSQL + pgvector a handle on the database, which
every search reads as of its own snapshot (``reload`` re-reads the counts).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from server.rag.embedder import TextEmbedder
from server.rag.filters import ChunkFilter
from server.rag.store import Chunk, ChunkStore, SearchView


class EmptyStoreError(RuntimeError):
    """Nothing has been ingested yet (run ``stackserve ingest``)."""


@dataclass(frozen=True, slots=True)
class Hit:
    chunk: Chunk
    score: float  # cosine similarity to the query


class Retriever:
    def __init__(self, store: ChunkStore, embedder: TextEmbedder) -> None:
        self.store = store
        self.embedder = embedder
        self._snap: SearchView | None = None
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> bool:
        """Open the store's current content; False when the store is empty."""
        view = self.store.open_view()
        if view is None:
            return False
        with self._lock:
            self._snap = view
        return True

    @property
    def chunks(self) -> list[Chunk]:
        """The current content's chunks, by id (pgvector: read from the database, O(n))."""
        snap = self._snap
        return [] if snap is None else snap.chunks

    @property
    def size(self) -> int:
        snap = self._snap
        return 0 if snap is None else snap.size

    def search_vectors(self, queries: np.ndarray, k: int, where: ChunkFilter | None = None) -> list[list[Hit]]:
        snap = self._snap
        if snap is None:
            raise EmptyStoreError("the retrieval store is empty: run `stackserve ingest` first")
        return [[Hit(chunk, score) for chunk, score in row] for row in snap.search(queries, k, where)]

    def search(self, query: str, k: int = 5, where: ChunkFilter | None = None) -> list[Hit]:
        if not query.strip():
            raise ValueError("query is empty")
        return self.search_vectors(self.embedder.encode([query]), k, where)[0]
