"""The retrieval store named in config (``rag.backend``): the one place that chooses it, for the
gateway's retrieval workload and the ``stackserve ingest`` / ``search`` commands alike. Its own
module because it joins the two stores (server/rag/store.py, server/rag/pgvector_store.py), and the
second is built on the first."""

from __future__ import annotations

from server.config import Settings
from server.rag.store import ChunkStore, RetrievalStore


def open_store(settings: Settings) -> ChunkStore:
    """``faiss``: generations of SQLite + FAISS files under ``rag_store_dir``; ``pgvector``: tables in
    PostgreSQL at ``rag.postgres_dsn`` (psycopg is imported only then: the extra is optional).
    ``rag.index_device: gpu`` fails here when faiss cannot place a GPU index (FaissGpuUnavailableError)."""
    rag = settings.rag
    if rag.backend == "pgvector":
        from server.rag.pgvector_store import PgVectorStore

        assert rag.postgres_dsn is not None  # RagConfig refuses pgvector without one
        return PgVectorStore(rag.postgres_dsn, rag.postgres_table_prefix)
    if rag.index_device == "gpu":
        from server.rag.vector_index import require_faiss_gpu

        require_faiss_gpu()  # at start, with what is missing: not at the first index build
    return RetrievalStore(settings.rag_store_dir, use_gpu={"auto": None, "cpu": False, "gpu": True}[rag.index_device])
