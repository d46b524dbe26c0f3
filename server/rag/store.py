"""The retrieval store on disk: chunks with metadata (SQLite) and their index, saved atomically.

Each save writes a complete new *generation* directory (``gen-000007/``: ``chunks.sqlite``,
``index.faiss``, ``vectors.npy``, ``index.json``, ``manifest.json``), fsyncs it, renames it into place
and only then points ``CURRENT`` at it (a temporary file ``os.replace``d over the old pointer, the
one atomic step). A writer killed at any moment leaves ``CURRENT`` naming the previous complete
generation; a reader never sees half a save. Older generations are removed after the switch
(one is kept for a reader that opened it just before).

``ChunkStore`` is what ingest and the retriever need from a store, so one ``ingest()`` and one
``Retriever`` serve both backends: this local one (the embedded default) and PostgreSQL + pgvector
(``server/rag/pgvector_store.py``) for corpora beyond one process's memory.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from server.rag.filters import ChunkFilter, MetadataColumns
from server.rag.vector_index import VectorIndex

if TYPE_CHECKING:
    from server.config import RagConfig

SCHEMA = """
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    section TEXT NOT NULL,
    tags TEXT NOT NULL,
    ingested_at REAL NOT NULL,
    content_hash TEXT NOT NULL UNIQUE
);
CREATE TABLE documents (
    source TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    title TEXT NOT NULL,
    ingested_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    text: str
    source: str
    title: str
    section: str
    tags: tuple[str, ...]
    ingested_at: float
    content_hash: str


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    source: str
    fingerprint: str
    title: str
    ingested_at: float


class StoreCorruptError(RuntimeError):
    """The generation ``CURRENT`` names is incomplete or inconsistent (the message says what)."""


@dataclass(frozen=True, slots=True)
class StoreState:
    """What a store holds, as an ingest read it: the chunks and document records to diff against,
    ``version`` (the write checks it still replaces this, so two writers cannot interleave) and
    ``vectors`` (stored vectors by content hash: a reused chunk is never embedded again)."""

    chunks: list[Chunk]
    documents: list[DocumentRecord]
    version: int
    vectors: Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True, slots=True)
class WriteResult:
    kind: str  # flat | hnsw: how searches will run
    recall_at_10: float  # HNSW against exact search, measured at write time (1.0 for exact)
    chunks: int


class SearchView(Protocol):
    """One store's content as a reader sees it; ``search`` returns (chunk, cosine) best first."""

    @property
    def size(self) -> int: ...

    @property
    def chunks(self) -> list[Chunk]: ...

    def search(self, queries: np.ndarray, k: int, where: ChunkFilter | None) -> list[list[tuple[Chunk, float]]]: ...


