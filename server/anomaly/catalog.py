"""What the gateway knows about served anomaly models, to validate before crossing into Ray."""

from __future__ import annotations

from dataclasses import dataclass

from server.anomaly.model import StreamSpec
from server.anomaly.reference import ReferenceProfile


@dataclass(frozen=True, slots=True, eq=False)
class CatalogEntry:
    name: str
    version: str
    kind: str
    feature_names: tuple[str, ...]
    n_inputs: int
    stream: StreamSpec | None
    threshold: float
    reference: ReferenceProfile | None = None
    # NAME:VERSION of the feature view the model was trained from; None: it takes feature values only
    feature_view: str | None = None

    @classmethod
    def from_info(cls, info: dict) -> CatalogEntry:
        stream = info.get("stream")
        return cls(
            name=info["name"],
            version=str(info["version"]),
            kind=info["kind"],
            feature_names=tuple(info["feature_names"]),
            n_inputs=int(info["n_inputs"]),
            stream=StreamSpec(**stream) if stream else None,
            threshold=float(info["threshold"]),
            reference=info.get("reference"),
            feature_view=info.get("feature_view"),
        )

    @property
    def n_raw(self) -> int:
        return len(self.feature_names)
