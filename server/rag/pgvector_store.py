"""The retrieval store in PostgreSQL + pgvector (``rag.backend: pgvector``): chunks, metadata and
embeddings in the database, for corpora beyond one process's memory. FAISS stays the embedded default.

Tables ``<prefix>_chunks`` (metadata columns, ``tags text[]``, ``embedding vector(dim)``, one row per
content hash), ``<prefix>_documents`` (fingerprints for incremental ingest) and ``<prefix>_meta``
(one row: generation, sizes, how searches run). Same contract as the local store (``ChunkStore``):

* **Writes** make the new content current in ONE transaction (an advisory lock serialises writers;
  the generation read by ``load_state`` must still be current, else ``StoreConflictError``): rows whose
  content hash left are deleted, rows whose metadata changed are updated in place (their embedding
  stays), new ones are copied in. A killed writer's transaction rolls back, so readers (MVCC: never
  blocked) see the previous content whole. A chunk keeps the id it got when first inserted (the local
  store renumbers 0..n-1 per generation), so unchanged rows and their index entries are never rewritten.
* **Index**: exact scan below ``rag.flat_below`` chunks; an HNSW index (``vector_ip_ops``) at or above,
  its ``hnsw.ef_search`` tuned at write time to the smallest value reaching ``rag.target_recall``
  recall@10 against exact search (stored in the meta row, like the FAISS path's ``IndexStats``).
  Building it takes a SHARE lock (readers go on); dropping it, when a store shrinks below
  ``flat_below``, an exclusive one: searches wait for that one write's commit.
* **Search**: inner product on unit vectors (``<#>`` is its negative; score = -distance = cosine).
  pgvector 0.6 filters an HNSW scan's ``ef_search`` candidates after the walk (no iterative scans
  before 0.8), so a selective filter can return fewer than k rows. As in ``VectorIndex.search``: a
  filter allowing at most ``exact_below`` rows is searched exactly over those rows; otherwise the
  index is scanned with ``ef_search`` widened by the inverse selectivity, and a scan that comes back
  short of min(k, allowed) is rerun exactly (index scans off for that query: a seq scan, or a bitmap
  scan for the filter, then a top-k sort; HNSW has no bitmap scan). Each search runs in one
  REPEATABLE READ READ ONLY transaction.

The DSN may carry a password: only ``redact_dsn`` forms of it appear in messages and reprs.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from server.rag.filters import ChunkFilter, sql_where
from server.rag.pg_connections import ConnectionPool, psycopg, redact_dsn, register_vector, require_driver, sql
from server.rag.store import Chunk, DocumentRecord, StoreCorruptError, StoreState, WriteResult
from server.rag.vector_index import EXACT_BELOW

if TYPE_CHECKING:
    from server.config import RagConfig

# pgvector's defaults (m 16, ef_construction 64): the build runs inside the database on ingest, about
# 3x faster than FAISS's M=32/efConstruction=128; the tuned ef_search makes up the recall.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
EF_STEPS = (16, 32, 64, 128, 256, 512, MAX_EF_SEARCH)
TUNE_QUERIES = 100
PREFIX_PATTERN = r"[a-z_][a-z0-9_]{0,39}"  # + "_chunks_embedding_hnsw" stays within 63 bytes
_COLUMNS = "id, text, source, title, section, tags, ingested_at, content_hash"


class StoreConflictError(RuntimeError):
    """Another writer changed the store after this ingest read it: run the ingest again."""


@dataclass(frozen=True, slots=True)
class _Meta:
    generation: int
    dim: int
    next_id: int
    chunks: int
    kind: str  # flat | hnsw
    ef_search: int
    recall_at_10: float


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(int(row[0]), row[1], row[2], row[3], row[4], tuple(row[5]), float(row[6]), row[7])


def _metadata(c: Chunk) -> tuple:
    return (c.text, c.source, c.title, c.section, tuple(c.tags), float(c.ingested_at))


def _array(v: Any) -> np.ndarray:
    """pgvector's loader gives a ``Vector`` (newer) or an ndarray (older)."""
    return np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float32)


