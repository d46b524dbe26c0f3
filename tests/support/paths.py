"""Where the tests find the repository's data and keep what is worth reusing between runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVAL_SET = ROOT / "bench" / "data" / "rag_eval.jsonl"
#: Expensive, content-keyed results reused across runs (the ingested default corpus, the trained
#: model store): ignored by git, safe to delete.
TEST_CACHE = ROOT / ".bench-cache"  # shared with the benchmarks (same keys, same content)
