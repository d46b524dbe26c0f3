"""AnomalyService: the servicer methods mirror the proto's RPC names.

Per request: validate (field-level errors), add per-entity stream features in
arrival order, then hand the rows to the coalescer, which merges concurrent
requests into one call into Ray. Stream features are computed here, in the single
gateway process, so entity state stays consistent however many scorer replicas run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import grpc
import numpy as np

from server.anomaly.catalog import CatalogEntry
from server.anomaly.drift_monitor import DriftMonitor, DriftStatus
from server.anomaly.features import new_stream_state, stream_matrix_pending
from server.anomaly.scorer import ScoreResult
from server.batching import Coalescer, QueueFullError, RequestTooLargeError
from server.batching.coalescer import BatchStats
from server.config import Settings
from server.gateway.anomaly_backend import AnomalyBackend
from server.gateway.request_context import current_request_id
from server.gen.stackserve.v1 import anomaly_pb2 as pb
from server.observability import metrics
from server.protocol import errors
from server.protocol.anomaly_validation import ParsedScoreRequest, parse_score_request
from server.rollout import challenger_key
from server.rollout.controller import ArmStats, RolloutController, RolloutSnapshot, RolloutState
from server.rollout.router import CHALLENGER, CHAMPION, routing_key

if TYPE_CHECKING:
    from kernels.stream_features import PendingUpdate, StreamFeatureState

STREAM_PIPELINE_DEPTH = 64
log = logging.getLogger("stackserve.gateway")


def _replica_count(settings: Settings) -> int:
    cfg = settings.anomaly
    return cfg.max_replicas if cfg.num_replicas == "auto" else int(cfg.num_replicas)


class AnomalyService:
    def __init__(self, settings: Settings, backend: AnomalyBackend):
        self.settings = settings
        self.backend = backend
        self.catalog: dict[str, CatalogEntry] = {}
        self.streams: dict[str, StreamFeatureState] = {}
        self.monitors: dict[str, DriftMonitor] = {}
        self.drift_status: dict[str, DriftStatus] = {}
        self.rollout: RolloutController | None = None
        self.challenger: CatalogEntry | None = None
        self._shadow_tasks: set[asyncio.Task] = set()
        co = settings.coalescing
        self.coalescer: Coalescer[ScoreResult] | None = (
            Coalescer(
                self._dispatch,
                max_batch_rows=co.max_batch_events,
                max_wait_s=co.max_wait_ms / 1000,
                max_queue_rows=co.max_queue_events,
                max_inflight=co.max_inflight_batches * _replica_count(settings),
                on_batch=self._record_batch,
            )
            if co.enabled
            else None
        )

    # ----- lifecycle -------------------------------------------------------
    def load_catalog(self, infos: Sequence[dict]) -> None:
        """Install the served models' schemas; called once the backend is warm.

        A rollout challenger (``challenger_of`` set) stays out of the client-facing catalog:
        clients cannot pick it by name; only the rollout routes to it.
        """
        catalog = {info["name"]: CatalogEntry.from_info(info) for info in infos if not info.get("challenger_of")}
        challengers = {info["name"]: CatalogEntry.from_info(info) for info in infos if info.get("challenger_of")}
        cfg = self.settings.anomaly
        drift = self.settings.drift
        for entry in catalog.values():
            if entry.stream is not None and entry.name not in self.streams:
                self.streams[entry.name] = new_stream_state(entry.n_raw, entry.stream, cfg.stream_max_entities)
            if drift.enabled and entry.reference is not None and entry.name not in self.monitors:
                self.monitors[entry.name] = DriftMonitor(
                    entry.name, entry.reference, drift.window_events, drift.min_events,
                    drift.psi_warn, drift.psi_alert, drift.ks_alpha,
                )
                self.drift_status[entry.name] = DriftStatus.OK
        self.catalog = catalog
        if self.rollout is None:
            self._start_rollout(challengers)

    def _start_rollout(self, challengers: dict[str, CatalogEntry]) -> None:
        ro = self.settings.rollout
        if not ro.model:
            return
        key = challenger_key(ro.model, ro.challenger_version)
        champion, challenger = self.catalog.get(ro.model), challengers.get(key)
        if champion is None or challenger is None:
            log.error("rollout of %s not started: %s is not served", ro.model, ro.model if champion is None else key)
            return
        if (challenger.n_inputs, challenger.stream) != (champion.n_inputs, champion.stream):
            log.error("rollout of %s not started: challenger v%s takes other inputs than the champion",
                      ro.model, ro.challenger_version)
            return
        self.challenger = challenger
        self.rollout = RolloutController(ro, champion.version, self._promote_in_registry)

    def _promote_in_registry(self) -> None:
        """Move the champion alias to the challenger (called by the controller in a worker thread)."""
        from server.anomaly import registry

        ro = self.settings.rollout
        registry.promote(registry.connect(self.settings), ro.model, ro.challenger_version, self.settings.anomaly.alias)

    async def run_rollout_loop(self) -> None:
        """Evaluate the rollout every interval in a worker thread, off the request path."""
        while True:
            await asyncio.sleep(self.settings.rollout.eval_interval_s)
            rollout = self.rollout
            if rollout is None or rollout.state != RolloutState.RUNNING:
                continue
            try:
                snap = await asyncio.to_thread(rollout.evaluate)
            except Exception:  # keep evaluating; a broken window must not stop the loop
                log.exception("rollout evaluation failed for %s", rollout.model)
                continue
            if snap.state == RolloutState.PROMOTED and self.challenger is not None:
                # validation and ListModels now describe the version that answers
                self.catalog = {**self.catalog, rollout.model: dataclasses.replace(self.challenger, name=rollout.model)}

    async def run_drift_loop(self) -> None:
        """Recompute drift every interval in a worker thread, off the request path."""
        from server.observability.drift import publish

        while True:
            await asyncio.sleep(self.settings.drift.interval_s)
            for name, monitor in list(self.monitors.items()):
                try:
                    report = await asyncio.to_thread(monitor.evaluate)
                except Exception:  # a broken window must not stop monitoring of the others
                    log.exception("drift evaluation failed for %s", name)
                    continue
                self.drift_status[name] = publish(report, self.drift_status[name])

    @property
    def ready(self) -> bool:
        return bool(self.catalog)

    async def close(self) -> None:
        for task in list(self._shadow_tasks):
            task.cancel()
        if self.coalescer is not None:
            await self.coalescer.close()

    # ----- scoring path ----------------------------------------------------
    async def _dispatch(
        self, model: str, rows: np.ndarray, counts: Sequence[int], tags: Sequence[str]
    ) -> list[ScoreResult]:
        result = await self.backend.score(model, rows, tags)
        out, start = [], 0
        for n in counts:
            out.append(
                ScoreResult(
                    result.model,
                    result.version,
                    result.threshold,
                    result.scores[start : start + n],
                    result.is_anomaly[start : start + n],
                )
            )
            start += n
        return out

    @staticmethod
    def _record_batch(model: str, stats: BatchStats) -> None:
        metrics.BATCH_EVENTS.labels(model).observe(stats.rows)
        metrics.BATCH_REQUESTS.labels(model).observe(stats.requests)

    def _parse(self, request: object) -> ParsedScoreRequest:
        if not self.ready:
            raise errors.unavailable("models are still loading; retry shortly")
        cfg = self.settings.anomaly
        parsed = parse_score_request(request, self.catalog, cfg.default_model, cfg.default_stream_model)
        limit = self.coalescer.max_queue_rows if self.coalescer is not None else None
        if limit is not None and parsed.raw.shape[0] > limit:
            # permanent, not "retry later": this request can never fit however idle the server is
            raise errors.invalid(
                "features",
                f"{parsed.raw.shape[0]} events in one request exceed the limit of {limit} "
                "(coalescing.max_queue_events); split it into smaller requests",
            )
        return parsed

    def _inputs(self, parsed: ParsedScoreRequest) -> tuple[np.ndarray, PendingUpdate | None]:
        """The model's input rows, and for stream models the per-entity state change they made,
        which the caller commits once the scores are returned and rolls back otherwise."""
        if parsed.entity_keys is None:
            return parsed.raw, None
        state = self.streams[parsed.model.name]
        X, pending = stream_matrix_pending(state, parsed.entity_keys, parsed.raw)
        metrics.STREAM_ENTITIES.labels(parsed.model.name).set(state.n_entities)
        return X, pending

    async def _score_settled(
        self, parsed: ParsedScoreRequest, X: np.ndarray, pending: PendingUpdate | None, timeout: float
    ) -> ScoreResult:
        """Score, then keep the stream state change only if scores came back (any failure,
        cancellation included, rolls it back)."""
        if pending is None:
            return await self._score(parsed, X, timeout)
        try:
            result = await self._score(parsed, X, timeout)
        except BaseException:
            pending.rollback()
            raise
        pending.commit()
        return result

    async def _call(self, key: str, X: np.ndarray, timeout: float) -> ScoreResult:
        """One scoring call for a served key (a model, or a challenger), errors mapped to gRPC statuses."""
        try:
            if self.coalescer is None:
                return await asyncio.wait_for(self.backend.score(key, X, [current_request_id()]), timeout)
            return await self.coalescer.submit(key, X, current_request_id(), timeout)
        except RequestTooLargeError as exc:
            raise errors.invalid("features", str(exc)) from None
        except QueueFullError as exc:
            metrics.QUEUE_REJECTED.labels(key).inc()
            raise errors.exhausted(str(exc)) from None
        except TimeoutError:
            raise errors.deadline("deadline passed before the events were scored") from None
        except errors.ServingError:
            raise
        except Exception as exc:
            raise errors.unavailable(f"scorer failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if self.coalescer is not None:
                metrics.QUEUE_EVENTS.set(self.coalescer.queued_rows)

    async def _score(self, parsed: ParsedScoreRequest, X: np.ndarray, timeout: float) -> ScoreResult:
        name = parsed.model.name
        rollout = self.rollout
        if rollout is not None and rollout.model == name:
            result = await self._score_rollout(rollout, parsed, X, timeout)
        else:
            result = await self._call(name, X, timeout)
        monitor = self.monitors.get(name)
        if monitor is not None:
            monitor.observe(X, result.scores)
        metrics.ANOMALY_EVENTS.labels(name).inc(len(result.scores))
        metrics.ANOMALY_FLAGGED.labels(name).inc(int(np.count_nonzero(result.is_anomaly)))
        return result

    async def _score_rollout(
        self, rollout: RolloutController, parsed: ParsedScoreRequest, X: np.ndarray, timeout: float
    ) -> ScoreResult:
        """Canary: the hashed share goes to the challenger, and a failed challenger call is retried on
        the champion within the same deadline, so a bad challenger never fails a client request.
        Shadow: the champion answers; a copy goes to the challenger in the background."""
        name = parsed.model.name
        ckey = challenger_key(name, rollout.challenger_version)
        started = time.perf_counter()
        if rollout.arm_for(routing_key(parsed.entity_keys, current_request_id())) == CHALLENGER:
            try:
                result = await self._call(ckey, X, timeout)
            except errors.ServingError as err:
                if not _own_fault(err):
                    raise  # overload or the client's deadline: not the challenger's fault, not counted
                rollout.record(CHALLENGER, time.perf_counter() - started, ok=False)
                if rollout.state == RolloutState.PROMOTED:
                    raise  # the challenger is the champion now: nothing to fall back to
                metrics.ROLLOUT_REQUESTS.labels(name, CHAMPION, "fallback").inc()
                timeout = max(0.0, timeout - (time.perf_counter() - started))
            else:
                rollout.record(CHALLENGER, time.perf_counter() - started, ok=True, scores=result.scores)
                return dataclasses.replace(result, model=name)
        t0 = time.perf_counter()
        try:
            result = await self._call(name, X, timeout)
        except errors.ServingError as err:
            if _own_fault(err):
                rollout.record(CHAMPION, time.perf_counter() - t0, ok=False)
            raise
        rollout.record(CHAMPION, time.perf_counter() - t0, ok=True, scores=result.scores)
        if rollout.shadowing:
            if not self._shadow_has_room(len(X)):
                rollout.record_dropped()  # shed the copy: shadow traffic must never slow or shed live traffic
            else:
                task = asyncio.create_task(self._shadow(rollout, ckey, X))
                self._shadow_tasks.add(task)
                task.add_done_callback(self._shadow_tasks.discard)
        return result

    def _shadow_has_room(self, rows: int) -> bool:
        """Bounded shadowing: at most ``max_shadow_inflight`` copies, and never more than half the
        coalescer's queue, so copies cannot push live requests into RESOURCE_EXHAUSTED."""
        if len(self._shadow_tasks) >= self.settings.rollout.max_shadow_inflight:
            return False
        co = self.coalescer
        return co is None or co.queued_rows + rows <= co.max_queue_rows // 2

    async def _shadow(self, rollout: RolloutController, key: str, X: np.ndarray) -> None:
        started = time.perf_counter()
        try:
            result = await self._call(key, X, self.settings.gateway.default_timeout_s)
        except errors.ServingError as err:
            if _own_fault(err):
                rollout.record(CHALLENGER, time.perf_counter() - started, ok=False)
            else:
                rollout.record_dropped()  # shed or expired: the copy was never scored
        else:
            rollout.record(CHALLENGER, time.perf_counter() - started, ok=True, scores=result.scores)

    def _timeout(self, context: grpc.aio.ServicerContext) -> float:
        remaining = context.time_remaining()
        return self.settings.gateway.default_timeout_s if remaining is None else max(0.0, remaining)

    @staticmethod
    def _response(result: ScoreResult) -> pb.ScoreResponse:
        return pb.ScoreResponse(
            model=result.model,
            model_version=result.version,
            scores=result.scores.tolist(),
            is_anomaly=result.is_anomaly.tolist(),
            threshold=result.threshold,
        )

    # ----- RPCs ------------------------------------------------------------
    async def Score(self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext) -> pb.ScoreResponse:
        try:
            parsed = self._parse(request)
            X, pending = self._inputs(parsed)
            result = await self._score_settled(parsed, X, pending, self._timeout(context))
        except errors.ServingError as err:
            await errors.abort(context, err)
        return self._response(result)

    async def ScoreStream(
        self, request_iterator: AsyncIterator[pb.ScoreRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ScoreResponse]:
        """Pipelined: messages are validated and featurised in order as they arrive,
        scored concurrently (up to STREAM_PIPELINE_DEPTH in flight) and answered in order.

        A message's stream-state change is committed when its response is handed to gRPC; every
        message read ahead but not answered (an error, or the client going away) is rolled back,
        so a retry of the unanswered messages sees exactly the state an undisturbed run would."""
        Item = tuple[asyncio.Task, "PendingUpdate | None"]
        pending: asyncio.Queue[Item | errors.ServingError | None] = asyncio.Queue(STREAM_PIPELINE_DEPTH)

        async def reader() -> None:
            index = 0
            try:
                async for request in request_iterator:
                    try:
                        parsed = self._parse(request)
                        X, update = self._inputs(parsed)
                    except errors.ServingError as err:
                        err.reason = f"message {index}: {err.reason}"
                        await pending.put(err)
                        return
                    task = asyncio.ensure_future(self._score(parsed, X, self._timeout(context)))
                    try:
                        await pending.put((task, update))
                    except BaseException:
                        task.cancel()
                        if update is not None:
                            update.rollback()
                        raise
                    index += 1
            finally:
                await pending.put(None)

        def settle(item: Item, keep: bool) -> None:
            task, update = item
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
                    await errors.abort(context, err)
                in_hand = None
                settle(item, keep=True)
                yield self._response(result)
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
                for e in self.catalog.values()
            ]
        )

    async def GetRollout(self, request: object, context: grpc.aio.ServicerContext) -> pb.RolloutStatus:
        rollout = self.rollout
        if rollout is None:
            return pb.RolloutStatus(active=False, model=self.settings.rollout.model)
        snap: RolloutSnapshot = await asyncio.to_thread(rollout.snapshot)
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


def _own_fault(err: errors.ServingError) -> bool:
    """Whether a failed call is the model's own fault (the scorer raised). Overload (RESOURCE_EXHAUSTED),
    the client's deadline (DEADLINE_EXCEEDED) and rejected input say nothing about a model version, so
    the rollout controller must not count them against either arm."""
    return err.code not in (
        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INVALID_ARGUMENT,
    )


def _arm(version: str, a: ArmStats) -> pb.RolloutArm:
    return pb.RolloutArm(
        version=version, requests=a.requests, errors=a.errors, error_rate=a.error_rate, p95_seconds=a.p95_s,
        scores=a.n_scores,
        total_requests=a.total_requests, total_errors=a.total_errors,
    )
