"""Request coalescing: many small requests become one call across a costly boundary."""

from server.batching.coalescer import Coalescer, QueueFullError, RequestTooLargeError

__all__ = ["Coalescer", "QueueFullError", "RequestTooLargeError"]
