"""The Shuttle data replayed as timestamped events with entity keys: the pipeline's default example.

Why: ODDS Shuttle (shipped in river's wheel) is a table of readings without time or source; the
pipeline needs events. Each row becomes an event of one of ``entities`` devices, a fixed
``interval_s`` after the previous one, with a stable id, so a replay is reproducible and two
replays of one range are the same events (the dedup and idempotency tests rely on it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_START = "2026-01-01T00:00:00Z"


def shuttle_events(
    rows: int | None = None,
    entities: int = 64,
    start: str = DEFAULT_START,
    interval_s: float = 1.0,
    offset: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Shuttle rows ``offset .. offset+rows`` as events: ``event_id``, ``device``, ``ts``, f1..f9, ``anomaly``.

    Devices are drawn at random (seeded) so entities interleave as real feeds do."""
    from server.anomaly.data import load_shuttle

    data = load_shuttle()
    end = len(data) if rows is None else min(len(data), offset + rows)
    part = data.iloc[offset:end].reset_index(drop=True)
    idx = np.arange(offset, end)
    rng = np.random.default_rng(seed)
    devices = rng.integers(0, entities, size=len(data))[offset:end]
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC)
    ts = pd.Timestamp(t0) + pd.to_timedelta(idx * interval_s, unit="s")
    events = pd.DataFrame({
        "event_id": [f"shuttle-{i}" for i in idx],
        "device": [f"device-{d:03d}" for d in devices],
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    })
    return pd.concat([events, part], axis=1)


def write_events(df: pd.DataFrame, path: Path) -> Path:
    """Write events as CSV, JSON Lines or Parquet by the suffix."""
    from server.pipeline.drops import drop_format

    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = drop_format(path)
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path, index=False)
    return path
