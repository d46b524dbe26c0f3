"""Batch inference on Ray Data: Parquet/CSV files or folders scored by the compiled scorer in an
actor pool across the cluster, streamed to Parquet.

For the offline jobs the gRPC path is the wrong tool: a million events would cross the gateway in
request-sized pieces. Here each actor loads the registered models once (the same loader as the
Serve replicas, so the same champion and the same compiled kernels) and scores whole blocks;
Ray Data streams blocks from the readers through the actors to the Parquet writers, so memory
stays bounded by the blocks in flight, not by the input. Stream-feature models are refused: their
per-entity state needs every entity's events in order, which a parallel pass does not give.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from server.config import Settings

if TYPE_CHECKING:
    from server.anomaly.model import ModelCard

SUFFIXES = {".parquet": "parquet", ".csv": "csv"}


class BatchInputError(ValueError):
    """An input or option the batch job cannot use (the message names it)."""


@dataclass(frozen=True, slots=True)
class BatchReport:
    model: str
    version: str
    rows: int
    anomalies: int
    seconds: float
    output: str

    @property
    def events_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def input_files(paths: list[str]) -> dict[str, list[str]]:
    """Files by format: each path a .parquet/.csv file or a folder of them (searched recursively)."""
    found: dict[str, list[str]] = {"parquet": [], "csv": []}
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in SUFFIXES and f.is_file())
            if not files:
                raise BatchInputError(f"{p}: no .parquet or .csv files in this folder")
        elif p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise BatchInputError(f"{p}: batch scoring reads .parquet and .csv files")
            files = [p]
        else:
            raise BatchInputError(f"{p}: no such file or folder")
        for f in files:
            found[SUFFIXES[f.suffix.lower()]].append(str(f))
    return found


class ScoreBlocks:
    """The actor: models loaded once, then one scorer call per block (Ray Data's callable class)."""

    def __init__(self, settings_json: str, model: str) -> None:
        from server.anomaly.scorer import load_scorer

        self.scorer = load_scorer(Settings.model_validate_json(settings_json))
        self.model = model
        self.columns = list(self.scorer.model(model).card.feature_names)

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        X = block[self.columns].to_numpy(dtype=np.float32)
        result = self.scorer.score(self.model, X)
        out = block.copy()
        out["score"] = result.scores
        out["is_anomaly"] = result.is_anomaly
        return out


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What a batch job will do, settled before any Ray work: the model and the files by format."""

    model: str
    card: ModelCard
    files: dict[str, list[str]]


def _columns(path: str, fmt: str) -> set[str]:
    """The file's column names from its header alone (a Parquet schema, a CSV's first line)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return set(pq.read_schema(path).names)
    return {str(c) for c in pd.read_csv(path, nrows=0).columns}


def plan_batch(settings: Settings, inputs: list[str], model: str = "", batch_size: int = 8192) -> BatchPlan:
    """Every check that needs no Ray (the model exists and takes no stream features, the inputs exist and
    every file has the model's columns), so a bad job is refused in seconds, before a Ray head starts
    and before any actor loads a model. Raises ``BatchInputError`` naming what is wrong."""
    from server.anomaly.scorer import load_scorer

    if batch_size <= 0:
        raise BatchInputError(f"batch size must be positive, got {batch_size}")
    name = model or settings.anomaly.default_model
    local = load_scorer(settings)
    if name not in local.models:
        raise BatchInputError(f"unknown model {name!r}; registered: {sorted(local.models)}")
    card = local.model(name).card
    if card.stream is not None:
        raise BatchInputError(f"model {name!r} uses stream features (per-entity state in event order); "
                              "batch scoring takes models without them")
    files = input_files(inputs)
    for fmt, paths in files.items():
        for path in paths:
            columns = _columns(path, fmt)
            missing = [c for c in card.feature_names if c not in columns]
            if missing:
                raise BatchInputError(f"{path}: the input lacks columns {missing} that model {name!r} needs")
    return BatchPlan(name, card, files)


def score_files(settings: Settings, plan: BatchPlan, output: str, batch_size: int = 8192,
                actors: int | tuple[int, int] = (1, 4)) -> BatchReport:
    """Score every row of ``plan``'s files (``plan_batch``: checked before any Ray work) with its model
    into Parquet files under ``output``. Ray must be initialized (the CLI connects: a cluster or a
    private head)."""
    import ray.data

    name, card, files = plan.model, plan.card, plan.files
    parts = []
    if files["parquet"]:
        parts.append(ray.data.read_parquet(files["parquet"]))
    if files["csv"]:
        parts.append(ray.data.read_csv(files["csv"]))
    ds = parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])
    started = time.perf_counter()
    scored = ds.map_batches(
        ScoreBlocks, fn_constructor_kwargs={"settings_json": settings.model_dump_json(), "model": name},
        batch_format="pandas", batch_size=batch_size, concurrency=actors, num_cpus=1,
    )
    scored.write_parquet(output)
    seconds = time.perf_counter() - started
    written = ray.data.read_parquet(output, columns=["is_anomaly"])
    rows = written.count()
    anomalies = int(written.sum("is_anomaly") or 0) if rows else 0
    return BatchReport(name, card.version, rows, anomalies, seconds, output)


def describe(report: BatchReport) -> dict[str, Any]:
    return {"model": report.model, "version": report.version, "rows": report.rows,
            "anomalies": report.anomalies, "seconds": round(report.seconds, 3),
            "events_per_s": round(report.events_per_s, 1), "output": report.output}
