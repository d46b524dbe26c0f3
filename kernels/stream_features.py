"""Per-entity rolling statistics over an event stream: API, references and dispatch.

Why: anomaly models score an event better when they see it against the recent behaviour of the
same entity (a device, an account). The server keeps, per entity, a fixed window of recent
values and an exponentially weighted mean, updated as events arrive, request after request, in
fixed memory: a ring buffer ``[max_entities, window, n_features]`` plus counts and EWMA state, and
a key -> slot map with least-recently-used eviction when it is full (an evicted entity that comes
back starts fresh).

Semantics per event of entity k and feature j, where H holds the last ``min(n_prev, window)``
non-NaN values of that entity and feature *before* this event:

* H empty: mean = x, std = 0, z = 0; otherwise mean = mean(H), std = population std(H) and
  z = (x - mean) / std if std > 1e-12 else 0.
* ewma: the first value sets it to x, later ones to ``alpha * x + (1 - alpha) * previous``; the
  value reported includes x.
* x is NaN: mean, std and ewma report the history unchanged (NaN without history), z is NaN, and
  that feature's state is not updated.

Events are processed in the given order, so an entity repeated inside one batch sees its own
earlier events, and one batch split into two calls gives the same result as one call. Mean and
std are recomputed from the buffer in chronological order (no running sums), so long streams do
not drift and every implementation performs the same floating-point operations.

Implementations: ``"numba"`` (compiled, default when numba is installed) and ``"reference"``
(the same array algorithm in plain Python). :func:`stream_features_reference` is an independent
oracle written with deques, used by the tests.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "STATS",
    "PendingUpdate",
    "ReferenceState",
    "StreamFeatureState",
    "available_backends",
    "stream_features_reference",
]

#: Backend names in order of preference for ``backend="auto"``.
BACKENDS: tuple[str, ...] = ("numba", "reference")
#: Output blocks, in column order; each block has one column per input feature.
STATS: tuple[str, ...] = ("mean", "std", "z", "ewma")
#: A standard deviation at or below this is treated as zero (z = 0) to avoid dividing by noise.
STD_EPS = 1e-12

UpdateFn = Callable[..., None]


def available_backends() -> list[str]:
    """Usable backends in order of preference (numba is found without importing it)."""
    names = ["reference"]
    if importlib.util.find_spec("numba") is not None:
        names.insert(0, "numba")
    return names


def update_python(
    slots: np.ndarray,
    fresh: np.ndarray,
    X: np.ndarray,
    buf: np.ndarray,
    counts: np.ndarray,
    ewma: np.ndarray,
    alpha: float,
    out: np.ndarray,
) -> None:
    """The array algorithm in plain Python: the "reference" implementation.

    ``slots[e]`` is event e's entity slot and ``fresh[e]`` is 1 when the slot was (re)assigned to
    a new entity at that event, so its state is cleared first. ``counts[s, j]`` counts the values
    ever stored for a slot and feature; the ring position of the next one is ``counts % window``.
    Writes features into ``out`` and updates ``buf``, ``counts`` and ``ewma`` in place. The numba
    kernel (kernels/numba/stream_features.py) performs the same operations in the same order.
    """
    n, nf = X.shape
    window = buf.shape[1]
    for e in range(n):
        s = int(slots[e])
        if fresh[e]:
            counts[s, :] = 0
        for j in range(nf):
            x = float(X[e, j])
            c = int(counts[s, j])
            h = min(c, window)
            mean = std = math.nan
            if h > 0:
                first = c - h
                total = 0.0
                for k in range(h):
                    total += float(buf[s, (first + k) % window, j])
                mean = total / h
                sq = 0.0
                for k in range(h):
                    d = float(buf[s, (first + k) % window, j]) - mean
                    sq += d * d
                std = math.sqrt(sq / h)
            if math.isnan(x):
                out[e, j] = mean
                out[e, nf + j] = std
                out[e, 2 * nf + j] = math.nan
                out[e, 3 * nf + j] = ewma[s, j] if c > 0 else math.nan
                continue
            if h == 0:
                mean, std, z = x, 0.0, 0.0
            else:
                z = (x - mean) / std if std > STD_EPS else 0.0
            e_new = x if c == 0 else alpha * x + (1.0 - alpha) * float(ewma[s, j])
            out[e, j] = mean
            out[e, nf + j] = std
            out[e, 2 * nf + j] = z
            out[e, 3 * nf + j] = e_new
            ewma[s, j] = e_new
            buf[s, c % window, j] = x
            counts[s, j] = c + 1


def _load_update(backend: str) -> UpdateFn:
    if backend == "reference":
        return update_python
    from kernels.numba.stream_features import update

    return update


@dataclass(slots=True, eq=False)
class _Record:
    """One update's inputs and what it overwrote: enough to undo it and to replay it."""

    keys: list[Hashable]
    X: np.ndarray
    update: UpdateFn
    committed: bool
    slots: np.ndarray
    buf: np.ndarray
    counts: np.ndarray
    ewma: np.ndarray
    ticks: list[int]  # the touched slots' last-use ticks (their recency)
    assigned: list[tuple[Hashable, int, Hashable | None]]  # (new key, its slot, key evicted from it)


