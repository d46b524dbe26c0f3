"""Which arm answers a canary request: a stable hash of the entity key, else of the request id.

blake2b rather than Python's ``hash()``: string hashing is salted per process, and an entity must
land on the same version across gateway restarts and across gateways. A request is routed as a
whole (by its first entity key) because its response carries one ``model_version``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

CHAMPION = "champion"
CHALLENGER = "challenger"
_SCALE = float(1 << 64)


def bucket(key: str) -> float:
    """A uniform number in [0, 1) fixed by ``key``."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / _SCALE


def routing_key(entity_keys: Sequence[str] | None, request_id: str) -> str:
    """The entity when there is one (so an entity sticks to one version), else the request id."""
    return entity_keys[0] if entity_keys else request_id


def choose_arm(key: str, share: float) -> str:
    """CHALLENGER for a ``share`` of keys, CHAMPION for the rest; the same key always gets the same arm."""
    return CHALLENGER if share > 0 and bucket(key) < share else CHAMPION
