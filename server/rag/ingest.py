"""Ingestion: documents → PII redaction → semantic chunks → dedup → embeddings → a new store generation.

Re-ingesting is incremental: a document whose fingerprint (hash of its raw text) is unchanged keeps
its chunks and vectors; a changed one is re-chunked, and of its chunks only those whose content
hash is new are embedded (the rest reuse their vectors). Chunks are deduplicated by content hash
across the whole store, so the same paragraph in two files is indexed once. Redaction runs before
anything is embedded or written, and its counts are part of the report.

The store is any ``ChunkStore`` (the local generations or PostgreSQL + pgvector): ingest reads what
it holds (``load_state``), decides the new content, embeds only new content hashes and hands the
whole content to ``write``, which makes it current in one atomic step.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from server.config import RagConfig
from server.rag.chunking import ChunkingConfig, chunk_sections, split_units
from server.rag.documents import Document
from server.rag.embedder import TextEmbedder
from server.rag.pii import redact
from server.rag.store import Chunk, ChunkStore, DocumentRecord


@dataclass(slots=True)
class IngestReport:
    documents: int = 0
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    chunks_total: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    duplicates_skipped: int = 0
    pii: Counter = field(default_factory=Counter)
    index: str = ""
    recall_at_10: float = 1.0
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in
                ((f, getattr(self, f)) for f in self.__slots__)}


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()


def embedding_text(title: str, section: str, text: str) -> str:
    """What is embedded for a chunk: its place in the corpus, then its text (titles disambiguate
    short chunks; the stored text stays as written)."""
    where = title if not section or section == title else f"{title} — {section}"
    return f"{where}: {text}" if where else text


def ingest(documents: list[Document], store: ChunkStore, embedder: TextEmbedder, cfg: RagConfig,
           progress=None) -> IngestReport:
    report = IngestReport(documents=len(documents))
    t0 = time.perf_counter()
    state = store.load_state()
    old_chunks, old_docs = state.chunks, state.documents
    old_fp = {d.source: d for d in old_docs}
    stored = {c.content_hash for c in old_chunks}  # their vectors are reused, never embedded again
    chunking = ChunkingConfig(cfg.chunk_min_tokens, cfg.chunk_max_tokens, cfg.chunk_percentile)
    now = time.time()
    touched = {d.source for d in documents}
    records = {s: d for s, d in old_fp.items()}
    # keep every chunk of documents this ingest does not mention, or whose text is unchanged
    given = {d.source: d for d in documents}
    kept = [c for c in old_chunks if c.source not in touched
            or (c.source in old_fp and old_fp[c.source].fingerprint == given[c.source].fingerprint)]
    # every changed section is chunked in one pass over the encoder (see chunk_sections)
    sections: list[tuple[Document, str, list[str]]] = []  # document, section title, units
    changed: list[Document] = []
    for doc in documents:
        previous = old_fp.get(doc.source)
        if previous is not None and previous.fingerprint == doc.fingerprint:
            report.unchanged += 1
            continue
        report.changed += previous is not None
        report.new += previous is None
        records[doc.source] = DocumentRecord(doc.source, doc.fingerprint, doc.title, now)
        changed.append(doc)
        for section in doc.sections:
            red = redact(section.text)
            report.pii.update(red.counts)
            sections.append((doc, section.title, split_units(red.text)))
    encode = functools.partial(embedder.encode, batch_size=cfg.embed_batch_size)
    chunked = chunk_sections([units for *_, units in sections], encode, embedder.token_counts, chunking)
    fresh: list[tuple[str, str, str, tuple[str, ...], str]] = []  # source, title, section, tags, text
    for (doc, title, _), texts in zip(sections, chunked, strict=True):
        fresh += [(doc.source, doc.title, title, doc.tags, t) for t in texts]
    for doc in changed if progress is not None else ():
        progress(doc)
    report.seconds["chunk"] = time.perf_counter() - t0
    seen = {c.content_hash for c in kept}
    rows: list[tuple[str, str, str, tuple[str, ...], str, str, float]] = [
        (c.source, c.title, c.section, c.tags, c.text, c.content_hash, c.ingested_at) for c in kept]
    for source, title, section, tags, text in fresh:
        h = content_hash(text)
        if h in seen:
            report.duplicates_skipped += 1
            continue
        seen.add(h)
        rows.append((source, title, section, tags, text, h, now))
    t1 = time.perf_counter()
    need = [i for i, r in enumerate(rows) if r[5] not in stored]
    embedded: dict[str, np.ndarray] = {}
    if need:
        vectors = embedder.encode([embedding_text(rows[i][1], rows[i][2], rows[i][4]) for i in need],
                                  batch_size=cfg.embed_batch_size)
        embedded = {rows[i][5]: vectors[j] for j, i in enumerate(need)}
    report.chunks_embedded, report.chunks_reused = len(need), len(rows) - len(need)
    report.seconds["embed"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    chunks = [Chunk(i, r[4], r[0], r[1], r[2], r[3], r[6], r[5]) for i, r in enumerate(rows)]
    # every document stays recorded, even one whose chunks were all duplicates: unchanged next time
    written = store.write(chunks, list(records.values()), embedded, embedder.dim, cfg, base=state)
    report.seconds["index+save"] = time.perf_counter() - t2
    report.chunks_total = written.chunks
    report.index, report.recall_at_10 = written.kind, written.recall_at_10
    report.seconds["total"] = time.perf_counter() - t0
    return report

