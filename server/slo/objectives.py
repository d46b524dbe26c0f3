"""The SLO file (deployments/configs/slo.yaml): objectives, burn windows and prices, validated.

Two kinds of objective, because users state them both ways:

* **per-request**: each request has a value (latency, TTFT, its inter-token p95, failed or not) and
  meets the objective when the value is within ``threshold`` (for ``error``: when it did not fail);
  the objective is attained when at least ``target`` of the window's requests meet it. "p95 TTFT
  ≤ 1 s" is ``ttft_ms ≤ 1000`` for 95% of requests. These define goodput.
* **rate**: judged on the window as a whole (output tokens/s ``floor``, cost ``ceiling``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Workload = Literal["anomaly", "llm", "chat"]
PER_REQUEST = ("latency_ms", "ttft_ms", "itl_ms", "error")
RATE = ("output_tokens_per_s", "cost_per_1k_output_tokens", "cost_per_1m_events")
Indicator = Literal["latency_ms", "ttft_ms", "itl_ms", "error", "output_tokens_per_s",
                    "cost_per_1k_output_tokens", "cost_per_1m_events"]

# which workloads can report which indicator (a TTFT objective on the anomaly scorer is a typo)
APPLIES = {
    "latency_ms": {"anomaly", "llm", "chat"},
    "ttft_ms": {"llm", "chat"},
    "itl_ms": {"llm"},
    "error": {"anomaly", "llm", "chat"},
    "output_tokens_per_s": {"llm"},
    "cost_per_1k_output_tokens": {"llm"},
    "cost_per_1m_events": {"anomaly"},
}


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    workload: Workload
    indicator: Indicator
    threshold: float | None = Field(None, gt=0, description="per-request bound (not for `error`)")
    target: float | None = Field(None, gt=0, lt=1, description="share of requests that must meet it")
    floor: float | None = Field(None, gt=0, description="rate objectives: the value must stay above")
    ceiling: float | None = Field(None, gt=0, description="rate objectives: the value must stay below")
    window_s: float = Field(300, gt=0)

    @property
    def per_request(self) -> bool:
        return self.indicator in PER_REQUEST

    @model_validator(mode="after")
    def _consistent(self) -> Objective:
        if self.workload not in APPLIES[self.indicator]:
            raise ValueError(f"objective {self.name!r}: a {self.workload} request has no {self.indicator}")
        if self.per_request:
            if self.target is None:
                raise ValueError(f"objective {self.name!r}: a per-request objective needs a target (e.g. 0.95)")
            if (self.threshold is None) != (self.indicator == "error"):
                need = "takes no threshold" if self.indicator == "error" else "needs a threshold"
                raise ValueError(f"objective {self.name!r}: {self.indicator} {need}")
            if self.floor is not None or self.ceiling is not None:
                raise ValueError(f"objective {self.name!r}: floor/ceiling are for rate objectives")
        else:
            if (self.floor is None) == (self.ceiling is None):
                raise ValueError(f"objective {self.name!r}: a rate objective needs exactly one of floor, ceiling")
            if self.threshold is not None or self.target is not None:
                raise ValueError(f"objective {self.name!r}: threshold/target are for per-request objectives")
        return self


class Prices(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu_core_hour: float = Field(0.048, ge=0)
    gpu_hour: dict[str, float] = Field(default_factory=dict)


class SloFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    burn_windows_s: list[float] = Field(default_factory=lambda: [300.0, 3600.0], min_length=1)
    objectives: list[Objective] = Field(default_factory=list)
    prices: Prices = Field(default_factory=Prices)

    @model_validator(mode="after")
    def _unique(self) -> SloFile:
        names = [o.name for o in self.objectives]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"objective names must be unique: {dupes}")
        if any(w <= 0 for w in self.burn_windows_s):
            raise ValueError("burn_windows_s must be positive")
        return self

    @property
    def horizon_s(self) -> float:
        """How far back the tracker must remember requests."""
        return max([*self.burn_windows_s, *(o.window_s for o in self.objectives)])

    def for_workload(self, workload: str) -> list[Objective]:
        return [o for o in self.objectives if o.workload == workload]


def default_slo_path() -> Path:
    """deployments/configs/slo.yaml beside the server package (read as a file, not imported): the checkout's,
    or in an installed wheel the ``deployments`` package's data file (pyproject's package-data)."""
    return Path(__file__).resolve().parents[2] / "deployments" / "configs" / "slo.yaml"


def load_slo_file(path: str | Path | None = None) -> SloFile:
    """The SLO file at ``path`` (default: ``default_slo_path()``), validated; errors name the file."""
    p = Path(path) if path else default_slo_path()
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ValueError(f"cannot read the SLO file {p}: {exc}") from exc
    try:
        return SloFile.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from exc
