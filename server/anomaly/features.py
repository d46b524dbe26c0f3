"""Feature matrices for training and serving, built the same way in both places.

Training on features computed one way and serving on features computed another is
the classic silent skew; both paths go through ``stream_matrix`` and the same
streaming kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from server.anomaly.model import StreamSpec

if TYPE_CHECKING:
    from kernels.stream_features import PendingUpdate, StreamFeatureState


def new_stream_state(n_features: int, spec: StreamSpec, max_entities: int) -> StreamFeatureState:
    from kernels.stream_features import StreamFeatureState

    return StreamFeatureState(n_features, window=spec.window, alpha=spec.alpha, max_entities=max_entities)


def stream_matrix(
    state: StreamFeatureState, keys: Sequence[str], raw: np.ndarray
) -> np.ndarray:
    """Raw columns followed by the per-entity stream features, float64, C-ordered."""
    stream = state.transform(keys, raw)
    return np.ascontiguousarray(np.hstack([raw.astype(np.float64, copy=False), stream]))


def stream_matrix_pending(
    state: StreamFeatureState, keys: Sequence[str], raw: np.ndarray
) -> tuple[np.ndarray, PendingUpdate]:
    """As :func:`stream_matrix`, for serving: the state change is committed only once the
    events' scores are returned, and rolled back otherwise (a shed or expired request must
    not count its events, or the client's retry would count them twice)."""
    stream, pending = state.transform_pending(keys, raw)
    return np.ascontiguousarray(np.hstack([raw.astype(np.float64, copy=False), stream])), pending


def training_matrix(
    df: pd.DataFrame,
    feature_columns: Sequence[str],
    entity_column: str | None,
    spec: StreamSpec | None,
) -> np.ndarray:
    """The matrix a model trains on: raw features, plus stream features in row order."""
    raw = df[list(feature_columns)].to_numpy(dtype=np.float64)
    if spec is None:
        return raw
    if entity_column is None:
        raise ValueError("stream features need an entity column")
    keys = df[entity_column].astype(str).tolist()
    state = new_stream_state(raw.shape[1], spec, max_entities=max(1, len(set(keys))))
    return stream_matrix(state, keys, raw)