class PgVectorStore:
    """A ``ChunkStore`` in PostgreSQL + pgvector (see the module docstring for the contract)."""

    def __init__(self, dsn: str, table_prefix: str, exact_below: int = EXACT_BELOW, pool_size: int = 4) -> None:
        require_driver()
        if not re.fullmatch(PREFIX_PATTERN, table_prefix):
            raise ValueError(f"table prefix {table_prefix!r} must match {PREFIX_PATTERN}")
        self._dsn = dsn
        self.table_prefix = table_prefix
        self.exact_below = exact_below
        self._chunks = sql.Identifier(f"{table_prefix}_chunks")
        self._documents = sql.Identifier(f"{table_prefix}_documents")
        self._meta = sql.Identifier(f"{table_prefix}_meta")
        self._hnsw = f"{table_prefix}_chunks_embedding_hnsw"
        digest = hashlib.sha256(f"stackserve.rag:{table_prefix}".encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self._pool = ConnectionPool(self._connect_reader, pool_size)
        self._counter_lock = threading.Lock()
        self.exact_reruns = 0  # index scans that came back short and were rerun exactly

    def __repr__(self) -> str:
        return f"PgVectorStore({self.describe()})"

    def describe(self) -> str:
        return f"postgres {redact_dsn(self._dsn)} (tables {self.table_prefix}_*)"

    def close(self) -> None:
        self._pool.close()

    # ---- connections --------------------------------------------------------------------------
    def _connect_reader(self):
        """REPEATABLE READ READ ONLY: each search or state read sees one snapshot, even while a writer
        commits."""
        conn = psycopg.connect(self._dsn)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn

    @staticmethod
    def _register_vector(conn) -> None:
        """pgvector's adapters, once the extension exists (a connection opened on an empty database
        gets them on its first use after the first write). Autocommit meanwhile: the type lookup must
        not open the transaction the caller is about to begin."""
        conn.autocommit = True
        try:
            if conn.execute("SELECT to_regtype('vector')").fetchone()[0] is not None:
                register_vector(conn)
        finally:
            conn.autocommit = False

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        """A pooled reader connection inside one read-only snapshot transaction."""
        with self._pool.connection() as conn:
            if conn.adapters.types.get("vector") is None:
                self._register_vector(conn)
            with conn.transaction():
                yield conn

    def _exists(self, conn) -> bool:
        return conn.execute("SELECT to_regclass(%s)", [f"{self.table_prefix}_meta"]).fetchone()[0] is not None

    def _read_meta(self, conn) -> _Meta | None:
        row = conn.execute(sql.SQL("SELECT generation, dim, next_id, chunks, kind, ef_search, recall_at_10 "
                                   "FROM {}").format(self._meta)).fetchone()
        return None if row is None else _Meta(*row)

    # ---- ChunkStore: read ---------------------------------------------------------------------
    def load_state(self) -> StoreState:
        with self._reading() as conn:
            meta = self._read_meta(conn) if self._exists(conn) else None
            if meta is None:
                return StoreState([], [], 0, self.vectors)
            chunks = [_chunk(r) for r in conn.execute(
                sql.SQL(f"SELECT {_COLUMNS} FROM {{}} ORDER BY id").format(self._chunks))]
            docs = [DocumentRecord(*r) for r in conn.execute(sql.SQL(
                "SELECT source, fingerprint, title, ingested_at FROM {} ORDER BY source").format(self._documents))]
        if len(chunks) != meta.chunks:
            raise StoreCorruptError(f"{self.describe()}: {len(chunks)} chunks, the meta row says {meta.chunks}")
        return StoreState(chunks, docs, meta.generation, self.vectors)

    def vectors(self, hashes: Sequence[str]) -> np.ndarray:
        """Stored embeddings for these content hashes, in order (ValueError naming one not stored)."""
        if not hashes:
            return np.empty((0, 0), dtype=np.float32)
        with self._reading() as conn:
            found = dict(conn.execute(sql.SQL("SELECT content_hash, embedding FROM {} WHERE content_hash = ANY(%s)")
                                      .format(self._chunks), [list(hashes)]))
        missing = [h for h in hashes if h not in found]
        if missing:
            raise ValueError(f"no stored vector for content hash {missing[0]}")
        return np.stack([_array(found[h]) for h in hashes])

    def open_view(self) -> PgVectorView | None:
        with self._reading() as conn:
            meta = self._read_meta(conn) if self._exists(conn) else None
        return None if meta is None else PgVectorView(self, meta)

    def read_chunks(self) -> list[Chunk]:
        with self._reading() as conn:
            return [_chunk(r) for r in conn.execute(sql.SQL(f"SELECT {_COLUMNS} FROM {{}} ORDER BY id")
                                                    .format(self._chunks))]

    # ---- search -------------------------------------------------------------------------------
    def _query(self, where: str, k: int, tie_break: bool = False):
        """Top-k by distance among the rows ``where`` allows; params: [*where params, query vector].
        Exact unless the planner walks the HNSW index (``_exact`` rules that out)."""
        order = sql.SQL("d, id" if tie_break else "d")
        return sql.SQL("SELECT id, embedding <#> %s AS d FROM {t} WHERE {w} ORDER BY {o} LIMIT {k}").format(
            t=self._chunks, w=sql.SQL(where), o=order, k=sql.Literal(k))

    @staticmethod
    def _index_scans(conn, on: bool) -> None:
        """Index scans off: an exact search (seq scan, or a bitmap scan serving the filter: HNSW has no
        bitmap scans), with no table copied aside; on again for the next query of the transaction."""
        conn.execute("SELECT set_config('enable_indexscan', %s, true)", ["on" if on else "off"])

    def _rows(self, conn, where: str, params: list, v: np.ndarray, k: int) -> list[tuple[int, float]]:
        # the query vector is the first placeholder: it is in the SELECT list, before the WHERE clause
        return [(int(i), float(d)) for i, d in conn.execute(self._query(where, k), [v, *params]).fetchall()]

    def _exact(self, conn, where: str, params: list, v: np.ndarray, k: int) -> list[tuple[int, float]]:
        self._index_scans(conn, False)
        try:
            return [(int(i), float(d)) for i, d in conn.execute(self._query(where, k, tie_break=True),
                                                                [v, *params]).fetchall()]
        finally:
            self._index_scans(conn, True)

    def search_with_meta(self, queries: np.ndarray, k: int, where: ChunkFilter | None = None
                         ) -> tuple[list[list[tuple[Chunk, float]]], _Meta | None]:
        """Top-k (chunk, cosine) per query, best first, and the meta row the search read."""
        if k < 0:
            raise ValueError("k must be >= 0")
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if not np.isfinite(q).all():
            raise ValueError("queries must be finite (NaN or inf in a query vector)")
        clause, params = sql_where(where)
        with self._reading() as conn:
            meta = self._read_meta(conn) if self._exists(conn) else None
            if meta is None:
                return [[] for _ in q], None
            if q.shape[1] != meta.dim:
                raise ValueError(f"queries have {q.shape[1]} dimensions, the index {meta.dim}")
            if k == 0 or meta.chunks == 0:
                return [[] for _ in q], meta
            found: list[list[tuple[int, float]]] = []
            if meta.kind != "hnsw" or k > MAX_EF_SEARCH:  # no index (or k beyond any walk): exact
                found = [self._exact(conn, clause, params, v, k) for v in q]
            else:
                allowed = meta.chunks
                if clause != "TRUE":
                    allowed = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                        self._chunks, sql.SQL(clause)), params).fetchone()[0]
                if clause != "TRUE" and allowed <= self.exact_below:  # few rows: exact over just those
                    found = [self._exact(conn, clause, params, v, k) if allowed else [] for v in q]
                else:
                    # the walk's candidates are filtered afterwards: widen it by the inverse selectivity
                    ef = min(MAX_EF_SEARCH, math.ceil(max(meta.ef_search, k) * meta.chunks / allowed))
                    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])
                    for v in q:
                        rows = self._rows(conn, clause, params, v, k)
                        if len(rows) < min(k, allowed):  # the walk ran out of allowed candidates
                            with self._counter_lock:
                                self.exact_reruns += 1
                            rows = self._exact(conn, clause, params, v, k)
                        found.append(rows)
            ids = sorted({i for row in found for i, _ in row})
            chunks = {c.id: c for c in (_chunk(r) for r in conn.execute(
                sql.SQL(f"SELECT {_COLUMNS} FROM {{}} WHERE id = ANY(%s)").format(self._chunks), [ids]))} if ids else {}
        return [[(chunks[i], -d) for i, d in row] for row in found], meta

    # ---- ChunkStore: write --------------------------------------------------------------------
    def write(self, chunks: list[Chunk], documents: list[DocumentRecord], embedded: Mapping[str, np.ndarray],
              dim: int, cfg: RagConfig, base: StoreState) -> WriteResult:
        """Make ``chunks`` and ``documents`` the store's content in one transaction (see the module
        docstring). ``embedded`` holds the vectors of content hashes ``base`` did not hold; a chunk's
        ``id`` is ignored (rows keep theirs; new rows get the next free ids, in the order given)."""
        target = {c.content_hash: c for c in chunks}
        if len(target) != len(chunks):
            raise ValueError("chunks must have distinct content hashes")
        before = {c.content_hash: c for c in base.chunks}
        deleted = [h for h in before if h not in target]
        inserted = [c for c in chunks if c.content_hash not in before]
        updated = [c for c in chunks if c.content_hash in before and _metadata(c) != _metadata(before[c.content_hash])]
        missing = [c.content_hash for c in inserted if c.content_hash not in embedded]
        if missing:
            raise ValueError(f"no vector for new content hash {missing[0]}")
        vectors = {c.content_hash: np.asarray(embedded[c.content_hash], dtype=np.float32).reshape(-1) for c in inserted}
        if any(v.shape != (dim,) or not np.isfinite(v).all() for v in vectors.values()):
            raise ValueError(f"vectors must be finite and {dim}-dimensional")
        with psycopg.connect(self._dsn) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [self._lock_key])
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(conn)
            self._create_tables(conn, dim)
            meta = self._read_meta(conn)
            if (meta.generation if meta else 0) != base.version:
                raise StoreConflictError(f"{self.describe()} is at generation {meta.generation if meta else 0}, "
                                         f"this ingest read {base.version}: another writer ran; ingest again")
            if meta is not None and meta.dim != dim:
                raise ValueError(f"{self.describe()} holds {meta.dim}-dimensional vectors, this write {dim}")
            next_id = meta.next_id if meta else 0
            if deleted:
                conn.execute(sql.SQL("DELETE FROM {} WHERE content_hash = ANY(%s)").format(self._chunks), [deleted])
            if updated:
                with conn.cursor() as cur:
                    cur.executemany(sql.SQL("UPDATE {} SET text = %s, source = %s, title = %s, section = %s, "
                                            "tags = %s, ingested_at = %s WHERE content_hash = %s").format(self._chunks),
                                    [(*_metadata_row(c), c.content_hash) for c in updated])
            with conn.cursor() as cur, cur.copy(sql.SQL(f"COPY {{}} ({_COLUMNS}, embedding) FROM STDIN (FORMAT BINARY)")
                                                .format(self._chunks)) as copy:
                copy.set_types(["int8", "text", "text", "text", "text", "text[]", "float8", "text", "vector"])
                for j, c in enumerate(inserted):
                    copy.write_row((next_id + j, *_metadata_row(c), c.content_hash, vectors[c.content_hash]))
            conn.execute(sql.SQL("DELETE FROM {}").format(self._documents))
            with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} (source, fingerprint, title, ingested_at) FROM STDIN")
                                                .format(self._documents)) as copy:
                for d in documents:
                    copy.write_row((d.source, d.fingerprint, d.title, float(d.ingested_at)))
            n = (meta.chunks if meta else 0) - len(deleted) + len(inserted)
            ids = [before[h].id for h in target if h in before] + list(range(next_id, next_id + len(inserted)))
            kind, ef, recall = self._index(conn, n, ids, cfg)
            self._write_meta(conn, _Meta((meta.generation if meta else 0) + 1, dim, next_id + len(inserted), n,
                                         kind, ef, recall))
        return WriteResult(kind, recall, n)

    def _create_tables(self, conn, dim: int) -> None:
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {chunks} (id bigint PRIMARY KEY, text text NOT NULL, source text NOT NULL, "
            "title text NOT NULL, section text NOT NULL, tags text[] NOT NULL, ingested_at double precision NOT NULL, "
            "content_hash text NOT NULL UNIQUE, embedding vector({dim}) NOT NULL)").format(
            chunks=self._chunks, dim=sql.Literal(int(dim))))
        for column in ("source", "title", "section", "ingested_at"):
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(f"{self.table_prefix}_chunks_{column}"), self._chunks, sql.Identifier(column)))
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (tags)").format(
            sql.Identifier(f"{self.table_prefix}_chunks_tags"), self._chunks))
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (source text PRIMARY KEY, fingerprint text NOT NULL, "
                             "title text NOT NULL, ingested_at double precision NOT NULL)").format(self._documents))
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
            "generation bigint NOT NULL, dim integer NOT NULL, next_id bigint NOT NULL, chunks bigint NOT NULL, "
            "kind text NOT NULL, ef_search integer NOT NULL, recall_at_10 double precision NOT NULL, "
            "saved_at double precision NOT NULL)").format(self._meta))

    def _index(self, conn, n: int, ids: list[int], cfg: RagConfig) -> tuple[str, int, float]:
        """HNSW at or above ``flat_below`` rows (built once, then kept up to date by PostgreSQL), none below;
        returns (kind, ef_search, recall@10)."""
        exists = conn.execute("SELECT to_regclass(%s)", [self._hnsw]).fetchone()[0] is not None
        if n < cfg.flat_below:
            if exists:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(self._hnsw)))
            conn.execute(sql.SQL("ANALYZE {}").format(self._chunks))
            return "flat", 0, 1.0
        if not exists:
            conn.execute(sql.SQL("CREATE INDEX {} ON {} USING hnsw (embedding vector_ip_ops) "
                                 "WITH (m = {}, ef_construction = {})").format(
                sql.Identifier(self._hnsw), self._chunks, sql.Literal(HNSW_M), sql.Literal(HNSW_EF_CONSTRUCTION)))
        conn.execute(sql.SQL("ANALYZE {}").format(self._chunks))  # planner statistics for the new content
        ef, recall = self._tune(conn, ids, cfg.target_recall)
        return "hnsw", ef, recall

    def _tune(self, conn, ids: list[int], target: float, seed: int = 0) -> tuple[int, float]:
        """Smallest ef_search reaching ``target`` recall@10 against exact search, on held-out queries
        (stored vectors perturbed: near the data, like real queries, but not in it)."""
        rng = np.random.default_rng(seed)
        picks = rng.choice(np.asarray(ids), size=min(TUNE_QUERIES, len(ids)), replace=False)
        rows = conn.execute(sql.SQL("SELECT embedding FROM {} WHERE id = ANY(%s)").format(self._chunks),
                            [[int(i) for i in picks]]).fetchall()
        q = np.stack([_array(r[0]) for r in rows])
        q += rng.normal(0, 0.05, size=q.shape).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        truth = [{i for i, _ in self._exact(conn, "TRUE", [], v, 10)} for v in q]
        conn.execute("SET LOCAL enable_seqscan = off")  # measure the index, whatever the planner thinks
        ef, recall = EF_STEPS[0], 0.0
        for ef in EF_STEPS:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])
            got = [{i for i, _ in self._rows(conn, "TRUE", [], v, 10)} for v in q]
            recall = float(np.mean([len(g & t) / max(1, min(10, len(t))) for g, t in zip(got, truth, strict=True)]))
            if recall >= target:
                break
        conn.execute("SET LOCAL enable_seqscan = on")
        return ef, recall

    def _write_meta(self, conn, meta: _Meta) -> None:
        """The last statement of a write: the new generation becomes visible with the commit."""
        conn.execute(sql.SQL(
            "INSERT INTO {} (one, generation, dim, next_id, chunks, kind, ef_search, recall_at_10, saved_at) "
            "VALUES (true, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (one) DO UPDATE SET "
            "generation = EXCLUDED.generation, dim = EXCLUDED.dim, next_id = EXCLUDED.next_id, "
            "chunks = EXCLUDED.chunks, kind = EXCLUDED.kind, ef_search = EXCLUDED.ef_search, "
            "recall_at_10 = EXCLUDED.recall_at_10, saved_at = EXCLUDED.saved_at").format(self._meta),
            [meta.generation, meta.dim, meta.next_id, meta.chunks, meta.kind, meta.ef_search, meta.recall_at_10,
             time.time()])


def _metadata_row(c: Chunk) -> tuple:
    return (c.text, c.source, c.title, c.section, list(c.tags), float(c.ingested_at))


class PgVectorView:
    """The retriever's handle on a ``PgVectorStore``: the database is always current, so a search
    reads the content committed when it starts; ``size`` is what the last search or ``open_view`` read."""

    def __init__(self, store: PgVectorStore, meta: _Meta) -> None:
        self.store = store
        self._meta = meta

    @property
    def size(self) -> int:
        return self._meta.chunks

    @property
    def chunks(self) -> list[Chunk]:
        return self.store.read_chunks()

    def search(self, queries: np.ndarray, k: int, where: ChunkFilter | None) -> list[list[tuple[Chunk, float]]]:
        hits, meta = self.store.search_with_meta(queries, k, where)
        if meta is not None:
            self._meta = meta
        return hits
