"""``stackserve ingest`` and ``search``: the local retrieval store, without a server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from server.cli.common import (
    Subparsers,
    add_command,
    cli_settings,
    rich_console,
)


def cmd_ingest(args: argparse.Namespace) -> int:
    import torch
    from rich.progress import Progress

    from server.rag.documents import UnsupportedFileError, load_paths, pydoc_corpus
    from server.rag.embedder import Embedder
    from server.rag.ingest import ingest
    from server.rag.store_from_config import open_store

    console = rich_console(stderr=True)
    settings = cli_settings(args)
    try:
        docs = load_paths([Path(p) for p in args.paths]) if args.paths else []
    except (UnsupportedFileError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}")
        return 2
    if args.default_corpus or not args.paths:
        docs += pydoc_corpus()
    torch.set_num_threads(args.threads)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("loading the embedder", total=len(docs))
        embedder = Embedder(precision=settings.rag.embedder.precision)
        bar.update(task, description="chunking")
        store = open_store(settings)
        report = ingest(docs, store, embedder, settings.rag, progress=lambda doc: bar.advance(task))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        pii = ", ".join(f"{k} {v}" for k, v in sorted(report.pii.items())) or "none"
        rich_console().print(
            f"{report.documents} documents ({report.new} new, {report.changed} changed, {report.unchanged} unchanged)"
            f" → {report.chunks_total} chunks ({report.chunks_embedded} embedded, {report.chunks_reused} reused, "
            f"{report.duplicates_skipped} duplicates skipped); PII redacted: {pii}; index {report.index} "
            f"(recall@10 {report.recall_at_10:.3f}); {report.seconds['total']:.1f} s → {store.describe()}"
        )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from server.rag.embedder import Embedder
    from server.rag.filters import ChunkFilter
    from server.rag.retriever import EmptyStoreError, Retriever
    from server.rag.store_from_config import open_store

    settings = cli_settings(args)
    try:
        where = ChunkFilter.model_validate_json(args.filter) if args.filter else None
    except ValidationError as exc:
        rich_console(stderr=True).print(f"[red]--filter: {exc}")
        return 2
    try:
        embedder = Embedder(precision=settings.rag.embedder.precision)
        hits = Retriever(open_store(settings), embedder).search(args.query, args.k, where)
    except EmptyStoreError as exc:
        rich_console(stderr=True).print(f"[red]{exc}")
        return 3
    for h in hits:
        c = h.chunk
        print(json.dumps({"id": c.id, "score": round(h.score, 4), "source": c.source, "section": c.section,
                          "text": c.text[:200]}))
    return 0


def add_ingest(sub: Subparsers) -> None:
    ig = add_command(sub, "ingest", help="chunk, redact, embed and index documents for retrieval")
    ig.add_argument("paths", nargs="*", help=".txt/.md/.rst/.html files or folders (none: the default corpus)")
    ig.add_argument("--default-corpus", action="store_true", help="also ingest the built-in corpus (pydoc topics)")
    ig.add_argument("--threads", type=int, default=2, help="torch threads for the embedder")
    ig.add_argument("--json", action="store_true", help="print the ingest report as JSON")
    ig.set_defaults(func=cmd_ingest)


def add_search(sub: Subparsers) -> None:
    se = add_command(sub, "search", help="top-k chunks for a query from the local retrieval store")
    se.add_argument("query")
    se.add_argument("-k", type=int, default=5)
    se.add_argument("--filter", help='JSON, e.g. \'{"equals": {"source": "pydoc:for"}}\'')
    se.set_defaults(func=cmd_search)
