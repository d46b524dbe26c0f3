"""The servable anomaly model: a compiled forest plus what serving needs to know.

Serving never unpickles anything: the artifact is a directory with the forest's
flat arrays (``forest.npz``, loaded with ``allow_pickle=False``) and a JSON card,
so a model directory from elsewhere cannot execute code when loaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kernels.tree_ensemble import FlatForest, score
from server.anomaly.reference import ReferenceProfile

STREAM_STATS = ("mean", "std", "z", "ewma")


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """Per-entity rolling features computed over every raw column."""

    window: int = 32
    alpha: float = 0.1


@dataclass(slots=True)
class ModelCard:
    """Everything about a model except its arrays."""

    name: str
    kind: str
    feature_names: list[str]
    threshold: float
    score_sign: float
    stream: StreamSpec | None = None
    version: str = ""
    run_id: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    # ``NAME:VERSION`` of the feature view the model was trained from (``--feature-view``), read from
    # the run's MLflow tags at load time: the gateway looks up online features from that view
    feature_view: str = ""

    @property
    def n_raw(self) -> int:
        return len(self.feature_names)

    @property
    def input_names(self) -> list[str]:
        """Columns of the matrix the forest scores: raw, then stream blocks."""
        if self.stream is None:
            return list(self.feature_names)
        blocks = [f"{c}__{stat}" for stat in STREAM_STATS for c in self.feature_names]
        return [*self.feature_names, *blocks]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        data = dict(data)
        stream = data.pop("stream", None)
        try:
            card = cls(**data, stream=StreamSpec(**stream) if stream else None)
        except TypeError as exc:
            raise ValueError(f"malformed model card: {exc}") from exc
        if card.score_sign not in (1.0, -1.0):
            raise ValueError(f"malformed model card: score_sign must be +1 or -1, got {card.score_sign}")
        return card


class ServableModel:
    """A compiled forest whose scores are oriented so that higher means more anomalous."""

    def __init__(
        self, forest: FlatForest, card: ModelCard, backend: str = "auto", reference: ReferenceProfile | None = None
    ):
        expected = len(card.input_names)
        if forest.n_features != expected:
            raise ValueError(
                f"model {card.name!r}: forest expects {forest.n_features} inputs, card describes {expected}"
            )
        self.forest = forest
        self.card = card
        self.backend = backend
        self.reference = reference  # training-time profile for drift monitoring, when recorded

    @property
    def n_inputs(self) -> int:
        return self.forest.n_features

    def score(self, X: np.ndarray) -> np.ndarray:
        raw = score(self.forest, X, backend=self.backend)
        return raw if self.card.score_sign > 0 else -raw

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.forest.save(directory / "forest.npz")
        (directory / "card.json").write_text(self.card.to_json())
        if self.reference is not None:
            self.reference.save(directory / "reference.npz")
        return directory

    @classmethod
    def load(cls, directory: str | Path, backend: str = "auto", **card_overrides: Any) -> ServableModel:
        directory = Path(directory)
        card_path = directory / "card.json"
        if not card_path.exists():
            raise FileNotFoundError(f"{directory} is not a compiled model: card.json missing")
        card = ModelCard.from_dict({**json.loads(card_path.read_text()), **card_overrides})
        ref_path = directory / "reference.npz"
        reference = ReferenceProfile.load(ref_path) if ref_path.exists() else None
        return cls(FlatForest.load(directory / "forest.npz"), card, backend=backend, reference=reference)
