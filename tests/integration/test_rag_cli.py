"""`stackserve ingest` and `stackserve search` as a user runs them (subprocesses): a report, hits,
a filter on an unknown field refused with exit code 2 naming it, a missing file refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.rag_docs import write_small_corpus

pytestmark = pytest.mark.integration


def test_cli_ingest_and_search(tmp_path):
    docs_dir = tmp_path / "docs"
    write_small_corpus(docs_dir)
    env_args = ["--data-dir", str(tmp_path / "data")]
    out = subprocess.run([sys.executable, "-m", "server.cli", *env_args, "ingest", str(docs_dir), "--json",
                          "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["documents"] == 5 and report["chunks_total"] > 0 and report["index"] == "flat"
    out = subprocess.run([sys.executable, "-m", "server.cli", *env_args, "search", "sourdough starter", "-k", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "Sourdough" in json.loads(out.stdout.splitlines()[0])["text"]
    bad = subprocess.run([sys.executable, "-m", "server.cli", *env_args, "search", "x", "--filter",
                          '{"equals": {"author": "me"}}'], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "author" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "server.cli", *env_args, "ingest", str(tmp_path / "nope.md")],
                             capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and "nope.md" in missing.stderr
