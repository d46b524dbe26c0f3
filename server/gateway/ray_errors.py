"""What a Ray Serve call raised, as exceptions of our own, translated where the call crosses.

Ray wraps an exception a replica raised (``RayTaskError``; the original, with its fields, is its
``cause``) and raises exceptions of its own when it refuses or loses a call: ``BackPressureError``
when the deployment's queues are full, ``DeploymentUnavailableError`` / ``RayActorError`` /
``ActorUnavailableError`` when replicas are gone. The Ray endpoints translate at the crossing, so
the services map exception *types* to gRPC statuses and never look at class names in strings.
Ray is imported only when there is something to translate (the in-process endpoints never do).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from server.batching import OverloadError
from server.gateway.request_context import time_left

T = TypeVar("T")
#: how long a control call (info, stats, counters, health, tokenize) may take: these answer from
#: memory, so a replica that does not answer within it is wedged or gone
CONTROL_TIMEOUT_S = 10.0
#: what a stream may take beyond the deadline the engine itself enforces: the engine's own deadline
#: answer (a DEADLINE finish) should arrive first; this bound is for a replica that never answers
STREAM_SLACK_S = 5.0


class ReplicaBusyError(OverloadError):
    """Ray Serve refused the call: the deployment's replicas and queue are full (→ RESOURCE_EXHAUSTED)."""


class ReplicaLostError(RuntimeError):
    """No replica could take or finish the call: deployment unavailable, replica died (→ UNAVAILABLE)."""


class ReplicaTimeoutError(TimeoutError):
    """A replica took the call and did not answer in time: hung, not dead (→ DEADLINE_EXCEEDED for a
    request, NOT_SERVING for a health probe). Ray handle calls have no timeout of their own."""


async def bounded(call: Awaitable[T], timeout_s: float, what: str) -> T:
    """``call`` (a handle's ``.remote()``), translated by ``from_ray`` and bounded by ``timeout_s`` or
    what is left of the current request's deadline, whichever is shorter."""
    limit = time_left(timeout_s)
    try:
        return await asyncio.wait_for(call, limit)
    except TimeoutError:
        why = "the caller's deadline" if limit < timeout_s else "its bound"
        raise ReplicaTimeoutError(f"{what}: no answer from the replica within {limit:.1f} s ({why})") from None
    except Exception as exc:
        raise from_ray(exc) from exc


async def bounded_stream(stream: AsyncIterator[T], timeout_s: float, what: str) -> AsyncIterator[T]:
    """The items of ``stream`` while the whole of it takes at most ``timeout_s``: each wait for the
    next item gets what is left (a timeout around the generator would fire inside the consumer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    it = aiter(stream)
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise ReplicaTimeoutError(f"{what}: the replica's stream ran past {timeout_s:.1f} s")
        try:
            item = await asyncio.wait_for(anext(it), left)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ReplicaTimeoutError(f"{what}: no piece from the replica within {timeout_s:.1f} s") from None
        yield item


def unwrap(exc: BaseException) -> BaseException:
    """The exception raised in the replica: Ray's wrappers keep it as ``cause``."""
    for _ in range(8):
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException) or cause is exc:
            break
        exc = cause
    return exc


def from_ray(exc: BaseException) -> BaseException:
    """Ours for Ray's own refusals; the replica's own exception for a wrapped one; else unchanged."""
    cause = unwrap(exc)
    try:
        from ray.exceptions import ActorUnavailableError, RayActorError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
    except ImportError:  # no Ray here: nothing of Ray's to translate
        return cause
    if isinstance(cause, BackPressureError):
        return ReplicaBusyError(str(cause))
    if isinstance(cause, (DeploymentUnavailableError, RayActorError, ActorUnavailableError)):
        return ReplicaLostError(f"{type(cause).__name__}: {cause}")  # for the log: failures.py hides it
    return cause
