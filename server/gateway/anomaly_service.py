"""AnomalyService: the servicer methods mirror the proto's RPC names.

A servicer translates and delegates, like the grpc examples': requests are parsed into domain
objects (server/protocol/anomaly_validation.py), scored by ``AnomalyScoring``
(anomaly_scoring.py: stream features, coalescing, rollout, drift), and results become messages
(server/protocol/anomaly_messages.py). ``_status`` is the one place the scoring path's exceptions
become gRPC statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING

import grpc
import numpy as np

from server.anomaly.scorer import ScoreResult
from server.batching import OverloadError, RequestTooLargeError
from server.config import Settings
from server.executors import HOUSEKEEPING, run_in
from server.gateway.anomaly_endpoint import AnomalyEndpoint
from server.gateway.anomaly_scoring import AnomalyScoring
from server.gateway.failures import failure_status
from server.gen.stackserve.v1 import anomaly_pb2 as pb
from server.protocol import errors
from server.protocol.anomaly_messages import score_response
from server.protocol.anomaly_validation import ParsedScoreRequest, parse_score_request
from server.rollout.controller import ArmStats, RolloutSnapshot
from server.slo import tracker as slo

if TYPE_CHECKING:
    from kernels.stream_features import PendingUpdate

STREAM_PIPELINE_DEPTH = 64


def _status(exc: BaseException) -> errors.ServingError:
    """A failed scoring call as the status the client sees."""
    if isinstance(exc, errors.ServingError):
        return exc
    if isinstance(exc, RequestTooLargeError):
        return errors.invalid("features", str(exc))
    if isinstance(exc, OverloadError):
        return errors.exhausted(str(exc))
    if isinstance(exc, TimeoutError):
        return errors.deadline("deadline passed before the events were scored")
    return failure_status("the anomaly scorer failed; retry", exc)


class AnomalyService:
    def __init__(self, settings: Settings, endpoint: AnomalyEndpoint):
        self.settings = settings
        self.scoring = AnomalyScoring(settings, endpoint)

    def load_catalog(self, infos: Sequence[dict]) -> None:
        self.scoring.load_catalog(infos)

    @property
    def ready(self) -> bool:
        return self.scoring.ready

    async def close(self) -> None:
        await self.scoring.close()

    def _parse(self, request: object) -> ParsedScoreRequest:
        scoring = self.scoring
        if not scoring.ready:
            raise errors.unavailable("models are still loading; retry shortly")
        cfg = self.settings.anomaly
        parsed = parse_score_request(request, scoring.catalog, cfg.default_model, cfg.default_stream_model)
        limit = scoring.max_request_rows
        if limit is not None and parsed.n_events > limit:
            # permanent, not "retry later": this request can never fit however idle the server is
            raise errors.invalid(
                "features" if parsed.event_times_us is None else "entity_keys",
                f"{parsed.n_events} events in one request exceed the limit of {limit} "
                "(coalescing.max_queue_events); split it into smaller requests",
            )
        return parsed

    async def _scored(self, coro: Awaitable[ScoreResult]) -> ScoreResult:
        """Await a scoring call with its failure mapped to a status (ServingError)."""
        try:
            return await coro
        except errors.ServingError:
            raise
        except Exception as exc:
            raise _status(exc) from exc

    async def _inputs(self, parsed: ParsedScoreRequest, timeout: float) -> tuple[np.ndarray, PendingUpdate | None]:
        """The model's input rows: read from the feature store for a request sent by entity key and
        event time (one lookup, off the loop), else from the request (``AnomalyScoring.inputs``)."""
        if parsed.event_times_us is None:
            return self.scoring.inputs(parsed)
        try:
            return await self.scoring.online_inputs(parsed, timeout), None
        except errors.ServingError:
            raise
        except Exception as exc:
            raise _status(exc) from exc

    def _timeout(self, context: grpc.aio.ServicerContext) -> float:
        remaining = context.time_remaining()
        return self.settings.gateway.default_timeout_s if remaining is None else max(0.0, remaining)

    # ----- RPCs ------------------------------------------------------------
    async def Score(self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext) -> pb.ScoreResponse:
        started = time.perf_counter()
        try:
            parsed = self._parse(request)
            X, pending = await self._inputs(parsed, self._timeout(context))
            result = await self._scored(self.scoring.score_settled(parsed, X, pending, self._timeout(context)))
        except errors.ServingError as err:
            slo.record_failure("anomaly", err.code.name, started)
            await errors.abort(context, err)
        response = score_response(result)
        slo.record("anomaly", failed=False, latency_s=time.perf_counter() - started, events=X.shape[0])
        return response

    async def ScoreStream(
        self, request_iterator: AsyncIterator[pb.ScoreRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ScoreResponse]:
        """Pipelined: messages are validated and featurised in order as they arrive,
        scored concurrently (up to STREAM_PIPELINE_DEPTH in flight) and answered in order.

        A message's stream-state change is committed when its response is handed to gRPC; every
        message read ahead but not answered (an error, or the client going away) is rolled back,
        so a retry of the unanswered messages sees exactly the state an undisturbed run would."""
        Item = tuple[asyncio.Task, "PendingUpdate | None", float, int]  # task, state change, read at, events
        pending: asyncio.Queue[Item | errors.ServingError | None] = asyncio.Queue(STREAM_PIPELINE_DEPTH)

        async def reader() -> None:
            index = 0
            try:
                async for request in request_iterator:
                    try:
                        parsed = self._parse(request)
                        X, update = await self._inputs(parsed, self._timeout(context))
                    except errors.ServingError as err:
                        err.reason = f"message {index}: {err.reason}"
                        await pending.put(err)
                        return
                    read_at = time.perf_counter()
                    task = asyncio.ensure_future(self._scored(self.scoring.score(parsed, X, self._timeout(context))))
                    try:
                        await pending.put((task, update, read_at, X.shape[0]))
                    except BaseException:
                        task.cancel()
                        if update is not None:
                            update.rollback()
                        raise
                    index += 1
            finally:
                await pending.put(None)

        def settle(item: Item, keep: bool) -> None:
            task, update, _, _ = item
            if not keep:
                task.cancel()
            if update is not None:
                update.commit() if keep else update.rollback()

        read_task = asyncio.create_task(reader())
        in_hand: Item | None = None
        try:
            while True:
                item = await pending.get()
                if item is None:
                    break
                if isinstance(item, errors.ServingError):
                    await errors.abort(context, item)
                in_hand = item
                try:
                    result = await item[0]
                except errors.ServingError as err:
                    slo.record_failure("anomaly", err.code.name, item[2])
                    await errors.abort(context, err)
                in_hand = None
                settle(item, keep=True)
                response = score_response(result)
                slo.record("anomaly", failed=False, latency_s=time.perf_counter() - item[2], events=item[3])
                yield response
        finally:
            if in_hand is not None:
                settle(in_hand, keep=False)
            read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read_task
            while not pending.empty():
                item = pending.get_nowait()
                if isinstance(item, tuple):
                    settle(item, keep=False)

    async def ListModels(self, request: object, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        if not self.ready:
            await errors.abort(context, errors.unavailable("models are still loading; retry shortly"))
        cfg = self.settings.anomaly
        return pb.ListModelsResponse(
            models=[
                pb.ModelInfo(
                    name=e.name,
                    version=e.version,
                    kind=e.kind,
                    feature_names=list(e.feature_names),
                    uses_stream_features=e.stream is not None,
                    threshold=e.threshold,
                    is_default=e.name in (cfg.default_model, cfg.default_stream_model),
                )
                for e in self.scoring.catalog.values()
            ]
        )

    async def GetRollout(self, request: object, context: grpc.aio.ServicerContext) -> pb.RolloutStatus:
        traffic = self.scoring.rollout
        if traffic is None:
            return pb.RolloutStatus(active=False, model=self.settings.rollout.model)
        rollout = traffic.controller
        snap: RolloutSnapshot = await run_in(HOUSEKEEPING, rollout.snapshot)
        return pb.RolloutStatus(
            active=True,
            model=rollout.model,
            mode=rollout.cfg.mode,
            state=rollout.state.name.lower(),
            canary_share=rollout.cfg.canary_share,
            champion=_arm(rollout.champion_version, snap.champion),
            challenger=_arm(rollout.challenger_version, snap.challenger),
            score_psi=snap.score_psi,
            reason=rollout.reason,
            running_for_s=snap.running_for_s,
            shadow_dropped=rollout.shadow_dropped,
        )


def _arm(version: str, a: ArmStats) -> pb.RolloutArm:
    return pb.RolloutArm(
        version=version, requests=a.requests, errors=a.errors, error_rate=a.error_rate, p95_seconds=a.p95_s,
        scores=a.n_scores,
        total_requests=a.total_requests, total_errors=a.total_errors,
    )
