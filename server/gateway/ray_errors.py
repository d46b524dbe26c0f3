"""What a Ray Serve call raised, as exceptions of our own, translated where the call crosses.

Ray wraps an exception a replica raised (``RayTaskError``; the original, with its fields, is its
``cause``) and raises exceptions of its own when it refuses or loses a call: ``BackPressureError``
when the deployment's queues are full, ``DeploymentUnavailableError`` / ``RayActorError`` /
``ActorUnavailableError`` when replicas are gone. The Ray endpoints translate at the crossing, so
the services map exception *types* to gRPC statuses and never look at class names in strings.
Ray is imported only when there is something to translate (the in-process endpoints never do).
"""

from __future__ import annotations

from server.batching import OverloadError


class ReplicaBusyError(OverloadError):
    """Ray Serve refused the call: the deployment's replicas and queue are full (→ RESOURCE_EXHAUSTED)."""


class ReplicaLostError(RuntimeError):
    """No replica could take or finish the call: deployment unavailable, replica died (→ UNAVAILABLE)."""


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
