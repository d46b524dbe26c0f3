"""AnomalyService: the servicer methods mirror the proto's RPC names.

Per request: validate (field-level errors), add per-entity stream features in
arrival order, then hand the rows to the coalescer, which merges concurrent
requests into one call into Ray. Stream features are computed here, in the single
gateway process, so entity state stays consistent however many scorer replicas run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import grpc
import numpy as np

from server.anomaly.drift_monitor import DriftMonitor, DriftStatus
from server.anomaly.features import new_stream_state, stream_matrix
from server.anomaly.scorer import ScoreResult
from server.batching import Coalescer, QueueFullError
from server.batching.coalescer import BatchStats
from server.config import Settings
from server.gateway import errors
from server.gateway.anomaly_backend import AnomalyBackend
from server.gateway.anomaly_catalog import CatalogEntry
from server.gateway.anomaly_validation import ParsedScoreRequest, parse_score_request
from server.gateway.request_context import current_request_id
from server.gen.stackserve.v1 import anomaly_pb2 as pb
from server.observability import metrics

if TYPE_CHECKING:
    from kernels.stream_features import StreamFeatureState

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
        """Install the served models' schemas; called once the backend is warm."""
        catalog = {info["name"]: CatalogEntry.from_info(info) for info in infos}
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
        return parse_score_request(request, self.catalog, cfg.default_model, cfg.default_stream_model)

    def _inputs(self, parsed: ParsedScoreRequest) -> np.ndarray:
        if parsed.entity_keys is None:
            return parsed.raw
        state = self.streams[parsed.model.name]
        X = stream_matrix(state, parsed.entity_keys, parsed.raw)
        metrics.STREAM_ENTITIES.labels(parsed.model.name).set(state.n_entities)
        return X

    async def _score(self, parsed: ParsedScoreRequest, X: np.ndarray, timeout: float) -> ScoreResult:
        name = parsed.model.name
        try:
            if self.coalescer is None:
                result = await asyncio.wait_for(self.backend.score(name, X, [current_request_id()]), timeout)
            else:
                result = await self.coalescer.submit(name, X, current_request_id(), timeout)
        except QueueFullError as exc:
            metrics.QUEUE_REJECTED.labels(name).inc()
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
        monitor = self.monitors.get(name)
        if monitor is not None:
            monitor.observe(X, result.scores)
        metrics.ANOMALY_EVENTS.labels(name).inc(len(result.scores))
        metrics.ANOMALY_FLAGGED.labels(name).inc(int(np.count_nonzero(result.is_anomaly)))
        return result

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
            result = await self._score(parsed, self._inputs(parsed), self._timeout(context))
        except errors.ServingError as err:
            await errors.abort(context, err)
        return self._response(result)

    async def ScoreStream(
        self, request_iterator: AsyncIterator[pb.ScoreRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ScoreResponse]:
        """Pipelined: messages are validated and featurised in order as they arrive,
        scored concurrently (up to STREAM_PIPELINE_DEPTH in flight) and answered in order."""
        pending: asyncio.Queue[asyncio.Task | errors.ServingError | None] = asyncio.Queue(STREAM_PIPELINE_DEPTH)

        async def reader() -> None:
            index = 0
            try:
                async for request in request_iterator:
                    try:
                        parsed = self._parse(request)
                        X = self._inputs(parsed)
                    except errors.ServingError as err:
                        err.reason = f"message {index}: {err.reason}"
                        await pending.put(err)
                        return
                    await pending.put(asyncio.ensure_future(self._score(parsed, X, self._timeout(context))))
                    index += 1
            finally:
                await pending.put(None)

        read_task = asyncio.create_task(reader())
        try:
            while True:
                item = await pending.get()
                if item is None:
                    break
                if isinstance(item, errors.ServingError):
                    await errors.abort(context, item)
                try:
                    result = await item
                except errors.ServingError as err:
                    await errors.abort(context, err)
                yield self._response(result)
        finally:
            read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read_task
            while not pending.empty():
                item = pending.get_nowait()
                if isinstance(item, asyncio.Task):
                    item.cancel()

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
