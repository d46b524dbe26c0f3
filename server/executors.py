"""The gateway's worker threads, one sized pool per kind of blocking work.

``asyncio.to_thread`` runs everything in the loop's default executor: on 2 cores, 6 threads shared by
the input rails, FAISS searches, grounding, drift evaluation and rollout snapshots. One replica that
hangs (an embedder call waiting on a stuck Ray replica, say) then holds those threads and every other
kind of work queues behind it. Each kind gets its own pool here, so a stuck retrieval cannot starve
the rails or the drift loop, and a pool's size is the concurrency that kind of work may have.

- ``RAILS``: input and output rails, the chunk rail, grounding (embedding calls and small models);
- ``RETRIEVAL``: query embedding and FAISS search, ingestion;
- ``HOUSEKEEPING``: drift evaluation, rollout snapshots and verdicts (periodic, never urgent);
- ``SCORING``: anomaly requests the gateway scores itself that cost more than its inline budget
  (one thread: the tree kernels spread a large batch over the cores themselves);
- ``FEATURES``: online feature-store lookups for Score requests sent by entity key and event time
  (a SQLite or Redis read that waits on I/O; its own pool, so a slow store cannot hold up scoring).

Like ``asyncio.to_thread``, ``run_in`` carries the caller's context (request id, access-log fields)
into the thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from kernels.cpu_budget import usable_cpus

P = ParamSpec("P")
T = TypeVar("T")

# two each at least: a rail or a search waits on an embedder call as often as it computes
RAILS = ThreadPoolExecutor(max(2, usable_cpus()), thread_name_prefix="rails")
RETRIEVAL = ThreadPoolExecutor(max(2, usable_cpus()), thread_name_prefix="retrieval")
HOUSEKEEPING = ThreadPoolExecutor(2, thread_name_prefix="housekeeping")
SCORING = ThreadPoolExecutor(1, thread_name_prefix="gateway-score")
FEATURES = ThreadPoolExecutor(2, thread_name_prefix="online-features")


async def run_in(pool: ThreadPoolExecutor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in ``pool``, with this task's contextvars."""
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, call)
