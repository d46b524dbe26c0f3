"""The PostgreSQL + pgvector store against a real server (tests/pg_server.py): top-k equals brute force
(flat and HNSW, any filter, a very selective one included), it agrees with the FAISS store on the
same content, empty stores and k=0 behave as FAISS's do, ingest is incremental, and a writer killed
inside its transaction leaves the previous content whole."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from server.config import RagConfig, Settings
from server.rag.filters import ChunkFilter, MetadataColumns, Range, sql_where
from server.rag.ingest import ingest
from server.rag.retriever import EmptyStoreError, Retriever
from server.rag.store import Chunk, ChunkStore, DocumentRecord, RetrievalStore
from server.rag.store_from_config import open_store
from server.rag.vector_index import exact_topk

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DIM = 32
_prefixes = (f"t{i}" for i in itertools.count())


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _chunks(n: int, rare: set[int] = frozenset()) -> list[Chunk]:
    """Metadata with known selectivities: source 1/200 (0.5%), section 1/3, tags t{i%2} and u{i%7}.
    ``rare`` even ids get section "a", which odd ids always have: ``tag t0 AND section a`` looks like a
    25% filter to the planner (it multiplies selectivities) but allows only the rare ids."""
    return [Chunk(i, f"text {i}", f"doc{i % 200}", f"title {i % 11}", "a" if (i % 2 or i in rare) else f"s{i % 3}",
                  (f"t{i % 2}", f"u{i % 7}"), 1000.0 + i, f"h{i}") for i in range(n)]


def _columns(chunks: list[Chunk]) -> MetadataColumns:
    return MetadataColumns([c.source for c in chunks], [c.title for c in chunks], [c.section for c in chunks],
                           [c.tags for c in chunks], [c.ingested_at for c in chunks])


def _write(store: ChunkStore, chunks: list[Chunk], vectors: np.ndarray, cfg: RagConfig | None = None,
           documents: list[DocumentRecord] | None = None):
    """Replace the store's content with ``chunks`` (as ingest would: vectors for hashes not stored)."""
    base = store.load_state()
    stored = {c.content_hash for c in base.chunks}
    embedded = {c.content_hash: vectors[i] for i, c in enumerate(chunks) if c.content_hash not in stored}
    return store.write(chunks, documents or [], embedded, vectors.shape[1], cfg or RagConfig(), base)


FILTERS = {
    "none": None,
    "source (0.5%)": ChunkFilter(equals={"source": "doc7"}),
    "section in-set": ChunkFilter(any_of={"section": ["s0", "s2"]}),
    "range": ChunkFilter(range={"ingested_at": Range(gte=1500, lte=2200)}),
    "tag": ChunkFilter(equals={"tag": "u3"}),
    "tag in-set": ChunkFilter(any_of={"tag": ["u1", "u5"]}),
    "combined": ChunkFilter(equals={"title": "title 4"}, any_of={"source": ["doc4", "doc15", "doc26"]},
                            range={"ingested_at": Range(gte=1100)}),
    "nothing": ChunkFilter(any_of={"source": []}),
}


# ---- the server -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_dsn(tmp_path_factory):
    pytest.importorskip("pgserver", reason="pgserver (dev extra) ships the PostgreSQL + pgvector binaries")
    from tests.support.pg_server import postgres_server

    t0 = time.perf_counter()
    with postgres_server(tmp_path_factory.mktemp("pg")) as dsn:
        print(f"postgres started in {time.perf_counter() - t0:.1f} s")
        yield dsn


@pytest.fixture
def pg_store(pg_dsn):
    """A store on fresh tables (own prefix) of the module's server."""
    from server.rag.pgvector_store import PgVectorStore

    opened = []

    def make(prefix: str | None = None, **kw) -> PgVectorStore:
        store = PgVectorStore(pg_dsn, prefix or next(_prefixes), **kw)
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


def test_the_server_has_pgvector_with_hnsw(pg_dsn):
    from tests.support.pg_server import pgvector_version

    version = tuple(int(p) for p in pgvector_version(pg_dsn).split("."))
    assert version >= (0, 5, 0), version  # HNSW arrived in 0.5.0


