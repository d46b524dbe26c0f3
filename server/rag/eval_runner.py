"""The evaluation set asked end to end: the default corpus ingested once, every question through the
same ChatPipeline the gateway runs (input rails, retrieval, prompt template, the real LLM engine in
this process, output rails), each answer scored (``server/rag/evaluation.py``).

Shared by ``python -m bench.rag_eval`` (the whole set, tables and plots) and the quality gate in the
test suite (a sample). The ingested corpus is cached under a key of everything it depends on (the
corpus text, the embedder's files, the chunking settings, the ingest code), so a second run, or a
second caller in the same run, reuses it instead of embedding the corpus again.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import shutil
import sys
import tempfile
from pathlib import Path

from server.config import RagConfig, load_settings
from server.guardrails.input_rails import InputRails
from server.guardrails.output_rails import grounding
from server.guardrails.verdict import Action
from server.rag.chat import AskOutcome, ChatPipeline
from server.rag.evaluation import EvalItem, ItemResult, token_f1


def corpus_key(cfg: RagConfig) -> str:
    """A hash of what an ingest of the default corpus depends on (16 hex digits)."""
    from server.rag.embedder import auto_int8_max_tokens

    h = hashlib.sha256(_fixed_inputs_digest())
    # the precision and, for "auto", this CPU's int8 limit decide which forward embeds the chunks
    h.update(repr((cfg.chunk_min_tokens, cfg.chunk_max_tokens, cfg.chunk_percentile, cfg.embedder.precision,
                   auto_int8_max_tokens() if cfg.embedder.precision == "auto" else None)).encode())
    return h.hexdigest()[:16]


@functools.cache
def _fixed_inputs_digest() -> bytes:
    """The corpus text, the embedder's files (~90 MB read) and the chunking, ingest and embedder code: fixed for the
    life of a process, so hashed once however many callers ask for the store (the harness asks thrice)."""
    from server.rag import chunking, embedder, ingest
    from server.rag.documents import pydoc_corpus
    from server.rag.embedder import model_dir

    h = hashlib.sha256()
    for doc in pydoc_corpus():
        h.update(doc.source.encode())
        h.update(doc.fingerprint.encode())
    for path in sorted(model_dir().iterdir()):
        if path.is_file():
            h.update(path.name.encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(inspect.getsource(chunking).encode())
    h.update(inspect.getsource(ingest).encode())
    h.update(inspect.getsource(embedder).encode())
    return h.digest()


def default_corpus_store(cache_root: Path, cfg: RagConfig | None = None) -> Path:
    """The default corpus ingested into ``cache_root/rag-pydoc-<key>`` (once: reused while the key holds)
    with ``cfg``'s chunking (the defaults when None).

    Built in a temporary directory and renamed into place, so an interrupted ingest never leaves a
    half-built store under the key.
    """
    from server.rag.documents import pydoc_corpus
    from server.rag.embedder import Embedder
    from server.rag.ingest import ingest
    from server.rag.store import RetrievalStore

    cfg = cfg or load_settings(None).rag
    target = cache_root / f"rag-pydoc-{corpus_key(cfg)}"
    if RetrievalStore(target).current() is not None:
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root))
    try:
        print(f"ingesting the default corpus into {target} (once) ...", file=sys.stderr)
        report = ingest(pydoc_corpus(), RetrievalStore(building), Embedder(precision=cfg.embedder.precision), cfg)
        print(f"  {report.chunks_total} chunks in {report.seconds['total']:.0f}s", file=sys.stderr)
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


async def ask_all(items: list[EvalItem], backend: str, k: int, store: Path,
                  max_model_len: int = 1024) -> list[ItemResult]:
    """Ask every item through the ChatPipeline over ``store`` with the LLM on ``backend``; score each."""
    from rich.progress import Progress

    from server.llm.engine import LLMEngine
    from server.llm.serving import AsyncEngine
    from server.rag.retrieval_workload import RetrievalWorkload

    settings = load_settings(None, rag={"store_dir": str(store)}, llm={"backend": backend,
                                                                        "max_model_len": max_model_len})
    rag = await RetrievalWorkload(settings).start()
    assert rag.retriever is not None
    embed = rag.retriever.embedder.encode
    rails = InputRails(embed)
    engine = AsyncEngine(LLMEngine(settings.llm).start())
    pipeline = ChatPipeline(rag, rails, engine.generate, lambda: settings.llm.max_model_len)
    chunks = rag.retriever.chunks
    results = []
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task(f"{backend}: asking", total=len(items))
            for it in items:
                top = await rag.search(it.question, 10)
                out = AskOutcome()
                async for _ in pipeline.ask(it.question, k, None, None, f"eval-{backend}-{it.id}", 120.0, out):
                    pass
                answered = out.outcome in ("answered", "extractive")
                grounded = out.outcome == "extractive" or any(
                    v.rail == "grounding" and v.action is Action.ALLOW for v in out.verdicts)
                gold_text = [c.text for c in chunks if c.section in it.gold_sections]
                gold_ok = bool(answered and gold_text
                               and grounding(out.answer, gold_text, embed).action is Action.ALLOW)
                results.append(ItemResult(
                    it.id, it.answerable, [h.chunk.section for h in top.hits], out.outcome, out.answer,
                    grounded if answered else False, gold_ok, token_f1(out.answer, it.answer) if it.answerable else 0.0,
                    out.timings.get("total", 0.0) * 1e3,
                    (out.timings.get("embed", 0) + out.timings.get("search", 0) + out.timings.get("prefill", 0)) * 1e3,
                ))
                bar.advance(task)
    finally:
        await engine.close()
    return results
