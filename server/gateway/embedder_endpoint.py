"""Embedding through the Embedder deployment (deployments/embedder.py), for retrieval and chat.

Retrieval, the input rails and ingestion call ``encode`` synchronously from worker threads (their
other work, FAISS search and regex rails, is blocking CPU work kept off the event loop). The
DeploymentHandle's router runs on the gateway's event loop, so a worker thread hands each call to
that loop and waits for its result; async callers use ``aencode``. Token counting for chunking needs
only the tokenizer, which stays in the gateway (no weights loaded here).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from server.executors import RETRIEVAL, run_in
from server.gateway.ray_errors import CONTROL_TIMEOUT_S, ReplicaTimeoutError, bounded
from server.gateway.request_context import time_left
from server.rag.embedder import BertConfig, TextEmbedder, load_tokenizer, model_dir


class EmbedderStartError(RuntimeError):
    """The Embedder application did not deploy: retrieval and chat stay NOT_SERVING."""


class RayEmbedder:
    """A ``TextEmbedder`` whose forward passes run in the Embedder replicas, or, once ``place_local``
    ran (``rag.embedder.placement``), in this process: the choice is made when Ray is up, after
    retrieval already holds this object."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float = 60.0) -> None:
        path = model_dir()
        self.dim = BertConfig.load(path / "config.json").hidden
        self.tokenizer = load_tokenizer(path)
        self.loop = loop
        self.timeout_s = timeout_s
        self.handle: Any = None
        self.local: TextEmbedder | None = None
        self.failed: BaseException | None = None
        self._arrived = asyncio.Event()

    def attach(self, handle: Any) -> None:
        """The deployment's handle, once ``serve.run`` returned (call on the event loop)."""
        self.handle = handle
        self._arrived.set()

    def place_local(self, embedder: TextEmbedder) -> None:
        """Embed in this process with ``embedder`` (call on the event loop); no deployment is used."""
        if embedder.dim != self.dim:
            raise EmbedderStartError(f"the local embedder returns {embedder.dim}-d vectors, expected {self.dim}-d")
        self.local = embedder
        self._arrived.set()

    def fail(self, exc: BaseException) -> None:
        self.failed = exc
        self._arrived.set()

    async def wait_ready(self) -> None:
        await self._arrived.wait()
        if self.local is not None:
            return
        if self.handle is None:
            raise EmbedderStartError(f"the Embedder application failed to deploy: {self.failed}")
        info = await bounded(self.handle.info.remote(), CONTROL_TIMEOUT_S, "Embedder.info")
        if info["dim"] != self.dim:
            raise EmbedderStartError(f"the Embedder deployment returns {info['dim']}-d vectors, "
                                     f"this gateway's model {self.dim}-d")

    async def aencode(self, texts: list[str], timeout_s: float | None = None) -> np.ndarray:
        """``timeout_s``: the bound when called from another thread (``encode``), whose request's
        deadline does not follow the coroutine onto the loop; else the request's own applies."""
        if self.local is not None:
            return await run_in(RETRIEVAL, self.local.encode, list(texts))
        bound = self.timeout_s if timeout_s is None else timeout_s
        if self.handle is None:
            await asyncio.wait_for(self.wait_ready(), time_left(bound))
        return await bounded(self.handle.encode.remote(list(texts)), bound, "Embedder.encode")

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """From a worker thread (never the event loop's own: that would wait on itself).
        ``batch_size`` is the replica's choice (its dynamic batching), accepted for the protocol."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        if self.local is not None:  # in this worker thread: no hop through the event loop
            return self.local.encode(texts, batch_size)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("RayEmbedder.encode called on the event loop: use aencode")
        if not self.loop.is_running():
            raise RuntimeError("the gateway's event loop is not running")
        bound = time_left(self.timeout_s)  # this thread carries the request's context (run_in)
        future = asyncio.run_coroutine_threadsafe(self.aencode(texts, bound), self.loop)
        try:  # aencode is bounded by ``bound``; this bound covers a loop that never ran it
            return future.result(bound + 1.0)
        except TimeoutError:
            future.cancel()
            raise ReplicaTimeoutError(f"Embedder.encode: no answer within {bound:.1f} s") from None

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)]
