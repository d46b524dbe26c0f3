"""Errors the engine raises for a request; the gateway maps each to one gRPC status."""

from __future__ import annotations


class LLMRequestError(ValueError):
    """A request the engine will not run (→ INVALID_ARGUMENT naming ``field``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self):  # survive pickling across Ray
        return (type(self), (self.field, self.reason))


class ContextLengthError(LLMRequestError):
    """Prompt plus requested output does not fit the model's context."""


class WaitingQueueFullError(RuntimeError):
    """The waiting queue is full (→ RESOURCE_EXHAUSTED): shed load instead of queueing forever."""


class EngineStoppedError(RuntimeError):
    """The engine loop is not running (→ UNAVAILABLE)."""


class EngineStalledError(EngineStoppedError):
    """The engine's loop is alive but stuck (a wedged step): not serving, as a stopped one."""


class BackendUnavailableError(RuntimeError):
    """The configured compute backend cannot run on this machine (the message says why)."""