class ChunkStore(Protocol):
    """A store ingest writes and the retriever reads (``RetrievalStore``, ``PgVectorStore``)."""

    def load_state(self) -> StoreState: ...

    def write(self, chunks: list[Chunk], documents: list[DocumentRecord], embedded: Mapping[str, np.ndarray],
              dim: int, cfg: RagConfig, base: StoreState) -> WriteResult: ...

    def open_view(self) -> SearchView | None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class LocalView:
    """A loaded generation: chunks by id, metadata columns for filter masks, the FAISS index."""

    chunks: list[Chunk]
    columns: MetadataColumns
    index: VectorIndex

    @classmethod
    def of(cls, chunks: list[Chunk], index: VectorIndex) -> LocalView:
        columns = MetadataColumns([c.source for c in chunks], [c.title for c in chunks], [c.section for c in chunks],
                                  [c.tags for c in chunks], [c.ingested_at for c in chunks])
        return cls(chunks, columns, index)

    @property
    def size(self) -> int:
        return len(self.chunks)

    def search(self, queries: np.ndarray, k: int, where: ChunkFilter | None) -> list[list[tuple[Chunk, float]]]:
        scores, ids = self.index.search(queries, k, self.columns.mask(where))
        return [[(self.chunks[i], float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
                for row_s, row_i in zip(scores, ids, strict=True)]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(path)


class RetrievalStore:
    """The embedded store: generations of SQLite + FAISS files under ``root``."""

    def __init__(self, root: Path, use_gpu: bool | None = None) -> None:
        """use_gpu: flat and IVF indexes on the GPU (True: required, see ``require_faiss_gpu``;
        None: when faiss sees one; False: never), for the indexes it builds and loads."""
        self.root = Path(root)
        self.use_gpu = use_gpu

    def describe(self) -> str:
        return str(self.root)

    def load_state(self) -> StoreState:
        loaded = self.load()
        if loaded is None:
            return StoreState([], [], 0, _no_vectors)
        chunks, documents, index = loaded
        row = {c.content_hash: c.id for c in chunks}
        current = self.current()
        version = int(current.name.split("-")[1]) if current is not None else 0

        def vectors(hashes: Sequence[str]) -> np.ndarray:
            try:
                return index.vectors[[row[h] for h in hashes]].reshape(len(hashes), index.stats.dim)
            except KeyError as exc:
                raise ValueError(f"no stored vector for content hash {exc.args[0]}") from None

        return StoreState(chunks, documents, version, vectors)

    def write(self, chunks: list[Chunk], documents: list[DocumentRecord], embedded: Mapping[str, np.ndarray],
              dim: int, cfg: RagConfig, base: StoreState) -> WriteResult:
        """A new generation holding exactly ``chunks`` (ids 0..n-1): vectors from ``embedded`` or,
        for chunks the store already held, from ``base``; the index rebuilt whole."""
        vectors = np.empty((len(chunks), dim), dtype=np.float32)
        reused = [i for i, c in enumerate(chunks) if c.content_hash not in embedded]
        if reused:
            vectors[reused] = base.vectors([chunks[i].content_hash for i in reused])
        for i, c in enumerate(chunks):
            if c.content_hash in embedded:
                vectors[i] = embedded[c.content_hash]
        index = VectorIndex.build(vectors, flat_below=cfg.flat_below, target_recall=cfg.target_recall,
                                  ivf_above=cfg.ivf_above, use_gpu=self.use_gpu)
        self.save(chunks, documents, index)
        return WriteResult(index.stats.kind, index.stats.recall_at_10, len(chunks))

    def open_view(self) -> LocalView | None:
        """The current generation in memory, or None when nothing was saved yet."""
        loaded = self.load()
        return None if loaded is None else LocalView.of(loaded[0], loaded[2])

    def current(self) -> Path | None:
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        name = pointer.read_text().strip()
        gen = self.root / name
        if not name.startswith("gen-") or not gen.is_dir():
            raise StoreCorruptError(f"{pointer} names {name!r}, which is not a generation directory")
        return gen

    def save(self, chunks: list[Chunk], documents: list[DocumentRecord], index: VectorIndex) -> Path:
        if len(chunks) != index.stats.n or any(c.id != i for i, c in enumerate(chunks)):
            raise ValueError("chunk ids must be 0..n-1, one per indexed vector")
        self.root.mkdir(parents=True, exist_ok=True)
        current = self.current()
        number = int(current.name.split("-")[1]) + 1 if current is not None else 1
        final = self.root / f"gen-{number:06d}"
        tmp = self.root / f".gen-{number:06d}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        db = sqlite3.connect(tmp / "chunks.sqlite")
        try:
            db.executescript(SCHEMA)
            db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(c.id, c.text, c.source, c.title, c.section, json.dumps(list(c.tags)), c.ingested_at, c.content_hash)
                 for c in chunks],
            )
            db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?)",
                           [(d.source, d.fingerprint, d.title, d.ingested_at) for d in documents])
            db.commit()
        finally:
            db.close()
        index.save(tmp)
        manifest = {"chunks": len(chunks), "documents": len(documents), "saved_at": time.time(),
                    "index": index.stats.kind}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        _fsync_tree(tmp)
        if final.exists():  # left by a writer killed after its rename, before its pointer switch
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(self.root)
        pointer_tmp = self.root / f".CURRENT.tmp-{os.getpid()}"
        pointer_tmp.write_text(final.name + "\n")
        with open(pointer_tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(pointer_tmp, self.root / "CURRENT")
        _fsync_dir(self.root)
        self._prune(keep={final.name, current.name if current else ""})
        return final

    def _prune(self, keep: set[str]) -> None:
        for p in self.root.iterdir():
            if p.name in keep or p.name == "CURRENT":
                continue
            if p.name.startswith(("gen-", ".gen-", ".CURRENT.tmp")):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    def load(self, use_gpu: bool | None = None) -> tuple[list[Chunk], list[DocumentRecord], VectorIndex] | None:
        """The current generation, or None when nothing was saved yet (use_gpu: None = the store's)."""
        use_gpu = self.use_gpu if use_gpu is None else use_gpu
        gen = self.current()
        if gen is None:
            return None
        try:
            manifest = json.loads((gen / "manifest.json").read_text())
            db = sqlite3.connect(f"file:{gen / 'chunks.sqlite'}?mode=ro", uri=True)
            try:
                rows = db.execute("SELECT id, text, source, title, section, tags, ingested_at, content_hash "
                                  "FROM chunks ORDER BY id").fetchall()
                docs = db.execute("SELECT source, fingerprint, title, ingested_at FROM documents").fetchall()
            finally:
                db.close()
            index = VectorIndex.load(gen, use_gpu=use_gpu)
        except (OSError, ValueError, sqlite3.Error) as exc:
            raise StoreCorruptError(f"{gen}: {exc}") from exc
        chunks = [Chunk(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), r[6], r[7]) for r in rows]
        if len(chunks) != manifest["chunks"] or len(chunks) != index.stats.n:
            raise StoreCorruptError(f"{gen}: {len(chunks)} chunks, manifest says {manifest['chunks']}, "
                                    f"index holds {index.stats.n}")
        return chunks, [DocumentRecord(*d) for d in docs], index


def _no_vectors(hashes: Sequence[str]) -> np.ndarray:
    if hashes:
        raise ValueError("the store is empty: no stored vectors to reuse")
    return np.empty((0, 0), dtype=np.float32)
