"""Errors that map to gRPC status codes, with the field and the reason.

Handlers raise ``ServingError``; one place (``abort``) turns it into a status, so
every code means the same thing everywhere (docs/design/llm_serving.md, "Errors").
"""

from __future__ import annotations

import grpc

#: A status's details travel in HTTP/2 trailers, which gRPC caps at 8 KiB of metadata by default:
#: past it the client gets RESOURCE_EXHAUSTED instead of the real status. Details echo user input
#: (a model name, a role), so they are clipped well below the cap.
MAX_DETAILS_CHARS = 1024


def clip(text: str, limit: int = 120) -> str:
    """User input quoted in an error: at most ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


class ServingError(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, field: str | None = None):
        super().__init__(reason)
        self.code = code
        self.field = field
        self.reason = reason

    @property
    def details(self) -> str:
        text = f"{self.field}: {self.reason}" if self.field else self.reason
        return clip(text, MAX_DETAILS_CHARS)


def invalid(field: str, reason: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, reason, field)


def not_found(field: str, reason: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, reason, field)


def unavailable(reason: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNAVAILABLE, reason)


def exhausted(reason: str) -> ServingError:
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, reason)


def deadline(reason: str) -> ServingError:
    return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, reason)


async def abort(context: grpc.aio.ServicerContext, err: ServingError) -> None:
    await context.abort(err.code, err.details)
