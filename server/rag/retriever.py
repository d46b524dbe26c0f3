"""Search over the store: a query embedded, the index searched (filters included), chunks returned.

One ``Retriever`` per process holds the current store generation in memory (chunks, metadata
columns for filters, the index); ``reload`` swaps in a newer generation atomically for readers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from server.rag.embedder import Embedder
from server.rag.filters import ChunkFilter, MetadataColumns
from server.rag.store import Chunk, RetrievalStore
from server.rag.vector_index import VectorIndex


class EmptyStoreError(RuntimeError):
    """Nothing has been ingested yet (run ``stackserve ingest``)."""


@dataclass(frozen=True, slots=True)
class Hit:
    chunk: Chunk
    score: float  # cosine similarity to the query


@dataclass(frozen=True, slots=True)
class _Snapshot:
    chunks: list[Chunk]
    columns: MetadataColumns
    index: VectorIndex


class Retriever:
    def __init__(self, store: RetrievalStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._snap: _Snapshot | None = None
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> bool:
        """Load the store's current generation; False when the store is empty."""
        loaded = self.store.load()
        if loaded is None:
            return False
        chunks, _, index = loaded
        columns = MetadataColumns([c.source for c in chunks], [c.title for c in chunks], [c.section for c in chunks],
                                  [c.tags for c in chunks], [c.ingested_at for c in chunks])
        with self._lock:
            self._snap = _Snapshot(chunks, columns, index)
        return True

    @property
    def chunks(self) -> list[Chunk]:
        """The current generation's chunks, by id."""
        snap = self._snap
        return [] if snap is None else snap.chunks

    @property
    def size(self) -> int:
        snap = self._snap
        return 0 if snap is None else len(snap.chunks)

    def search_vectors(self, queries: np.ndarray, k: int, where: ChunkFilter | None = None) -> list[list[Hit]]:
        snap = self._snap
        if snap is None:
            raise EmptyStoreError("the retrieval store is empty: run `stackserve ingest` first")
        scores, ids = snap.index.search(queries, k, snap.columns.mask(where))
        return [[Hit(snap.chunks[i], float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
                for row_s, row_i in zip(scores, ids, strict=True)]

    def search(self, query: str, k: int = 5, where: ChunkFilter | None = None) -> list[Hit]:
        if not query.strip():
            raise ValueError("query is empty")
        return self.search_vectors(self.embedder.encode([query]), k, where)[0]
