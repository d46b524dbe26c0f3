"""GPU paths that cannot run on this machine fail at start with a message that names what is missing
and what to set instead (README: which GPU paths have run where). TensorRT's refusal is tested in
tests/models/test_llm_onnx.py; this is faiss-gpu's, against the real faiss-cpu installed here."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from server.config import Settings
from server.rag.store import RetrievalStore
from server.rag.store_from_config import open_store
from server.rag.vector_index import FaissGpuUnavailableError, VectorIndex, gpu_available

pytestmark = pytest.mark.skipif(gpu_available(), reason="faiss sees a GPU here: nothing is absent")


def test_retrieval_store_refuses_to_start_without_faiss_gpu(tmp_path):
    settings = Settings(data_dir=tmp_path, rag={"index_device": "gpu"})
    with pytest.raises(FaissGpuUnavailableError) as exc:
        open_store(settings)
    msg = str(exc.value)
    assert "rag.index_device=gpu" in msg and "faiss-gpu" in msg and "no GPU support" in msg
    assert "set rag.index_device to auto" in msg


def test_index_build_asked_for_the_gpu_fails_clearly():
    vectors = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    with pytest.raises(FaissGpuUnavailableError, match="faiss-gpu"):
        VectorIndex.build(vectors, use_gpu=True)
    assert not VectorIndex.build(vectors, use_gpu=None).stats.on_gpu  # auto: the CPU, silently


def test_auto_and_cpu_open_on_the_cpu(tmp_path):
    for device, use_gpu in (("auto", None), ("cpu", False)):
        store = open_store(Settings(data_dir=tmp_path, rag={"index_device": device}))
        assert isinstance(store, RetrievalStore) and store.use_gpu is use_gpu


def test_pgvector_with_a_gpu_index_is_a_config_error():
    with pytest.raises(ValidationError, match="applies to the faiss backend"):
        Settings(rag={"backend": "pgvector", "postgres_dsn": "postgresql://x@y/z", "index_device": "gpu"})
