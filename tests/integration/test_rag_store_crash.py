"""The retrieval store survives a writer process killed mid-save (SIGKILL at random moments)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from server.rag.store import RetrievalStore

pytestmark = pytest.mark.integration

WRITER = """
import sys, numpy as np
from pathlib import Path
from server.rag.store import Chunk, RetrievalStore
from server.rag.vector_index import VectorIndex
root, n = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
store = RetrievalStore(root)
for gen in range(1000):
    m = n + gen
    x = rng.normal(size=(m, 64)).astype(np.float32)
    chunks = [Chunk(i, "g%d-%d" % (gen, i) * 20, "s", "t", "", (), 0.0, "%d-%d" % (gen, i)) for i in range(m)]
    store.save(chunks, [], VectorIndex.build(x))
    print(gen, flush=True)
"""


def test_a_writer_killed_mid_save_never_leaves_a_broken_store(tmp_path):
    """SIGKILL the writer at random moments (many saves per second): every load sees a complete
    generation (as many chunks as vectors, all from one save)."""
    root = tmp_path / "rag"
    rng = np.random.default_rng(3)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    loads = 0
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), "20000"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one save completed
        time.sleep(float(rng.uniform(0.0, 0.4)))  # a random moment to kill the writer (workload, not synchronisation)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        chunks, _, index = RetrievalStore(root).load()
        gens = {c.text.split("-")[0] for c in chunks}
        assert len(chunks) == index.stats.n == len(index.vectors) and len(gens) == 1
        assert json.loads((RetrievalStore(root).current() / "manifest.json").read_text())["chunks"] == len(chunks)
        loads += 1
    assert loads == 8
