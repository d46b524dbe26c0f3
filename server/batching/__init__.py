"""Request coalescing: many small requests become one call across a costly boundary."""

from server.batching.coalescer import BatchQueueFullError, Coalescer, OverloadError, RequestTooLargeError

__all__ = ["BatchQueueFullError", "Coalescer", "OverloadError", "RequestTooLargeError"]
