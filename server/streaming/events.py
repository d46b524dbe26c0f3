"""The events on the bus: JSON objects ``{"event_id", "entity", "ts", "features": {name: number}}``,
and the checks that tell a poison message from an event.

Why strict checks here, before anything is landed or scored: one message that cannot be scored must
not stop the stream (a consumer that fails on it, is redelivered it and fails again blocks every
event behind it). A message that fails any check is a poison message: the consumer sends it to the
dead-letter subject with the reason and acks it. Extra feature keys (a label, a tenant) are allowed
and land in bronze; only the model's features must be numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class PoisonMessage(ValueError):
    """The message cannot be an event; ``str()`` is the reason the dead letter carries."""


@dataclass(frozen=True, slots=True)
class BusEvent:
    """One event as received: id, entity, event time (ISO-8601 text), features, and the values the
    model scores (in the model's feature order)."""

    event_id: str
    entity: str
    ts: str
    features: dict[str, Any]
    values: tuple[float, ...]


def encode_event(event_id: str, entity: str, ts: str, features: dict[str, Any]) -> bytes:
    return json.dumps({"event_id": event_id, "entity": entity, "ts": ts, "features": features},
                      separators=(",", ":")).encode()


def _text(doc: dict, key: str) -> str:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise PoisonMessage(f"field {key!r} must be a non-empty string, got {value!r:.80}")
    return str(value)


def decode_event(data: bytes, feature_names: Sequence[str]) -> BusEvent:
    """The event in ``data``, or ``PoisonMessage`` naming what is wrong (not JSON, not an object, a
    missing or mistyped field, an unparseable timestamp, a model feature missing, not a finite number)."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PoisonMessage(f"not a JSON object: {type(doc).__name__}")
    event_id, entity, ts = _text(doc, "event_id"), _text(doc, "entity"), _text(doc, "ts")
    try:
        datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        raise PoisonMessage(f"field 'ts' is not an ISO-8601 time: {ts!r:.80}") from None
    features = doc.get("features")
    if not isinstance(features, dict):
        raise PoisonMessage(f"field 'features' must be an object, got {type(features).__name__}")
    values = []
    for name in feature_names:
        v = features.get(name)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise PoisonMessage(f"feature {name!r} must be a number, got {v!r:.80}")
        if not math.isfinite(v):
            raise PoisonMessage(f"feature {name!r} is not finite: {v!r}")
        values.append(float(v))
    return BusEvent(event_id, entity, ts, features, tuple(values))


def bronze_payload(event: BusEvent, event_id_col: str, entity_col: str, ts_col: str) -> str:
    """The event as bronze stores a row: one flat JSON object, every value as text (as a CSV drop's
    cells are), under the pipeline spec's column names, so silver types and validates it unchanged."""
    row: dict[str, str | None] = {event_id_col: event.event_id, entity_col: event.entity, ts_col: event.ts}
    for k, v in event.features.items():
        row.setdefault(k, None if v is None else str(v))
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def frame_events(rows: Iterable[dict[str, Any]], event_id: str, entity: str, ts: str) -> list[tuple[str, bytes]]:
    """Records (a replay's rows) as ``(event_id, message)`` pairs: the role columns become the event's
    fields, every other column a feature."""
    out = []
    for r in rows:
        features = {k: v for k, v in r.items() if k not in (event_id, entity, ts)}
        eid = str(r[event_id])
        out.append((eid, encode_event(eid, str(r[entity]), str(r[ts]), features)))
    return out
