"""Scores of short texts, remembered: a stream's opening words repeat across requests.

The streaming rails judge a stream's first window (one or two tokens: "Sure", "The", "To") before
anything is sent, so that judgement sits on the time to first token. Idle it costs ~7 ms; while the
engine decodes other streams on the same two cores it costs 20-30 ms (``bench.guardrails``), almost
all of it the embedder's forward pass competing with the engine for the cores. Openings come from a
small set, so their scores are kept here (bounded, least recently used first out) and only texts no
longer than ``max_chars`` are kept: long texts almost never repeat and would only churn the cache.
A score depends only on the text and the model that made it, so a hit returns exactly what a
recompute would.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ShortTextCache(Generic[V]):
    """A thread-safe LRU from (text, key) to a value, for texts of at most ``max_chars`` characters."""

    def __init__(self, capacity: int = 4096, max_chars: int = 48) -> None:
        if capacity < 0 or max_chars < 0:
            raise ValueError("capacity and max_chars must be >= 0")
        self.capacity = capacity
        self.max_chars = max_chars
        self._items: OrderedDict[tuple[str, Hashable], V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def lookup(self, texts: list[str], key: Hashable, compute: Callable[[list[str]], list[V]]) -> list[V]:
        """The value of every text: kept ones from the cache, the rest from one ``compute`` call
        (whose results for short texts are kept)."""
        out: list[V | None] = [None] * len(texts)
        missing: list[int] = []
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._items.get((t, key)) if len(t) <= self.max_chars else None
                if hit is None:
                    missing.append(i)
                else:
                    self._items.move_to_end((t, key))
                    out[i] = hit
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        if missing:
            values = compute([texts[i] for i in missing])
            if len(values) != len(missing):
                raise ValueError(f"compute returned {len(values)} values for {len(missing)} texts")
            with self._lock:
                for i, v in zip(missing, values, strict=True):
                    out[i] = v
                    if len(texts[i]) <= self.max_chars and self.capacity:
                        self._items[(texts[i], key)] = v
                        self._items.move_to_end((texts[i], key))
                        while len(self._items) > self.capacity:
                            self._items.popitem(last=False)
        return out  # type: ignore[return-value]
