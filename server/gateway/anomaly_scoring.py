"""What a Score request does in the gateway once it is parsed, free of gRPC.

Per request: add per-entity stream features in arrival order (committed only once the scores come
back), score, route the rolled-out model through its rollout, and feed the drift monitors. Where a
request is scored depends on its size: up to ``anomaly.in_gateway_max_events`` events, by the
gateway's own copy of the models, inline on the event loop (a tree ensemble scores an event in
microseconds, while a crossing into Ray costs ~3 ms of latency and CPU on both sides); above, the
coalescer merges concurrent requests into one call into the Ray deployment, whose replicas are the
scale-out path (more cores, more machines). Stream features are
computed here, in the single gateway process, so entity state stays consistent however many scorer
replicas run. Failures leave as the scoring path's own exceptions (``OverloadError``,
``RequestTooLargeError``, ``TimeoutError``, or what the scorer raised); the servicer
(``anomaly_service.py``) is the one place they become gRPC statuses.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from server.anomaly.catalog import CatalogEntry
from server.anomaly.features import new_stream_state, stream_matrix_pending
from server.anomaly.scorer import AnomalyScorer, ScoreResult
from server.batching import BatchQueueFullError, Coalescer
from server.batching.coalescer import BatchStats
from server.config import Settings
from server.drift.loop import DriftLoop
from server.executors import FEATURES, SCORING, run_in
from server.gateway.anomaly_endpoint import AnomalyEndpoint
from server.gateway.request_context import current_request_id, time_left
from server.observability import metrics
from server.protocol.anomaly_validation import ParsedScoreRequest
from server.rollout.router import routing_key
from server.rollout.traffic import RolloutTraffic

if TYPE_CHECKING:
    from kernels.stream_features import PendingUpdate, StreamFeatureState
    from server.pipeline.online_features import OnlineFeatureReader

log = logging.getLogger("stackserve.gateway")


def _inflight_limit(settings: Settings) -> int:
    """Coalesced calls the gateway keeps in flight into Ray. Fixed replicas: ``max_inflight_batches``
    each (1 measured best on 2 cores). Autoscaling: one more than the autoscaler's target per replica
    at the maximum, so that under saturation every replica shows load above target and Serve adds
    replicas (capped at the target, the load could never exceed it and the deployment never grew)."""
    cfg, co = settings.anomaly, settings.coalescing
    if cfg.num_replicas == "auto":
        return cfg.max_replicas * max(co.max_inflight_batches, cfg.target_ongoing_requests + 1)
    return co.max_inflight_batches * int(cfg.num_replicas)


class AnomalyScoring:
    def __init__(self, settings: Settings, endpoint: AnomalyEndpoint) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.catalog: dict[str, CatalogEntry] = {}
        self.streams: dict[str, StreamFeatureState] = {}
        self.drift = DriftLoop(settings.drift)
        self.rollout: RolloutTraffic | None = None
        # the gateway's own copy of the models (attach_local), and the keys it may score: those
        # whose version matches what the endpoint serves
        self.local: AnomalyScorer | None = None
        self.local_keys: frozenset[str] = frozenset()
        self.local_max_rows = settings.anomaly.in_gateway_max_events
        self.inline_budget_s = settings.anomaly.in_gateway_inline_budget_ms / 1000
        self._row_cost_s: dict[str, float] = {}  # measured seconds per event, by key (a moving average)
        # online feature readers by view (NAME:VERSION), opened on the first request that needs one:
        # importing feast costs seconds, so a gateway serving no feature-view model never pays it
        self._readers: dict[str, OnlineFeatureReader] = {}
        self._readers_lock = threading.Lock()
        co = settings.coalescing
        self.coalescer: Coalescer[ScoreResult] | None = (
            Coalescer(
                self._dispatch,
                max_batch_rows=co.max_batch_events,
                max_wait_s=co.max_wait_ms / 1000,
                max_queue_rows=co.max_queue_events,
                max_inflight=_inflight_limit(settings),
                on_batch=self._record_batch,
                max_queue_delay_s=None if co.max_queue_delay_ms is None else co.max_queue_delay_ms / 1000,
                admission_factor=co.admission_factor if co.admission else None,
                admission_floor_s=co.admission_floor_ms / 1000,
            )
            if co.enabled
            else None
        )

    # ----- lifecycle -------------------------------------------------------
    def load_catalog(self, infos: Sequence[dict]) -> None:
        """Install the served models' schemas; called once the endpoint is warm.

        A rollout challenger (``challenger_of`` set) stays out of the client-facing catalog:
        clients cannot pick it by name; only the rollout routes to it.
        """
        catalog = {info["name"]: CatalogEntry.from_info(info) for info in infos if not info.get("challenger_of")}
        challengers = {info["name"]: CatalogEntry.from_info(info) for info in infos if info.get("challenger_of")}
        for entry in catalog.values():
            if entry.stream is not None and entry.name not in self.streams:
                self.streams[entry.name] = new_stream_state(
                    entry.n_raw, entry.stream, self.settings.anomaly.stream_max_entities
                )
            self.drift.watch(entry)
        self.catalog = catalog
        if self.rollout is None:
            self.rollout = RolloutTraffic.start(
                self.settings.rollout, catalog, challengers, self._promote_in_registry, self.call,
                self._queue_has_room, self.settings.gateway.default_timeout_s,
            )

    def attach_local(self, scorer: AnomalyScorer, infos: Sequence[dict]) -> None:
        """Score small requests with ``scorer`` in this process, for every key whose version is the
        one the endpoint serves (a copy loaded while a promotion moved the alias stays unused for
        the keys that differ, which keep going to the endpoint)."""
        served = {info["name"]: str(info["version"]) for info in infos}
        same = frozenset(
            info["name"] for info in scorer.info() if served.get(info["name"]) == str(info["version"])
        )
        if differ := sorted(served.keys() - same):
            log.warning("in-gateway scoring skips %s: versions differ from the endpoint's", differ)
        self.local, self.local_keys = scorer, same

    def _promote_in_registry(self) -> None:
        """Move the champion alias to the challenger (called by the controller in a worker thread)."""
        from server.anomaly import registry

        ro = self.settings.rollout
        registry.promote(registry.connect(self.settings), ro.model, ro.challenger_version, self.settings.anomaly.alias)

    def _promoted(self, entry: CatalogEntry) -> None:
        # validation and ListModels now describe the version that answers
        self.catalog = {**self.catalog, entry.name: entry}

    async def run_rollout(self) -> None:
        """The rollout's evaluation loop (returns at once when no rollout runs)."""
        if self.rollout is not None:
            await self.rollout.run(self._promoted)

    @property
    def ready(self) -> bool:
        return bool(self.catalog)

    @property
    def max_request_rows(self) -> int | None:
        """The most events one request may carry (the coalescer's queue), None without a limit."""
        return self.coalescer.max_queue_rows if self.coalescer is not None else None

    async def close(self) -> None:
        if self.rollout is not None:
            await self.rollout.close()
        if self.coalescer is not None:
            await self.coalescer.close()

    # ----- scoring path ----------------------------------------------------
    async def _dispatch(
        self, model: str, rows: np.ndarray, counts: Sequence[int], tags: Sequence[str]
    ) -> list[ScoreResult]:
        result = await self.endpoint.score(model, rows, tags)
        out, start = [], 0
        for n in counts:
            out.append(result.rows(start, start + n))
            start += n
        return out

    @staticmethod
    def _record_batch(model: str, stats: BatchStats) -> None:
        metrics.BATCH_EVENTS.labels(model).observe(stats.rows)
        metrics.BATCH_REQUESTS.labels(model).observe(stats.requests)

    def _queue_has_room(self, rows: int) -> bool:
        """Room for a shadow copy: never more than half the coalescer's queue, so copies cannot
        push live requests into RESOURCE_EXHAUSTED."""
        co = self.coalescer
        return co is None or co.queued_rows + rows <= co.max_queue_rows // 2

    def inputs(self, parsed: ParsedScoreRequest) -> tuple[np.ndarray, PendingUpdate | None]:
        """The model's input rows, and for stream models the per-entity state change they made,
        which the caller commits once the scores are returned and rolls back otherwise."""
        if parsed.entity_keys is None:
            return parsed.raw, None
        state = self.streams[parsed.model.name]
        X, pending = stream_matrix_pending(state, parsed.entity_keys, parsed.raw)
        metrics.STREAM_ENTITIES.labels(parsed.model.name).set(state.n_entities)
        return X, pending

    def _reader(self, view: str) -> OnlineFeatureReader:
        """The reader of ``view``, opened once (in a worker thread: it imports feast and opens the
        store). Its columns must be the model's, in order, or the rows would feed the wrong inputs."""
        with self._readers_lock:
            reader = self._readers.get(view)
            if reader is None:
                from server.pipeline.feature_store import OnlineStore
                from server.pipeline.online_features import OnlineFeatureReader
                from server.pipeline.spec import load_spec
                from server.pipeline.tables import Layout

                layout = Layout(self.settings.pipeline_dir)
                cfg = self.settings.pipeline
                reader = OnlineFeatureReader(layout, load_spec(layout.spec).entity, view,
                                             OnlineStore(cfg.online_store, cfg.redis_url))
                self._readers[view] = reader
            return reader

    def _online_rows(self, parsed: ParsedScoreRequest) -> np.ndarray:
        """One lookup for the request's events (worker thread); bad input as ``ServingError``."""
        from server.pipeline.online_features import MissingEntityError, StaleEventError
        from server.protocol.errors import invalid

        entry = parsed.model
        reader = self._reader(entry.feature_view)
        if tuple(reader.features) != entry.feature_names:
            raise RuntimeError(f"feature view {entry.feature_view} serves {reader.features}, model {entry.name!r} "
                               f"takes {list(entry.feature_names)}")
        try:
            batch = reader.read(parsed.entity_keys, parsed.event_times_us)
        except MissingEntityError as exc:
            raise invalid("entity_keys", str(exc)) from exc
        except StaleEventError as exc:
            raise invalid("event_times_us", str(exc)) from exc
        X = batch.features.astype(np.float32)
        incomplete = ~np.isfinite(X).all(axis=1)
        if incomplete.any():
            i = int(np.flatnonzero(incomplete)[0])
            raise invalid("entity_keys", f"event {i}: {parsed.entity_keys[i]!r} has incomplete online features "
                          "(too little history for the view's statistics); score it with features")
        return X

    async def online_inputs(self, parsed: ParsedScoreRequest, timeout: float) -> np.ndarray:
        """The model's input rows read from its feature view's online store: one lookup for the whole
        request, in the FEATURES pool (never on the event loop), bounded by the request's deadline."""
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(run_in(FEATURES, self._online_rows, parsed), time_left(timeout))
        finally:
            metrics.ONLINE_FEATURES_SECONDS.observe(time.perf_counter() - started)

    async def score_settled(
        self, parsed: ParsedScoreRequest, X: np.ndarray, pending: PendingUpdate | None, timeout: float
    ) -> ScoreResult:
        """Score, then keep the stream state change only if scores came back (any failure,
        cancellation included, rolls it back)."""
        if pending is None:
            return await self.score(parsed, X, timeout)
        try:
            result = await self.score(parsed, X, timeout)
        except BaseException:
            pending.rollback()
            raise
        pending.commit()
        return result

    async def call(self, key: str, X: np.ndarray, timeout: float) -> ScoreResult:
        """One scoring call for a served key (a model, or a challenger)."""
        local = self.local
        if local is not None and X.shape[0] <= self.local_max_rows and key in self.local_keys:
            if timeout <= 0:
                raise TimeoutError("deadline passed before the events were scored")
            result = await self._score_here(local, key, X)
            metrics.ANOMALY_IN_GATEWAY.labels(key).inc(X.shape[0])
            return result
        try:
            if self.coalescer is None:
                return await asyncio.wait_for(self.endpoint.score(key, X, [current_request_id()]), timeout)
            return await self.coalescer.submit(key, X, current_request_id(), timeout)
        except BatchQueueFullError:
            metrics.QUEUE_REJECTED.labels(key).inc()
            raise
        finally:
            if self.coalescer is not None:
                metrics.QUEUE_EVENTS.set(self.coalescer.queued_rows)

    async def _score_here(self, local: AnomalyScorer, key: str, X: np.ndarray) -> ScoreResult:
        """Inline on the loop when the measured cost is under the budget (microseconds of kernel
        time cost less than any hop to a thread); else in the gateway's scoring thread. A model
        not yet measured is measured in the thread."""
        per_row = self._row_cost_s.get(key)
        started = time.perf_counter()
        if per_row is not None and per_row * X.shape[0] <= self.inline_budget_s:
            result = local.score(key, X)
        else:
            result = await run_in(SCORING, local.score, key, X)
        took = (time.perf_counter() - started) / max(1, X.shape[0])
        self._row_cost_s[key] = took if per_row is None else 0.9 * per_row + 0.1 * took
        return result

    async def score(self, parsed: ParsedScoreRequest, X: np.ndarray, timeout: float) -> ScoreResult:
        name = parsed.model.name
        rollout = self.rollout
        if rollout is not None and rollout.model == name:
            result = await rollout.score(routing_key(parsed.entity_keys, current_request_id()), X, timeout)
        else:
            result = await self.call(name, X, timeout)
        self.drift.observe(name, X, result.scores)
        metrics.ANOMALY_EVENTS.labels(name).inc(len(result.scores))
        metrics.ANOMALY_FLAGGED.labels(name).inc(int(np.count_nonzero(result.is_anomaly)))
        return result