# ---- search equals brute force --------------------------------------------------------------------
@pytest.fixture(scope="module")
def flat_store(pg_dsn):
    """3,000 chunks, under flat_below: every search is an exact scan."""
    from server.rag.pgvector_store import PgVectorStore

    rng = np.random.default_rng(11)
    chunks, x = _chunks(3000), _unit(rng, 3000)
    store = PgVectorStore(pg_dsn, "flat")
    assert _write(store, chunks, x).kind == "flat"
    yield store, chunks, x, _unit(rng, 8)
    store.close()


@pytest.mark.parametrize("name", list(FILTERS))
def test_flat_top_k_equals_brute_force(flat_store, name):
    store, chunks, x, q = flat_store
    retriever = Retriever(store, None)
    mask = _columns(chunks).mask(FILTERS[name])
    allowed = np.arange(len(chunks)) if mask is None else np.flatnonzero(mask)
    for k in (1, 7, 40):
        want_s, want_i = exact_topk(x, q, k, allowed)
        hits = retriever.search_vectors(q, k, FILTERS[name])
        for row, ws, wi in zip(hits, want_s, want_i, strict=True):
            assert [h.chunk.id for h in row] == [i for i in wi if i >= 0]
            np.testing.assert_allclose([h.score for h in row], ws[wi >= 0], atol=1e-5)
            assert all(h.chunk == chunks[h.chunk.id] for h in row)


@pytest.fixture(scope="module")
def hnsw_store(pg_dsn):
    """6,000 chunks with flat_below 1,000: the HNSW index is built and ef_search tuned."""
    from server.rag.pgvector_store import PgVectorStore

    rng = np.random.default_rng(5)
    rare = set(rng.choice(np.arange(0, 6000, 2), size=30, replace=False).tolist())
    chunks, x = _chunks(6000, rare), _unit(rng, 6000)
    store = PgVectorStore(pg_dsn, "hnsw")
    result = _write(store, chunks, x, RagConfig(flat_below=1000))
    yield store, chunks, x, result
    store.close()


