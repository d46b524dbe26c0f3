"""Embedder deployment: all-MiniLM-L6-v2 (server/rag/embedder.py) behind Serve's dynamic batching.

Why a deployment: under concurrent searches each call embeds one short query, and a forward pass
over one text wastes most of the CPU's vector width; calls arriving within ``batch_wait_ms`` of each
other are merged into one forward pass (``@serve.batch``, sized in texts, not calls), and replicas
scale embedding apart from the gateway. Large calls (an ingest's chunks) skip the batch queue: they
are a batch already. The forward pass runs in a worker thread so the replica keeps accepting calls
while it computes (which is what fills the next batch).
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import numpy as np
from ray import serve

from server.config import Settings

log = logging.getLogger("stackserve.rag")


def _texts_in(batch: list[list[str]]) -> int:
    return sum(len(texts) for texts in batch)


@serve.deployment(name="Embedder", health_check_period_s=10)
class EmbedderDeployment:
    def __init__(self, settings_json: str):
        import torch

        from server.rag.embedder import Embedder

        self.settings = Settings.model_validate_json(settings_json)
        cfg = self.settings.rag.embedder
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.embedder = Embedder(precision=cfg.precision)
        self.max_batch_texts = cfg.max_batch_size
        self._encode_batched.set_max_batch_size(cfg.max_batch_size)
        self._encode_batched.set_batch_wait_timeout_s(cfg.batch_wait_ms / 1e3)
        self.forward_passes = 0
        self.texts = 0
        log.info("embedder ready: %s, batches of up to %d texts", cfg.precision, cfg.max_batch_size)

    async def info(self) -> dict:
        return {"dim": self.embedder.dim, "precision": self.embedder.precision}

    async def stats(self) -> tuple[int, int]:
        """(forward passes, texts embedded) since start: their ratio is the mean batch size."""
        return self.forward_passes, self.texts

    async def encode(self, texts: list[str]) -> np.ndarray:
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise TypeError("encode takes a list of strings")
        if not texts:
            return np.empty((0, self.embedder.dim), dtype=np.float32)
        if len(texts) >= self.max_batch_texts:
            return await self._forward(texts)
        return await self._encode_batched(texts)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002, batch_size_fn=_texts_in)
    async def _encode_batched(self, batch: list[list[str]]) -> list[np.ndarray]:
        vectors = await self._forward([t for texts in batch for t in texts])
        bounds = np.cumsum([0] + [len(texts) for texts in batch])
        return [vectors[a:b] for a, b in itertools.pairwise(bounds)]

    async def _forward(self, texts: list[str]) -> np.ndarray:
        self.forward_passes += 1
        self.texts += len(texts)
        return await asyncio.to_thread(self.embedder.encode, texts, self.max_batch_texts)
