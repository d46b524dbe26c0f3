"""Several LLMs at once behind one ``LLMService`` API: a request picks its model by ``model``.

Why a router over per-model services instead of one service with many engines: everything a model
needs (its endpoint, its limits for validation, its metric series, its stats loop) is already one
``LLMService``; the router only chooses. An empty ``model`` means the first (default) model, as
a single-model server treats it; an unknown one is NOT_FOUND naming every model served. Each model
has its own engine (in the gateway's process or its own Ray Serve application), so a long request
on one model never waits for a slot of another.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from server.gateway.llm_service import LLMService
from server.gen.stackserve.v1 import llm_pb2 as pb
from server.llm.serving import EngineInfo, LLMJob
from server.protocol import errors
from server.protocol.errors import ServingError, clip


class LLMRouter:
    def __init__(self, services: list[LLMService]) -> None:
        if not services:
            raise ValueError("an LLM router needs at least one model")
        self.services = services

    # ----- what callers of a single LLMService use: the default model ------------------------------
    @property
    def default(self) -> LLMService:
        return self.services[0]

    @property
    def info(self) -> EngineInfo | None:
        return self.default.info

    @property
    def endpoint(self) -> Any:
        return self.default.endpoint

    @property
    def ready(self) -> bool:
        return self.default.ready

    def infos(self) -> list[EngineInfo]:
        """The models that are loaded, default first."""
        return [s.info for s in self.services if s.info is not None]

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.services))

    async def run_stats_loop(self) -> None:
        await asyncio.gather(*(s.run_stats_loop() for s in self.services))

    # ----- choosing ---------------------------------------------------------------------------------
    def for_model(self, name: str) -> LLMService:
        """The service of model ``name`` (empty: the default); NOT_FOUND names the models served."""
        if not name or len(self.services) == 1:
            return self.default  # a single model checks the name itself (and says it is loading)
        for s in self.services:
            if s.info is not None and s.info.model == name:
                return s
        loaded = [i.model for i in self.infos()]
        if len(loaded) < len(self.services):
            raise errors.unavailable(f"model {clip(name)!r} is not among the loaded {loaded}; the others are still "
                                     "loading: retry shortly")  # fmt: skip
        raise errors.not_found("model", f"unknown model {clip(name)!r}; serving {loaded}")

    def _for_request(self, request: Any) -> LLMService:
        return self.for_model(getattr(request, "model", "") or "")  # a DecodeFailure has no model

    def job(self, parse: Callable[[Any, EngineInfo], LLMJob], request: Any) -> LLMJob:
        service = self._for_request(request)
        job = service.job(parse, request)
        return dataclasses.replace(job, model=service.info.model if service.info else "")

    def stream(self, job: LLMJob, rpc: str, context: Any) -> AsyncIterator[Any]:
        return self.for_model(job.model).stream(job, rpc, context)

    # ----- gRPC -------------------------------------------------------------------------------------
    async def _pick(self, request: Any, context: grpc.aio.ServicerContext) -> LLMService:
        try:
            return self._for_request(request)
        except ServingError as err:
            await errors.abort(context, err)
            raise  # abort raises; this is for type checkers

    async def Generate(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GenerateResponse]:
        service = await self._pick(request, context)
        async for msg in service.Generate(request, context):
            yield msg

    async def Chat(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GenerateResponse]:
        service = await self._pick(request, context)
        async for msg in service.Chat(request, context):
            yield msg

    async def Complete(self, request: Any, context: grpc.aio.ServicerContext) -> pb.CompleteResponse:
        service = await self._pick(request, context)
        return await service.Complete(request, context)

    async def ListModels(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ListLLMModelsResponse:
        infos = self.infos()
        if not infos:
            await errors.abort(context, errors.unavailable("the LLM is still loading; retry shortly"))
        return pb.ListLLMModelsResponse(models=[pb.LLMModel(
            name=i.model, backend=i.backend, max_model_len=i.max_model_len, vocab_size=i.vocab_size,
            max_num_seqs=i.max_num_seqs) for i in infos])  # fmt: skip
