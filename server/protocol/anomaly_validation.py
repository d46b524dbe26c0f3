"""Turn a ScoreRequest into a checked float32 matrix, or an error naming the field.

Runs in the gateway so that bad input never crosses into Ray, and is reused by the
deployment's own ``Score`` method (the Ray gRPC proxy baseline) so both entry
points reject the same things with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from server.anomaly.catalog import CatalogEntry
from server.protocol.errors import clip, invalid, not_found
from server.protocol.registration import check_decoded

MAX_ENTITY_KEY_BYTES = 256


@dataclass(slots=True)
class ParsedScoreRequest:
    model: CatalogEntry
    raw: np.ndarray  # float32 [n_events, n_raw]; [0, n_raw] when scored by entity (event_times_us set)
    entity_keys: list[str] | None
    # set: score by entity, the features read from the model's feature view at these times
    event_times_us: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        return len(self.event_times_us) if self.event_times_us is not None else self.raw.shape[0]


def parse_score_request(
    request: object,
    catalog: Mapping[str, CatalogEntry],
    default_model: str,
    default_stream_model: str,
) -> ParsedScoreRequest:
    check_decoded(request)
    keys = list(request.entity_keys)
    times = list(getattr(request, "event_times_us", ()))  # the Ray proxy baseline may carry an older message
    name = request.model or (default_stream_model if keys and not times else default_model)
    entry = catalog.get(name)
    if entry is None:
        raise not_found("model", f"unknown model {clip(name)!r}; serving {sorted(catalog)}")
    if times:
        return _parse_by_entity(request, entry, keys, times)
    nf = request.num_features
    if nf == 0:
        raise invalid("num_features", f"must be set to the features per event ({entry.n_raw} for {name!r})")
    if nf != entry.n_raw:
        raise invalid("num_features", f"model {name!r} takes {entry.n_raw} features per event, got {nf}")
    values = np.asarray(request.features, dtype=np.float32)
    if values.size == 0:
        raise invalid("features", "no events in the request")
    if values.size % nf:
        raise invalid("features", f"{values.size} values is not a multiple of num_features={nf}")
    raw = values.reshape(-1, nf)
    finite = np.isfinite(raw)
    if not finite.all():
        row, col = map(int, np.argwhere(~finite)[0])
        kind = "NaN" if np.isnan(raw[row, col]) else "infinite"
        raise invalid(
            "features",
            f"event {row} feature {entry.feature_names[col]!r} is {kind}; only finite values are accepted",
        )
    if request.feature_names and tuple(request.feature_names) != entry.feature_names:
        raise invalid(
            "feature_names",
            f"model {name!r} expects columns {list(entry.feature_names)}, got "
            f"{clip(str(list(request.feature_names)), 400)}",
        )
    if entry.stream is None:
        if keys:
            raise invalid(
                "entity_keys",
                f"model {name!r} was trained without stream features; omit entity_keys or use a stream model "
                f"such as {default_stream_model!r}",
            )
        return ParsedScoreRequest(entry, raw, None)
    if len(keys) != raw.shape[0]:
        raise invalid(
            "entity_keys", f"model {name!r} needs one entity key per event: {raw.shape[0]} events, {len(keys)} keys"
        )
    _check_keys(keys)
    return ParsedScoreRequest(entry, raw, keys)


def _check_keys(keys: list[str]) -> None:
    for i, key in enumerate(keys):
        if not key or len(key.encode()) > MAX_ENTITY_KEY_BYTES:
            raise invalid("entity_keys", f"key {i} must be 1..{MAX_ENTITY_KEY_BYTES} bytes")


def _parse_by_entity(request: object, entry: CatalogEntry, keys: list[str], times: list[int]) -> ParsedScoreRequest:
    """A request scored from the feature store: entity keys and event times, no feature values.
    Whether each entity has features at its time is only known after the lookup (the gateway
    answers those with INVALID_ARGUMENT too); everything checkable without the store is here."""
    name = entry.name
    if len(request.features):
        raise invalid("event_times_us", "give either features or entity_keys + event_times_us, not both")
    if entry.feature_view is None:
        raise invalid("event_times_us", f"model {name!r} was not trained from a feature view "
                      "(`train anomaly --feature-view`); send its features instead")
    if not keys:
        raise invalid("entity_keys", "event_times_us needs one entity key per event")
    if len(keys) != len(times):
        raise invalid("event_times_us", f"one time per entity key: {len(keys)} keys, {len(times)} times")
    if request.num_features and request.num_features != entry.n_raw:
        raise invalid("num_features", f"model {name!r} takes {entry.n_raw} features per event, "
                      f"got {request.num_features}")
    if request.feature_names and tuple(request.feature_names) != entry.feature_names:
        raise invalid("feature_names", f"model {name!r} expects columns {list(entry.feature_names)}, got "
                      f"{clip(str(list(request.feature_names)), 400)}")
    stamps = np.asarray(times, dtype=np.int64)
    if (bad := np.flatnonzero(stamps <= 0)).size:
        raise invalid("event_times_us", f"event {int(bad[0])}: times are epoch microseconds, > 0")
    _check_keys(keys)
    return ParsedScoreRequest(entry, np.empty((0, entry.n_raw), dtype=np.float32), keys, stamps)