class PendingUpdate:
    """A state change from :meth:`StreamFeatureState.transform_pending`, to commit or roll back once."""

    __slots__ = ("_record", "_state")

    def __init__(self, state: StreamFeatureState, record: _Record) -> None:
        self._state, self._record = state, record

    def commit(self) -> None:
        """The events' scores were returned: keep their effect on the state."""
        self._state._settle(self._record, keep=True)

    def rollback(self) -> None:
        """The events were not scored: the state becomes as if they had never arrived."""
        self._state._settle(self._record, keep=False)


class StreamFeatureState:
    """Rolling per-entity features, stateful across calls, in fixed memory.

    The arrays are allocated with ``np.zeros``, so the operating system commits their pages only
    as slots are first used: a large ``max_entities`` costs address space, not resident memory,
    until that many entities are seen. Calls are serialised by a lock, because the state is shared
    by every request that reaches this object.
    """

    def __init__(self, n_features: int, window: int = 32, alpha: float = 0.1, max_entities: int = 100_000) -> None:
        if not isinstance(n_features, int | np.integer) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        if not isinstance(window, int | np.integer) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        if not (isinstance(alpha, float | int) and 0.0 < alpha <= 1.0):
            raise ValueError(f"alpha must lie in (0, 1], got {alpha!r}")
        if not isinstance(max_entities, int | np.integer) or max_entities < 1:
            raise ValueError(f"max_entities must be a positive integer, got {max_entities!r}")
        self.n_features = int(n_features)
        self.window = int(window)
        self.alpha = float(alpha)
        self.max_entities = int(max_entities)
        self._buf = np.zeros((self.max_entities, self.window, self.n_features), dtype=np.float64)
        self._counts = np.zeros((self.max_entities, self.n_features), dtype=np.int64)
        self._ewma = np.zeros((self.max_entities, self.n_features), dtype=np.float64)
        # key -> slot, least recently used first. Each slot also keeps its last-use tick, which
        # travels with the slot data in an undo record; after a rollback the dict order is rebuilt
        # from the ticks before the next eviction, so recency is restored exactly, not only windows.
        self._slots: OrderedDict[Hashable, int] = OrderedDict()
        self._slot_tick: list[int] = [0] * self.max_entities
        self._clock = 0
        self._order_stale = False
        self._lock = threading.Lock()
        self._update: dict[str, UpdateFn] = {}
        # updates since the oldest unsettled transform_pending(), oldest first (empty when all settled)
        self._journal: list[_Record] = []

    @property
    def n_entities(self) -> int:
        """Entities currently holding a slot."""
        return len(self._slots)

    def reset(self) -> None:
        """Forget every entity (slots are cleared lazily when they are next assigned)."""
        with self._lock:
            self._slots.clear()
            self._order_stale = False
            self._journal.clear()

    @staticmethod
    def feature_names(columns: Sequence[str]) -> list[str]:
        """Output column names, e.g. ``f1__mean`` ... ``f1__ewma``, block by block."""
        return [f"{column}__{stat}" for stat in STATS for column in columns]

    def transform(self, keys: Sequence[Hashable], X: np.ndarray, backend: str = "auto") -> np.ndarray:
        """Features for a batch of events, updating the state: float64 ``[n, 4 * n_features]``.

        ``keys[i]`` names the entity of row ``i`` (any hashable; strings in practice). Rows are
        processed in order. Raises ``ValueError`` for a batch that is not 2-D, has the wrong
        number of features or a different number of keys than rows.
        """
        update = self._update.get(backend)
        if update is None:
            update = self._resolve(backend)
        X64, keys = self._check(keys, X)
        out = np.empty((X64.shape[0], 4 * self.n_features), dtype=np.float64)
        if X64.shape[0] == 0:
            return out
        with self._lock:
            if self._journal:  # pending updates exist: record this one too, so a rollback can replay it
                self._journal.append(self._apply(list(keys), X64, update, out, committed=True))
            else:
                slots, fresh = self._assign(keys)
                update(slots, fresh, X64, self._buf, self._counts, self._ewma, self.alpha, out)
        return out

    def transform_pending(
        self, keys: Sequence[Hashable], X: np.ndarray, backend: str = "auto"
    ) -> tuple[np.ndarray, PendingUpdate]:
        """Like :meth:`transform`, but the state change can still be undone.

        Why: a server computes features before it knows whether the events will be scored (the
        queue may shed them, a deadline may pass, a stream may abort). Counting events that were
        never answered would make a client's retry count them twice. The caller settles every
        update with ``commit()`` once the scores are returned, or ``rollback()``, which leaves the
        state exactly as if these events had never arrived: later updates (pending or committed)
        are undone and replayed in their order without these events. Their already-returned
        features are not changed. Unsettled updates are kept in memory, so settle each one.
        """
        update = self._update.get(backend) or self._resolve(backend)
        X64, keys = self._check(keys, X)
        out = np.empty((X64.shape[0], 4 * self.n_features), dtype=np.float64)
        with self._lock:
            record = self._apply(list(keys), X64, update, out, committed=False)
            self._journal.append(record)
        return out, PendingUpdate(self, record)

    def _check(self, keys: Sequence[Hashable], X: np.ndarray) -> tuple[np.ndarray, Sequence[Hashable]]:
        arr = np.asarray(X)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"X must hold real numbers, got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise ValueError(f"X must be 2-D (events, features), got {arr.ndim}-D")
        if arr.shape[1] != self.n_features:
            raise ValueError(f"X has {arr.shape[1]} features, the state tracks {self.n_features}")
        if isinstance(keys, str | bytes):
            raise ValueError("keys must be a sequence of entity keys, not a single string")
        if len(keys) != arr.shape[0]:
            raise ValueError(f"got {len(keys)} keys for {arr.shape[0]} rows of X")
        return np.ascontiguousarray(arr, dtype=np.float64), keys

    def _apply(
        self, keys: list[Hashable], X: np.ndarray, update: UpdateFn, out: np.ndarray, committed: bool
    ) -> _Record:
        """Assign slots, snapshot what the update will overwrite, run it (lock held)."""
        assigned: list[tuple[Hashable, int, Hashable | None]] = []
        ticks_before: dict[int, int] = {}
        slots, fresh = self._assign(keys, assigned, ticks_before)
        touched = np.unique(slots)
        record = _Record(
            keys, X, update, committed, touched,
            self._buf[touched].copy(), self._counts[touched].copy(), self._ewma[touched].copy(),
            [ticks_before[s] for s in touched.tolist()], assigned,
        )
        if len(keys):
            update(slots, fresh, X, self._buf, self._counts, self._ewma, self.alpha, out)
        return record

    def _undo(self, record: _Record) -> None:
        self._buf[record.slots] = record.buf
        self._counts[record.slots] = record.counts
        self._ewma[record.slots] = record.ewma
        table = self._slots
        for key, slot, evicted in reversed(record.assigned):
            if table.get(key) == slot:
                del table[key]
            if evicted is not None:
                table[evicted] = slot
        for slot, tick in zip(record.slots.tolist(), record.ticks, strict=True):
            self._slot_tick[slot] = tick
        self._order_stale = True  # the dict order no longer follows the ticks

    def _settle(self, record: _Record, keep: bool) -> None:
        with self._lock:
            try:
                i = next(k for k, r in enumerate(self._journal) if r is record)
            except StopIteration:
                return  # settled already, or dropped by reset()
            if not keep:
                later = self._journal[i + 1 :]
                for r in reversed(later):
                    self._undo(r)
                self._undo(record)
                del self._journal[i]
                for r in later:  # replay in order, without the rolled-back events
                    redone = self._apply(r.keys, r.X, r.update, np.empty((len(r.keys), 4 * self.n_features)),
                                         r.committed)
                    r.slots, r.buf, r.counts, r.ewma, r.ticks, r.assigned = (
                        redone.slots, redone.buf, redone.counts, redone.ewma, redone.ticks, redone.assigned)
            else:
                record.committed = True
            while self._journal and self._journal[0].committed:
                self._journal.pop(0)

    @property
    def pending_updates(self) -> int:
        """Updates handed out by :meth:`transform_pending` and not settled yet."""
        return sum(not r.committed for r in self._journal)

    def _resolve(self, backend: str) -> UpdateFn:
        if backend == "auto":
            backend = available_backends()[0]
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose 'auto' or one of {BACKENDS}")
        if backend not in available_backends():
            raise RuntimeError(f"backend {backend!r} is not available here (install numba)")
        fn = _load_update(backend)
        self._update[backend] = fn
        return fn

    def _assign(
        self,
        keys: Sequence[Hashable],
        assigned: list[tuple[Hashable, int, Hashable | None]] | None = None,
        ticks_before: dict[int, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Slot per event in event order, with LRU eviction; ``fresh`` marks (re)assigned slots.

        Done in Python because it is a dict walk; the kernel applies the resets at the right
        event, so an entity evicted by a later key of the same batch has finished using the slot.
        ``assigned`` and ``ticks_before`` collect what an undo needs (new keys and evictions in
        order; each touched slot's tick before this call).
        """
        table, slot_tick = self._slots, self._slot_tick
        slots = np.empty(len(keys), dtype=np.int64)
        fresh = np.zeros(len(keys), dtype=np.uint8)
        capacity = self.max_entities
        clock = self._clock
        for i, key in enumerate(keys):
            slot = table.get(key)
            if slot is not None:
                table.move_to_end(key)
            else:
                evicted = None
                if len(table) < capacity:
                    slot = len(table)
                else:
                    if self._order_stale:  # after a rollback: least recently used first again, by tick
                        table = self._slots = OrderedDict(sorted(table.items(), key=lambda kv: slot_tick[kv[1]]))
                        self._order_stale = False
                    evicted, slot = table.popitem(last=False)
                table[key] = slot
                fresh[i] = 1
                if assigned is not None:
                    assigned.append((key, slot, evicted))
            if ticks_before is not None and slot not in ticks_before:
                ticks_before[slot] = slot_tick[slot]
            clock += 1
            slot_tick[slot] = clock
            slots[i] = slot
        self._clock = clock
        return slots, fresh


# --------------------------------------------------------------------------------------------
# Independent oracle for the tests
# --------------------------------------------------------------------------------------------


@dataclass
class _Entity:
    history: list[deque[float]]
    ewma: list[float | None]


@dataclass
class ReferenceState:
    """State of :func:`stream_features_reference`: entities in least-recently-used order."""

    window: int
    alpha: float
    max_entities: int
    entities: OrderedDict[Any, _Entity] = field(default_factory=OrderedDict)


def stream_features_reference(
    keys: Sequence[Hashable],
    X: np.ndarray,
    window: int = 32,
    alpha: float = 0.1,
    max_entities: int = 100_000,
    state: ReferenceState | None = None,
) -> tuple[np.ndarray, ReferenceState]:
    """The semantics written as directly as possible (deques, one event at a time).

    Returns the features and the state to pass to the next call. Sums run oldest to newest with
    plain float additions, the order the ring-buffer implementations use, so results are expected
    to be bit-identical.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(keys) != X.shape[0]:
        raise ValueError("X must be 2-D with one key per row")
    state = state or ReferenceState(window, alpha, max_entities)
    alpha = state.alpha
    n, nf = X.shape
    out = np.empty((n, 4 * nf))
    for i, key in enumerate(keys):
        entity = state.entities.get(key)
        if entity is None:
            if len(state.entities) >= state.max_entities:
                state.entities.popitem(last=False)
            entity = _Entity([deque(maxlen=state.window) for _ in range(nf)], [None] * nf)
            state.entities[key] = entity
        else:
            state.entities.move_to_end(key)
        for j in range(nf):
            x = float(X[i, j])
            history = entity.history[j]
            if history:
                total = 0.0
                for v in history:
                    total += v
                mean = total / len(history)
                sq = 0.0
                for v in history:
                    sq += (v - mean) * (v - mean)
                std = math.sqrt(sq / len(history))
            else:
                mean = std = math.nan
            previous = entity.ewma[j]
            if math.isnan(x):
                row = (mean, std, math.nan, math.nan if previous is None else previous)
            else:
                if not history:
                    mean, std, z = x, 0.0, 0.0
                else:
                    z = (x - mean) / std if std > STD_EPS else 0.0
                new = x if previous is None else alpha * x + (1.0 - alpha) * previous
                entity.ewma[j] = new
                history.append(x)
                row = (mean, std, z, new)
            for block, value in enumerate(row):
                out[i, block * nf + j] = value
    return out, state
