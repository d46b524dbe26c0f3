"""Goodput and cost of one benchmark cell, judged the way the live SLO tracker judges requests.

Throughput alone rewards a server for answering fast and late alike; goodput counts only the
requests that met every per-request objective of their workload in deployments/configs/slo.yaml,
so a setting that doubles requests/s by blowing the latency objective shows up as a loss. The
rules follow server/slo/tracker.py (a failed request misses every objective; a request with fewer
than two tokens has no inter-token gap to miss) so the harness and ``stackserve slo`` agree on
what "good" means; only the clock differs: the harness times requests from the client's side.

Cost uses server/slo/cost.py: the workload's reserved resources per hour at the file's prices,
spread over what the cell produced, so cost falls as throughput rises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from server.config import Settings
from server.slo.cost import hourly_cost
from server.slo.objectives import Objective, SloFile

#: Indicators whose absence on a successful request meets the objective (server/slo/tracker.py:
#: one token or none leaves no gap between tokens to be too long).
UNOBSERVED_MEETS = frozenset({"itl_ms"})

#: What one unit of cost is quoted per, by workload: 1K output tokens, 1M scored events.
COST_UNIT = {"llm": 1e3, "anomaly": 1e6}


@dataclass(frozen=True)
class Goodput:
    """One cell's requests judged against its workload's per-request objectives."""

    requests: int  #: every request of the cell, failed ones included
    good: int  #: requests that met every per-request objective
    seconds: float
    attainment: dict[str, float] = field(default_factory=dict)  #: objective -> share of requests meeting it
    attained: dict[str, bool | None] = field(default_factory=dict)  #: share >= target (None: no requests)

    @property
    def goodput_per_s(self) -> float:
        return self.good / self.seconds if self.seconds > 0 else math.nan

    @property
    def good_share(self) -> float:
        return self.good / self.requests if self.requests else math.nan

    def as_dict(self) -> dict[str, object]:
        return {"requests": self.requests, "good": self.good, "seconds": self.seconds,
                "goodput_per_s": self.goodput_per_s, "good_share": self.good_share,
                "attainment": self.attainment, "attained": self.attained}


def meets(objective: Objective, values: np.ndarray) -> np.ndarray:
    """Which successful requests meet ``objective``; ``values`` in ms, NaN where never observed."""
    if objective.indicator == "error":
        return np.ones(values.shape, dtype=bool)  # these requests succeeded
    observed = np.isfinite(values)
    within = np.where(observed, values, np.inf) <= objective.threshold
    return within | (~observed if objective.indicator in UNOBSERVED_MEETS else False)


def goodput(objectives: Sequence[Objective], ok: Mapping[str, Sequence[float]], failed: int,
            seconds: float) -> Goodput:
    """Judge a cell: ``ok`` maps an indicator (latency_ms, ttft_ms, itl_ms) to one value per
    successful request (all the same length); ``failed`` requests miss every objective.

    Raises ValueError when an objective needs an indicator the cell did not measure: a silent pass
    would report goodput the run never showed.
    """
    arrays = {k: np.asarray(v, dtype=float) for k, v in ok.items()}
    lengths = {a.size for a in arrays.values()}
    if len(lengths) > 1:
        raise ValueError(f"per-request values of different lengths: { {k: a.size for k, a in arrays.items()} }")
    n_ok = lengths.pop() if lengths else 0
    total = n_ok + failed
    good = np.ones(n_ok, dtype=bool)
    attainment: dict[str, float] = {}
    attained: dict[str, bool | None] = {}
    for o in (o for o in objectives if o.per_request):
        if o.indicator != "error" and o.indicator not in arrays:
            raise ValueError(f"objective {o.name!r} needs {o.indicator}, which this cell did not measure")
        met = meets(o, arrays.get(o.indicator, np.zeros(n_ok)))
        good &= met
        share = float(met.sum() / total) if total else math.nan
        attainment[o.name] = share
        attained[o.name] = None if not total else share >= o.target
    n_good = int(good.sum()) if total else 0
    return Goodput(total, n_good, seconds, attainment, attained)


def workload_hourly_cost(settings: Settings, slo: SloFile, llm_served: bool,
                         rag_served: bool = False) -> dict[str, float]:
    """USD per hour by workload for the server the harness starts: retrieval and the LLM on only
    when benchmarked (bench/harness.py server_env), so nothing is billed that the run did not reserve."""
    served = settings.model_copy(update={
        "llm": settings.llm.model_copy(update={"enabled": llm_served}),
        "rag": settings.rag.model_copy(update={"enabled": rag_served}),
    })  # fmt: skip
    return hourly_cost(served, slo.prices)


def cost_per_unit(hourly_usd: float, units_per_s: float, workload: str) -> float:
    """USD per 1K output tokens (llm) or per 1M events (anomaly) at ``units_per_s``; NaN when the
    cell produced nothing (no throughput: no price per unit, not an infinite one)."""
    if not units_per_s or not math.isfinite(units_per_s) or units_per_s <= 0:
        return math.nan
    return hourly_usd / 3600.0 / units_per_s * COST_UNIT[workload]
