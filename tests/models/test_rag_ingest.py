"""Ingestion end to end on small files with the real embedder: formats, redaction before storage, dedup,
incremental re-ingest, and search with filters through the Retriever (the CLI: tests/integration/test_rag_cli.py)."""

from __future__ import annotations

import pytest

from server.config import RagConfig
from server.rag.documents import UnsupportedFileError, load_file, load_paths
from server.rag.embedder import Embedder
from server.rag.filters import ChunkFilter
from server.rag.ingest import ingest
from server.rag.retriever import EmptyStoreError, Retriever
from server.rag.store import RetrievalStore
from tests.support.rag_docs import NOTES, write_small_corpus


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def test_loaders_keep_sections(tmp_path):
    write_small_corpus(tmp_path)
    md = load_file(tmp_path / "garden.md")
    assert [s.title for s in md.sections] == ["Gardening", "Pests"] and md.title == "Gardening"
    rst = load_file(tmp_path / "boats.rst")
    assert [s.title for s in rst.sections] == ["Sailing", "Knots"]
    html = load_file(tmp_path / "bread.html")
    assert [s.title for s in html.sections] == ["Baking", "Payment"] and "var x" not in html.sections[1].text
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(UnsupportedFileError, match="pdf"):
        load_file(tmp_path / "x.pdf")
    assert len(load_paths([tmp_path])) == 5  # the .pdf in the folder is skipped, not an error
    with pytest.raises(FileNotFoundError):
        load_paths([tmp_path / "missing"])


def test_ingest_redacts_dedups_and_reingests_incrementally(tmp_path, embedder):
    docs_dir = tmp_path / "docs"
    write_small_corpus(docs_dir)
    store = RetrievalStore(tmp_path / "rag")
    cfg = RagConfig(chunk_min_tokens=5, chunk_max_tokens=60)
    with pytest.raises(EmptyStoreError):
        Retriever(store, embedder).search("anything")
    first = ingest(load_paths([docs_dir]), store, embedder, cfg)
    assert (first.new, first.changed, first.unchanged) == (5, 0, 0)
    assert first.pii == {"email": 1, "phone": 1, "card": 1, "iban": 1}
    chunks, _, _ = store.load()
    stored = " ".join(c.text for c in chunks)
    for secret in ("grower@farm.example", "7183", "4111", "DE89"):
        assert secret not in stored
    assert sum("kettle" in c.text for c in chunks) == 1 and first.duplicates_skipped == 1

    again = ingest(load_paths([docs_dir]), store, embedder, cfg)
    assert (again.unchanged, again.chunks_embedded, again.chunks_total) == (5, 0, first.chunks_total)

    (docs_dir / "notes.txt").write_text(NOTES + " Boil eggs nine minutes.")
    changed = ingest(load_paths([docs_dir / "notes.txt"]), store, embedder, cfg)
    assert (changed.changed, changed.unchanged) == (1, 0) and changed.chunks_embedded <= 2
    assert changed.chunks_reused == changed.chunks_total - changed.chunks_embedded

    retriever = Retriever(store, embedder)
    hits = retriever.search("which knot makes a fixed loop?", k=3)
    assert "bowline" in hits[0].chunk.text
    only_md = retriever.search("which knot makes a fixed loop?", k=3,
                               where=ChunkFilter(equals={"source": str(docs_dir / "garden.md")}))
    assert only_md and all(h.chunk.source.endswith("garden.md") for h in only_md)
    assert retriever.search("eggs", k=5, where=ChunkFilter(any_of={"tag": ["txt"]}))[0].chunk.source.endswith(".txt")
    with pytest.raises(ValueError, match="empty"):
        retriever.search("   ")
