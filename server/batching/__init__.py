"""Request coalescing: many small requests become one call across a costly boundary."""

from server.batching.coalescer import Coalescer, QueueFullError

__all__ = ["Coalescer", "QueueFullError"]