def _near_data(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = x[rng.choice(len(x), n, replace=False)] + rng.normal(0, 0.05, (n, x.shape[1])).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_hnsw_is_built_above_flat_below_and_tuned(hnsw_store):
    store, _, x, result = hnsw_store
    assert result.kind == "hnsw" and result.recall_at_10 >= RagConfig().target_recall
    q = _near_data(x, 32, seed=99)  # not the tuning queries
    _, want = exact_topk(x, q, 10)
    hits = Retriever(store, None).search_vectors(q, 10)
    recall = np.mean([len({h.chunk.id for h in row} & set(w)) / 10 for row, w in zip(hits, want, strict=True)])
    assert recall >= 0.9


def test_a_very_selective_filter_on_hnsw_is_exact(hnsw_store):
    """0.5% of rows: allowed count under exact_below, so the search is exact over just those rows."""
    store, chunks, x, _ = hnsw_store
    q = _unit(np.random.default_rng(3), 8)
    f = FILTERS["source (0.5%)"]
    allowed = np.flatnonzero(_columns(chunks).mask(f))
    assert len(allowed) == 30
    for k in (5, 10, 30, 50):
        _, want = exact_topk(x, q, k, allowed)
        hits = Retriever(store, None).search_vectors(q, k, f)
        assert [[h.chunk.id for h in row] for row in hits] == [[i for i in w if i >= 0] for w in want]


def test_a_short_index_scan_is_rerun_exactly(hnsw_store, pg_store, pg_dsn):
    """exact_below=0 sends a filtered search through the HNSW index. The filter looks like 25% of
    rows to the planner (which picks the index) but allows 30 of 6,000: pgvector 0.6 filters the
    walk's ef_search candidates afterwards, so the scan comes back short, and is rerun exactly."""
    import psycopg
    from pgvector.psycopg import register_vector

    _, chunks, x, _ = hnsw_store
    store = pg_store("hnsw", exact_below=0)
    f = ChunkFilter(equals={"tag": "t0", "section": "a"})
    allowed = np.flatnonzero(_columns(chunks).mask(f))
    assert len(allowed) == 30
    q = _unit(np.random.default_rng(4), 8)
    where, params = sql_where(f)
    with psycopg.connect(pg_dsn) as conn:  # the premise: the plain index query returns fewer than k rows
        register_vector(conn)
        plan = " ".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT id FROM hnsw_chunks WHERE {where} ORDER BY embedding <#> %s LIMIT 10", [*params, q[0]]))
        rows = conn.execute(f"SELECT id FROM hnsw_chunks WHERE {where} ORDER BY embedding <#> %s LIMIT 10",
                            [*params, q[0]]).fetchall()
    assert "hnsw_chunks_embedding_hnsw" in plan and len(rows) < 10
    for k in (1, 10, 30):
        before = store.exact_reruns
        _, want = exact_topk(x, q, k, allowed)
        hits = Retriever(store, None).search_vectors(q, k, f)
        assert [[h.chunk.id for h in row] for row in hits] == [[i for i in w if i >= 0] for w in want]
        # ef_search is widened to 1,000 (its cap): ~5 allowed rows among the candidates; k=1 fits in them
        assert store.exact_reruns > before or k == 1


# ---- the same answers as the FAISS store ----------------------------------------------------------
def test_faiss_and_pgvector_return_the_same_ids(pg_store, tmp_path):
    rng = np.random.default_rng(8)
    chunks, x, q = _chunks(2000), _unit(rng, 2000), _unit(rng, 6)
    docs = [DocumentRecord(f"doc{i}", f"fp{i}", f"title {i}", 1.0) for i in range(200)]
    local, pg = RetrievalStore(tmp_path / "rag"), pg_store()
    for store in (local, pg):
        _write(store, chunks, x, documents=docs)
    assert local.load_state().chunks == pg.load_state().chunks == chunks
    assert sorted(local.load_state().documents, key=lambda d: d.source) == sorted(pg.load_state().documents,
                                                                                   key=lambda d: d.source)
    np.testing.assert_array_equal(pg.load_state().vectors(["h3", "h1"]), x[[3, 1]])
    a, b = Retriever(local, None), Retriever(pg, None)
    assert a.size == b.size == len(b.chunks) == 2000
    for f in FILTERS.values():
        for k in (3, 25):
            ha, hb = a.search_vectors(q, k, f), b.search_vectors(q, k, f)
            assert [[h.chunk for h in row] for row in ha] == [[h.chunk for h in row] for row in hb]
            np.testing.assert_allclose([h.score for row in ha for h in row], [h.score for row in hb for h in row],
                                       atol=1e-5)


def test_empty_store_and_k0_behave_like_faiss(pg_store, tmp_path):
    rng = np.random.default_rng(2)
    local, pg = RetrievalStore(tmp_path / "rag"), pg_store()
    q = _unit(rng, 2)
    for store in (local, pg):
        retriever = Retriever(store, None)
        assert retriever.size == 0 and retriever.chunks == []
        with pytest.raises(EmptyStoreError):
            retriever.search_vectors(q, 3)
        assert store.load_state().chunks == [] and store.load_state().version == 0
    for store in (local, pg):  # saved, but nothing in it
        _write(store, [], np.empty((0, DIM), np.float32))
        assert Retriever(store, None).search_vectors(q, 3) == [[], []]
    chunks, x = _chunks(50), _unit(rng, 50)
    for store in (local, pg):
        _write(store, chunks, x)
        retriever = Retriever(store, None)
        assert retriever.search_vectors(q, 0) == [[], []]
        assert retriever.search_vectors(q, 0, FILTERS["tag"]) == [[], []]
        assert [len(r) for r in retriever.search_vectors(q, 80)] == [50, 50]  # k above n: all of them
        assert retriever.search_vectors(q, 3, FILTERS["nothing"]) == [[], []]
        with pytest.raises(ValueError, match="k must be"):
            retriever.search_vectors(q, -1)
        with pytest.raises(ValueError, match="dimensions"):
            retriever.search_vectors(np.ones((1, DIM + 1), np.float32), 3)
        with pytest.raises(ValueError, match="finite"):
            retriever.search_vectors(np.full((1, DIM), np.nan, np.float32), 3)


def test_a_stale_writer_is_refused(pg_store):
    from server.rag.pgvector_store import StoreConflictError

    rng = np.random.default_rng(6)
    store = pg_store()
    stale = store.load_state()
    _write(store, _chunks(20), _unit(rng, 20))
    with pytest.raises(StoreConflictError, match="another writer"):
        store.write([], [], {}, DIM, RagConfig(), stale)
    assert len(store.load_state().chunks) == 20


# ---- ingest ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder():
    from server.rag.embedder import Embedder

    return Embedder()


def _corpus(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "garden.md").write_text("# Gardening\n\nTomatoes need full sun and deep watering. Prune the suckers "
                                    "weekly.\n\n## Pests\n\nAphids gather under leaves. Spray them with soapy water.\n")
    (root / "boats.rst").write_text("Sailing\n=======\n\nA sloop has one mast. Reef the mainsail when the wind "
                                    "rises.\n\nKnots\n-----\n\nThe bowline makes a fixed loop. The cleat hitch "
                                    "secures a line to a cleat.\n")
    (root / "notes.txt").write_text("Plain notes. The kettle whistles at one hundred degrees.")


def test_ingest_is_incremental_and_agrees_with_faiss(pg_store, embedder, tmp_path):
    from server.rag.documents import load_paths

    docs_dir = tmp_path / "docs"
    _corpus(docs_dir)
    cfg = RagConfig(chunk_min_tokens=5, chunk_max_tokens=60)
    pg, local = pg_store(), RetrievalStore(tmp_path / "rag")
    first = ingest(load_paths([docs_dir]), pg, embedder, cfg)
    assert (first.new, first.chunks_embedded, first.index) == (3, first.chunks_total, "flat")
    ingest(load_paths([docs_dir]), local, embedder, cfg)
    for question in ("which knot makes a fixed loop?", "how hot does water boil", "insects on leaves"):
        want = [(h.chunk.id, h.chunk.text) for h in Retriever(local, embedder).search(question, k=3)]
        assert [(h.chunk.id, h.chunk.text) for h in Retriever(pg, embedder).search(question, k=3)] == want

    again = ingest(load_paths([docs_dir]), pg, embedder, cfg)
    assert (again.unchanged, again.chunks_embedded, again.chunks_total) == (3, 0, first.chunks_total)

    ids = {c.content_hash: c.id for c in pg.load_state().chunks}
    (docs_dir / "notes.txt").write_text("Plain notes. The kettle whistles at one hundred degrees. Boil eggs nine "
                                        "minutes.")
    changed = ingest(load_paths([docs_dir / "notes.txt"]), pg, embedder, cfg)
    assert (changed.changed, changed.unchanged) == (1, 0) and 1 <= changed.chunks_embedded <= 2
    assert changed.chunks_reused == changed.chunks_total - changed.chunks_embedded
    state = pg.load_state()
    kept = [c for c in state.chunks if c.source != str(docs_dir / "notes.txt")]
    assert kept and all(ids[c.content_hash] == c.id for c in kept)  # untouched rows keep their ids
    retriever = Retriever(pg, embedder)
    assert "bowline" in retriever.search("which knot makes a fixed loop?", k=3)[0].chunk.text
    assert "eggs" in retriever.search("how long to boil eggs", k=1)[0].chunk.text
    only_md = retriever.search("knots", k=3, where=ChunkFilter(equals={"source": str(docs_dir / "garden.md")}))
    assert only_md and all(h.chunk.source.endswith("garden.md") for h in only_md)


# ---- a killed writer --------------------------------------------------------------------------------
WRITER = """
import sys, time
import numpy as np
from server.config import RagConfig
from server.rag.pgvector_store import PgVectorStore
from server.rag.store import Chunk
dsn, prefix, mode, dim = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = PgVectorStore(dsn, prefix)
if mode == "stall":  # stop inside the transaction, after its last statement, before the commit
    write_meta = PgVectorStore._write_meta
    def stalled(self, conn, meta):
        write_meta(self, conn, meta)
        print("inside", flush=True)
        time.sleep(600)  # hung before the commit until the test SIGKILLs it: the workload, not synchronisation
    PgVectorStore._write_meta = stalled
rng = np.random.default_rng(0)
for gen in range(1, 10**6):
    n = 1500 + gen
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    chunks = [Chunk(i, f"g{gen}-{i}", "s", "t", "", (), 0.0, f"g{gen}-{i}") for i in range(n)]
    base = store.load_state()
    store.write(chunks, [], {c.content_hash: x[i] for i, c in enumerate(chunks)}, dim,
                RagConfig(flat_below=1000), base)
    print("wrote", gen, flush=True)
"""


def _writer(dsn: str, prefix: str, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WRITER, dsn, prefix, mode, str(DIM)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _snapshot(store) -> tuple:
    view = store.open_view()
    state = store.load_state()
    return state.version, state.chunks, view.size if view else None


def test_a_writer_killed_inside_its_transaction_leaves_the_previous_content(pg_store, pg_dsn):
    """The writer replaces all 1,000 rows of a flat store and builds an HNSW index (flat_below 1,000),
    then is SIGKILLed before its commit: rows, meta and index are the previous ones; then writers
    killed at random moments of repeated replacements: every read sees one whole generation."""
    import psycopg

    rng = np.random.default_rng(1)
    store = pg_store()
    old, x = _chunks(1000), _unit(rng, 1000)
    _write(store, old, x, RagConfig(flat_below=5000))
    q = _unit(rng, 4)
    before, hits_before = _snapshot(store), Retriever(store, None).search_vectors(q, 5)

    proc = _writer(pg_dsn, store.table_prefix, "stall")
    line = proc.stdout.readline()
    assert line.strip() == "inside", line or proc.stderr.read()
    with psycopg.connect(pg_dsn) as conn:  # the uncommitted replacement is really in flight
        busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'").fetchone()[0]
    assert busy >= 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _snapshot(store) == before
    assert Retriever(store, None).search_vectors(q, 5) == hits_before
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT to_regclass(%s)", [f"{store.table_prefix}_chunks_embedding_hnsw"]).fetchone()[0] \
            is None

    for _ in range(4):
        proc = _writer(pg_dsn, store.table_prefix, "loop")
        assert proc.stdout.readline().startswith("wrote"), proc.stderr.read()
        time.sleep(float(rng.uniform(0.0, 1.0)))  # a random moment to kill the writer (workload, not synchronisation)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        version, chunks, size = _snapshot(store)
        assert len(chunks) == size and len({c.text.split("-")[0] for c in chunks}) == 1
        assert len(chunks) == 1500 + int(chunks[0].text.split("-")[0][1:])
    assert version > before[0]


# ---- configuration ----------------------------------------------------------------------------------
def test_config_selects_the_backend_and_keeps_the_password_out():
    with pytest.raises(ValidationError, match="postgres_dsn is required"):
        RagConfig(backend="pgvector")
    with pytest.raises(ValidationError, match="postgres_table_prefix"):
        RagConfig(postgres_table_prefix="Robert'); DROP TABLE students;--")
    assert isinstance(open_store(Settings()), RetrievalStore)
    settings = Settings(rag={"backend": "pgvector", "postgres_dsn": "postgresql://rag:s3cret@db.example:5432/rag"})
    store = open_store(settings)  # opens no connection until used
    assert type(store).__name__ == "PgVectorStore"
    for text in (repr(settings), repr(settings.rag), str(settings.rag), store.describe(), repr(store)):
        assert "s3cret" not in text
    assert "db.example" in store.describe() and "***" in store.describe()
    from server.rag.pg_connections import redact_dsn

    assert "s3cret" not in redact_dsn("host=db user=rag password=s3cret dbname=rag")
