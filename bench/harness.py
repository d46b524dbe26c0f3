"""`stackserve bench`: one server, the anomaly and LLM workloads against it and their peers, judged.

One run starts a single real ``stackserve serve`` (as a user starts it), so every number of the
run shares one process tree, one set of cores and one machine state; only ratios measured inside
one run are compared (the CPU changes between sessions: bench/report.py prints it).

* anomaly, closed loop: 1 event per request at concurrency 1/16/64, through our gateway and,
  side by side, through Ray Serve's own gRPC proxy on the same server (``bench.anomaly_load``).
* anomaly, open loop: Poisson arrivals at fixed rates, each request timed from when it was due
  (bench/loadgen.py), so queueing shows instead of hiding behind slower clients.
* LLM over gRPC: closed loop (TTFT, inter-token latency, output tokens/s) and an open loop; then,
  with the server stopped so it gets the same cores, the same closed loop on the engine in-process:
  the "vs in-process" ratio is what serving costs.
* rag: ``RetrieverService.Search`` closed loop over gRPC against the same store searched in-process
  (the peer, after the server stopped), and ``ChatService.Ask`` (retrieval, rails, the LLM) at
  concurrency 1, judged on the chat TTFT objective. The default corpus is ingested once into
  .bench-cache/ (server/rag/eval_runner.py ``default_corpus_store``).

Every cell is judged against deployments/configs/slo.yaml (goodput: requests/s that met every
per-request objective) and priced with server/slo/cost.py. Output goes to
``bench/results/<timestamp>/``: markdown tables on stdout, ``results.json`` with every latency,
PNG plots and one ``index.html``. ``--gate`` turns three same-run ratios into an exit code for CI
(bench/gate.py).

    stackserve bench [--quick] [--gate] [--workloads anomaly,llm,rag] [--duration S] [--out DIR]
    python -m bench.harness ...      (the same, from a checkout)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

from bench.anomaly_load import TARGETS as ANOMALY_TARGETS
from bench.anomaly_load import closed_loop
from bench.gate import (
    ANOMALY_GATE_CONCURRENCY,
    ANOMALY_LATENCY_ADVANTAGE_MIN,
    ANOMALY_LATENCY_CONCURRENCY,
    ANOMALY_VS_RAY_PROXY_MIN,
    LLM_GATE_CONCURRENCY,
    LLM_VS_INPROCESS_MIN,
    GateCheck,
    gate_passed,
    ratio,
)
from bench.goodput import cost_per_unit, goodput, workload_hourly_cost
from bench.html_report import Section, Table, write_index
from bench.loadgen import (
    anomaly_open_loop,
    chat_closed_loop,
    engine_streamer,
    grpc_streamer,
    llm_closed_loop,
    llm_open_loop,
    poisson_schedule,
    search_closed_loop,
)
from bench.plots import closed_loop_throughput, llm_cdfs, open_loop_latency
from bench.report import RESULTS, machine, machine_line, markdown_table
from server.client import AsyncLLMClient, AsyncRetrieverClient, score_request
from server.config import Settings, load_settings
from server.eventloop import run_async
from server.launcher import RunningServer, ServerStartError, free_port, start_server
from server.slo.objectives import SloFile, default_slo_path, load_slo_file

console = Console(stderr=True)
Cell = dict[str, Any]

WORKLOADS = ("anomaly", "llm", "rag")
GATEWAY, RAY_PROXY = ANOMALY_TARGETS
RAY_PROXY_METADATA = (("application", "anomaly"),)  # Ray's proxy routes by application name
LLM_GRPC = "stackserve gRPC"  # where the engine runs (llm.placement) is in results.json's server info
LLM_INPROCESS = "in-process engine"
RAG_GRPC = "stackserve gRPC"
RAG_INPROCESS = "in-process retriever"
RAG_K = 5

ANOMALY_OPEN_TIMEOUT_S = 5.0  # an open-loop request the client gives up on (counted as an error)
LLM_TIMEOUT_S = 300.0  # one generation; a closed loop waits for it whatever it takes
LLM_OPEN_DRAIN_S = 120.0  # after the last open-loop send, how long stragglers may still finish
LLM_OPEN_DURATION_FACTOR = 4  # an LLM request lasts seconds: a cell as short as an anomaly one holds a few
SERVER_LOG_TAIL_CHARS = 64_000  # kept with the results; the whole log holds one access line per request


@dataclass(frozen=True)
class Plan:
    """What one run measures; ``--quick`` is sized for a CI job on a small shared machine."""

    workloads: tuple[str, ...]
    duration: float  #: seconds per anomaly cell
    anomaly_concurrency: tuple[int, ...]
    anomaly_rates: tuple[float, ...]  #: open loop, requests/s
    llm_concurrency: tuple[int, ...]
    llm_per_client: dict[int, int]  #: requests each closed-loop client sends, by concurrency
    llm_max_tokens: int
    llm_rates: tuple[float, ...]
    rag_concurrency: tuple[int, ...] = (1, 4)
    chat_questions: int = 10
    chat_max_tokens: int = 32
    seed: int = 0
    quick: bool = False

    @property
    def llm_open_duration(self) -> float:
        return self.duration * LLM_OPEN_DURATION_FACTOR

    def cells(self) -> int:
        """How many cells the progress bar counts (the peers' cells included)."""
        n = 0
        if "anomaly" in self.workloads:
            n += 2 * (len(self.anomaly_concurrency) + len(self.anomaly_rates))
        if "llm" in self.workloads:
            n += 2 * len(self.llm_concurrency) + len(self.llm_rates)
        if "rag" in self.workloads:
            n += 2 * len(self.rag_concurrency) + 1
        return n


def parse_workloads(text: str) -> tuple[str, ...]:
    """A typo must stop the run before a server starts, not measure less than was asked."""
    names = tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))
    bad = [w for w in names if w not in WORKLOADS]
    if bad or not names:
        raise ValueError(f"--workloads: choose from {','.join(WORKLOADS)}, got {text!r}")
    return names


def make_plan(quick: bool, workloads: tuple[str, ...], duration: float | None) -> Plan:
    """Full: the load levels of bench/anomaly_load.py and bench/llm_serving.py. Quick: the two levels
    the gate needs (anomaly c=16, LLM c=4) plus the lightest ones, and LLM outputs short enough that
    both LLM sides finish in about a minute on two cores."""
    if duration is not None and duration <= 0:
        raise ValueError(f"--duration must be positive, got {duration}")
    if quick:
        return Plan(workloads, duration or 2.0, (1, 16), (200.0, 1000.0), (1, 4), {1: 2, 4: 2}, 24, (1.0,),
                    chat_questions=3, chat_max_tokens=16, quick=True)
    return Plan(workloads, duration or 5.0, (1, 16, 64), (200.0, 1000.0, 2000.0), (1, 4), {1: 5, 4: 3}, 64,
                (0.5, 2.0))


def make_cell(workload: str, mode: str, target: str, load: str, metrics: dict[str, Any],
              concurrency: int | None = None, rate: float | None = None) -> Cell:
    return {"workload": workload, "mode": mode, "target": target, "load": load, "concurrency": concurrency,
            "rate": rate, **metrics}


class Steps:
    """The progress bar over the run's cells: each ``cell(description)`` block is one step."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("starting the server (it trains the models if none is registered)",
                                      total=total)

    def note(self, description: str) -> None:
        self.progress.update(self.task, description=description)

    @contextmanager
    def cell(self, description: str) -> Iterator[None]:
        self.note(description)
        yield
        self.progress.advance(self.task)


# ----- the server -------------------------------------------------------------------------------
def server_env(settings: Settings, config: str | None, llm: bool, rag: bool = False) -> dict[str, str]:
    """The server reads the same store and config as the harness; what no cell measures is off.

    Retrieval (and the LLM when not benchmarked) would only load models and take Ray CPUs on a
    machine whose cores every cell shares; Ray's HTTP proxy (started with its gRPC proxy) gets a
    free port so a second server on the machine does not collide on 8000. Chat needs the LLM.
    """
    env = {
        "STACKSERVE_DATA_DIR": str(settings.data_dir),
        "STACKSERVE__RAY__HTTP_PROXY_PORT": str(free_port()),
        "STACKSERVE__LLM__ENABLED": "true" if llm or rag else "false",
        "STACKSERVE__RAG__ENABLED": "true" if rag else "false",
    }
    if rag:
        env["STACKSERVE__RAG__STORE_DIR"] = str(rag_store(settings))
    if config:
        env["STACKSERVE_CONFIG"] = str(config)
    return env


#: how a port taken between ``free_port()`` and Ray's proxy binding it shows in the server's log
PORT_RACE = "Failed to bind to address"


def launch(settings: Settings, args: argparse.Namespace, plan: Plan, workdir: Path) -> RunningServer:
    """The server under test. Ray Serve's gRPC proxy (the baseline) needs a port number, not 0: one
    free a moment ago can be taken before the proxy binds it (seen once in CI), so that one failure
    is retried on a new port."""
    extra = ["--log-level", args.log_level] if args.log_level else []
    for attempt in (1, 2):
        try:
            return start_server(
                ["--train-if-missing", *extra], workdir=workdir,
                env=server_env(settings, args.config, "llm" in plan.workloads, "rag" in plan.workloads),
                ray_grpc_port=free_port() if "anomaly" in plan.workloads else None, ready_timeout=600,
            )  # fmt: skip
        except ServerStartError as exc:
            if attempt == 2 or PORT_RACE not in str(exc):
                raise
    raise AssertionError("unreachable")


# ----- anomaly ----------------------------------------------------------------------------------
def anomaly_payloads(settings: Settings, n: int = 512, seed: int = 0) -> list[Any]:
    """Single-event requests drawn from the built-in data, for the default random forest (as
    bench/anomaly_load.py sends them, so the two benchmarks' numbers compare)."""
    from server.anomaly.data import load_shuttle

    X = load_shuttle().drop(columns="anomaly").to_numpy(np.float32)
    model = f"{settings.training.name_prefix}-rf"
    rows = np.random.default_rng(seed).integers(0, len(X), n)
    return [score_request(X[i : i + 1], model=model) for i in rows]


def anomaly_cells(server: RunningServer, settings: Settings, plan: Plan, steps: Steps) -> list[Cell]:
    """Closed loops, then open loops; both targets per load level in turn, so a slow phase of a
    noisy machine hits both sides of a ratio."""
    requests = anomaly_payloads(settings, seed=plan.seed)
    targets = {GATEWAY: (server.address, ()), RAY_PROXY: (server.ray_grpc_address, RAY_PROXY_METADATA)}
    cells = []
    for conc in plan.anomaly_concurrency:
        for target, (address, metadata) in targets.items():
            with steps.cell(f"anomaly closed loop: {target} c={conc}"):
                m = run_async(closed_loop(address, metadata, requests, conc, plan.duration))
            cells.append(make_cell("anomaly", "closed", target, f"c={conc}", m, concurrency=conc))
    for rate in plan.anomaly_rates:
        schedule = poisson_schedule(rate, plan.duration, np.random.default_rng([plan.seed, round(rate * 1000)]))
        for target, (address, metadata) in targets.items():
            with steps.cell(f"anomaly open loop: {target} {rate:g} req/s"):
                m = run_async(anomaly_open_loop(address, metadata, requests, schedule, ANOMALY_OPEN_TIMEOUT_S))
            cells.append(make_cell("anomaly", "open", target, f"{rate:g} req/s", m, rate=rate))
    return cells


# ----- LLM --------------------------------------------------------------------------------------
async def _grpc_closed(address: str, plan: Plan, conc: int) -> dict[str, Any]:
    async with AsyncLLMClient(address) as client:
        stream = grpc_streamer(client, plan.llm_max_tokens, LLM_TIMEOUT_S)
        return await llm_closed_loop(stream, conc, plan.llm_per_client[conc])


async def _grpc_open(address: str, plan: Plan, schedule: np.ndarray) -> dict[str, Any]:
    async with AsyncLLMClient(address) as client:
        return await llm_open_loop(grpc_streamer(client, plan.llm_max_tokens, LLM_TIMEOUT_S), schedule,
                                   LLM_OPEN_DRAIN_S)


def llm_grpc_cells(server: RunningServer, plan: Plan, steps: Steps) -> list[Cell]:
    cells = []
    for conc in plan.llm_concurrency:
        with steps.cell(f"LLM closed loop over gRPC: c={conc}"):
            m = run_async(_grpc_closed(server.address, plan, conc))
        cells.append(make_cell("llm", "closed", LLM_GRPC, f"c={conc}", m, concurrency=conc))
    for rate in plan.llm_rates:
        rng = np.random.default_rng([plan.seed, round(rate * 1000)])
        schedule = poisson_schedule(rate, plan.llm_open_duration, rng)
        with steps.cell(f"LLM open loop over gRPC: {rate:g} req/s"):
            m = run_async(_grpc_open(server.address, plan, schedule))
        cells.append(make_cell("llm", "open", LLM_GRPC, f"{rate:g} req/s", m, rate=rate))
    return cells


def llm_inprocess_cells(settings: Settings, plan: Plan, steps: Steps) -> list[Cell]:
    """The peer: the configured engine in this process, run after the server stopped (same cores)."""
    from server.llm.engine import LLMEngine

    steps.note("LLM in-process: loading the engine (the server is stopped)")
    engine = LLMEngine(settings.llm).start()
    cells = []
    try:
        stream = engine_streamer(engine, plan.llm_max_tokens)
        for conc in plan.llm_concurrency:
            with steps.cell(f"LLM closed loop in-process: c={conc}"):
                m = run_async(llm_closed_loop(stream, conc, plan.llm_per_client[conc]))
            cells.append(make_cell("llm", "closed", LLM_INPROCESS, f"c={conc}", m, concurrency=conc))
    finally:
        engine.shutdown()
    return cells


# ----- retrieval and chat -----------------------------------------------------------------------
def rag_store(settings: Settings | None = None) -> Path:
    """The default corpus's store, ingested once per content key (shared with bench.rag_eval and
    bench.rag_ttft: server/rag/eval_runner.py)."""
    from bench.rag_eval import CACHE
    from server.rag.eval_runner import default_corpus_store

    return default_corpus_store(CACHE, settings.rag if settings is not None else None)


def rag_questions() -> list[str]:
    """The evaluation set's questions, in order: answerable, unanswerable and refused ones mix as in use."""
    from bench.rag_eval import EVAL_SET
    from server.rag.evaluation import load_items

    return [it.question for it in load_items(EVAL_SET)]


def prepare_rag(settings: Settings) -> None:
    rag_store(settings)


async def _grpc_search(address: str, queries: list[str], conc: int, duration: float) -> dict[str, Any]:
    async with AsyncRetrieverClient(address) as client:
        return await search_closed_loop(lambda q: client.search(q, RAG_K, timeout=30), queries, conc, duration)


def rag_grpc_cells(server: RunningServer, plan: Plan, steps: Steps) -> list[Cell]:
    from server.client import ChatClient, RetrieverClient

    queries = rag_questions()
    steps.note("waiting for retrieval and chat to serve (the embedder and the LLM load)")
    for client_type in (RetrieverClient, ChatClient):
        with client_type(server.address) as client:
            client.wait_ready(600)
    cells = []
    for conc in plan.rag_concurrency:
        with steps.cell(f"retrieval Search over gRPC: c={conc}"):
            m = run_async(_grpc_search(server.address, queries, conc, plan.duration))
        cells.append(make_cell("rag", "closed", RAG_GRPC, f"c={conc}", m, concurrency=conc))
    with steps.cell(f"chat Ask over gRPC: {plan.chat_questions} questions, c=1"):
        m = run_async(chat_closed_loop(server.address, queries[: plan.chat_questions], 1, plan.chat_max_tokens))
    cells.append(make_cell("chat", "closed", RAG_GRPC, "c=1", m, concurrency=1))
    return cells


def rag_inprocess_cells(settings: Settings, plan: Plan, steps: Steps) -> list[Cell]:
    """The peer: the same store and embedder searched in this process (``RetrievalWorkload``, as the gateway
    runs it without Ray), after the server stopped."""
    from server.rag.retrieval_workload import RetrievalWorkload

    steps.note("retrieval in-process: loading the embedder and the store (the server is stopped)")
    cfg = settings.model_copy(update={"rag": settings.rag.model_copy(update={"store_dir": str(rag_store(settings))})})
    queries = rag_questions()

    async def run(conc: int) -> dict[str, Any]:
        engine = await RetrievalWorkload(cfg).start()
        return await search_closed_loop(lambda q: engine.search(q, RAG_K), queries, conc, plan.duration)

    cells = []
    for conc in plan.rag_concurrency:
        with steps.cell(f"retrieval search in-process: c={conc}"):
            m = run_async(run(conc))
        cells.append(make_cell("rag", "closed", RAG_INPROCESS, f"c={conc}", m, concurrency=conc))
    return cells


# ----- judging ----------------------------------------------------------------------------------
def per_request_values(cell: Cell) -> dict[str, list[float]]:
    """The client-side values a cell's successful requests are judged on, by SLO indicator."""
    if cell["workload"] in ("anomaly", "rag"):
        return {"latency_ms": cell["latencies_ms"]}
    if cell["workload"] == "chat":
        return {"latency_ms": cell["request_latency_ms"], "ttft_ms": cell["ttft_ms"]}
    return {"latency_ms": cell["request_latency_ms"], "ttft_ms": cell["ttft_ms"], "itl_ms": cell["request_itl_p95_ms"]}


def units_per_s(cell: Cell) -> float:
    """What cost is spread over: output tokens (LLM) or events (anomaly; one per request here)."""
    return cell["tokens_per_s"] if cell["workload"] == "llm" else cell["req_per_s"] * cell.get("events", 1)


def judge(cells: list[Cell], slo: SloFile, hourly: dict[str, float]) -> None:
    """Add goodput, SLO attainment and cost to every cell, in place."""
    for c in cells:
        g = goodput(slo.for_workload(c["workload"]), per_request_values(c), c["errors"], c["seconds"])
        c["goodput"] = g.as_dict()
        priced = c["workload"] in ("anomaly", "llm")  # retrieval has no cost unit in the SLO file's sense
        c["cost_usd"] = cost_per_unit(hourly.get(c["workload"], 0.0), units_per_s(c), c["workload"]) if priced \
            else math.nan


def find(cells: Sequence[Cell], workload: str, mode: str, target: str, load: str) -> Cell | None:
    return next((c for c in cells if (c["workload"], c["mode"], c["target"], c["load"]) ==
                 (workload, mode, target, load)), None)  # fmt: skip


def add_ratios(cells: list[Cell]) -> None:
    """``vs_peer``: closed-loop throughput over the peer's at the same concurrency (Ray's proxy for
    anomaly, the in-process engine for the LLM); NaN where the cell has no peer."""
    peers = {"anomaly": (RAY_PROXY, "req_per_s"), "llm": (LLM_INPROCESS, "tokens_per_s"),
             "rag": (RAG_INPROCESS, "req_per_s")}
    for c in cells:
        if c["workload"] not in peers:
            c["vs_peer"] = math.nan
            continue
        peer_target, metric = peers[c["workload"]]
        peer = find(cells, c["workload"], "closed", peer_target, c["load"]) if c["mode"] == "closed" else None
        c["vs_peer"] = ratio(c[metric], peer[metric]) if peer else math.nan


def gate_checks(cells: Sequence[Cell]) -> list[GateCheck]:
    """The CI gate's ratios, for the workloads this run measured (bench/gate.py has the thresholds)."""
    checks = []
    load = f"c={ANOMALY_GATE_CONCURRENCY}"
    ours, peer = (find(cells, "anomaly", "closed", t, load) for t in (GATEWAY, RAY_PROXY))
    if ours and peer:
        checks.append(GateCheck(f"anomaly {load}: gateway req/s vs Ray's gRPC proxy", ANOMALY_VS_RAY_PROXY_MIN,
                                ratio(ours["req_per_s"], peer["req_per_s"])))
    load = f"c={ANOMALY_LATENCY_CONCURRENCY}"
    ours, peer = (find(cells, "anomaly", "closed", t, load) for t in (GATEWAY, RAY_PROXY))
    if ours and peer:
        checks.append(GateCheck(f"anomaly {load}: Ray proxy p50 latency vs gateway's (times faster)",
                                ANOMALY_LATENCY_ADVANTAGE_MIN, ratio(peer["p50_ms"], ours["p50_ms"])))
    load = f"c={LLM_GATE_CONCURRENCY}"
    ours, peer = (find(cells, "llm", "closed", t, load) for t in (LLM_GRPC, LLM_INPROCESS))
    if ours and peer:
        checks.append(GateCheck(f"LLM {load}: gRPC output tok/s vs in-process", LLM_VS_INPROCESS_MIN,
                                ratio(ours["tokens_per_s"], peer["tokens_per_s"])))
    return checks


# ----- tables -----------------------------------------------------------------------------------
def num(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


def _slo_columns(c: Cell) -> list[str]:
    g = c["goodput"]
    share = g["good_share"]
    return [num(g["goodput_per_s"]), "-" if not math.isfinite(share) else f"{share:.1%}"]


def anomaly_closed_table(cells: Sequence[Cell]) -> Table:
    rows = [[c["target"], c["concurrency"], num(c["req_per_s"], ".0f"), num(c["p50_ms"], ".2f"),
             num(c["p95_ms"], ".2f"), num(c["p99_ms"], ".2f"), c["errors"], f"{num(c['vs_peer'], '.2f')}x",
             *_slo_columns(c), num(c["cost_usd"], ".4f")]
            for c in cells if c["workload"] == "anomaly" and c["mode"] == "closed"]  # fmt: skip
    return Table(["target", "concurrency", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "req/s vs Ray proxy",
                  "goodput req/s", "met SLO", "USD / 1M events"], rows,
                 "anomaly, closed loop, 1 event per request")


def anomaly_open_table(cells: Sequence[Cell]) -> Table:
    rows = [[c["target"], f"{c['rate']:g}", num(c["req_per_s"], ".0f"), num(c["p50_ms"], ".2f"),
             num(c["p95_ms"], ".2f"), num(c["p99_ms"], ".2f"), c["errors"], *_slo_columns(c),
             num(c["cost_usd"], ".4f")]
            for c in cells if c["workload"] == "anomaly" and c["mode"] == "open"]  # fmt: skip
    return Table(["target", "offered req/s (Poisson)", "achieved req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                  "goodput req/s", "met SLO", "USD / 1M events"], rows,
                 "anomaly, open loop: latency from the scheduled send time")


def llm_closed_table(cells: Sequence[Cell]) -> Table:
    rows = [[c["target"], c["concurrency"], c["requests"], c["errors"], num(c["ttft_p50_ms"]),
             num(c["ttft_p95_ms"]), num(c["itl_p95_ms"]), num(c["tokens_per_s"]), f"{num(c['vs_peer'], '.2f')}x",
             *_slo_columns(c), num(c["cost_usd"], ".5f")]
            for c in cells if c["workload"] == "llm" and c["mode"] == "closed"]  # fmt: skip
    return Table(["target", "concurrency", "requests", "errors", "TTFT p50 ms", "TTFT p95 ms", "ITL p95 ms",
                  "output tok/s", "tok/s vs in-process", "goodput req/s", "met SLO", "USD / 1K tokens"], rows,
                 "LLM, closed loop, greedy, fixed output length")


def llm_open_table(cells: Sequence[Cell]) -> Table:
    rows = [[c["target"], f"{c['rate']:g}", num(c["req_per_s"], ".2f"), c["requests"], c["errors"],
             num(c["ttft_p50_ms"]), num(c["ttft_p95_ms"]), num(c["itl_p95_ms"]), num(c["tokens_per_s"]),
             *_slo_columns(c), num(c["cost_usd"], ".5f")]
            for c in cells if c["workload"] == "llm" and c["mode"] == "open"]  # fmt: skip
    return Table(["target", "offered req/s (Poisson)", "achieved req/s", "requests", "errors", "TTFT p50 ms",
                  "TTFT p95 ms", "ITL p95 ms", "output tok/s", "goodput req/s", "met SLO", "USD / 1K tokens"], rows,
                 "LLM, open loop: TTFT from the scheduled send time")


def rag_table(cells: Sequence[Cell]) -> Table:
    rows = [[c["target"], c["concurrency"], num(c["req_per_s"], ".1f"), num(c["p50_ms"], ".2f"),
             num(c["p95_ms"], ".2f"), num(c["p99_ms"], ".2f"), c["errors"], f"{num(c['vs_peer'], '.2f')}x",
             *_slo_columns(c)]
            for c in cells if c["workload"] == "rag"]  # fmt: skip
    return Table(["target", "concurrency", "searches/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                  "searches/s vs in-process", "goodput req/s", "met SLO"], rows,
                 f"retrieval, closed loop: Search, k={RAG_K}, evaluation-set questions (embed + search)")


def chat_table(cells: Sequence[Cell]) -> Table:
    rows = [[c["target"], c["concurrency"], c["requests"], c["errors"], num(c["ttft_p50_ms"], ".0f"),
             num(c["ttft_p95_ms"], ".0f"), num(c["p50_ms"], ".0f"), num(c["p95_ms"], ".0f"),
             ", ".join(f"{k} {v}" for k, v in c.get("outcomes", {}).items()), *_slo_columns(c)]
            for c in cells if c["workload"] == "chat"]  # fmt: skip
    return Table(["target", "concurrency", "requests", "errors", "TTFT p50 ms", "TTFT p95 ms", "answer p50 ms",
                  "answer p95 ms", "outcomes", "goodput req/s", "met SLO"], rows,
                 "chat, closed loop: Ask (retrieve, rails, LLM stream, output rails); no peer")


def gate_rows(checks: Sequence[GateCheck]) -> Table:
    return Table(["check", "threshold", "measured", "result"],
                 [[c.name, f">= {c.threshold:.2f}x", f"{num(c.measured, '.2f')}x", "pass" if c.passed else "FAIL"]
                  for c in checks], "gate: same-run ratios")


def plot_all(cells: Sequence[Cell], out: Path) -> dict[str, list[str]]:
    """PNG files by workload; a workload that did not run has none."""
    anomaly = [closed_loop_throughput(cells, "anomaly", "req_per_s", "requests/s", out, "anomaly_closed_loop.png"),
               open_loop_latency(cells, "anomaly", [("", "latency")], out, "anomaly_open_loop.png")]
    llm = [closed_loop_throughput(cells, "llm", "tokens_per_s", "output tokens/s", out, "llm_closed_loop.png"),
           open_loop_latency(cells, "llm", [("ttft_", "TTFT"), ("", "request latency")], out, "llm_open_loop.png"),
           llm_cdfs(cells, out, "llm_cdf.png")]
    rag = [closed_loop_throughput(cells, "rag", "req_per_s", "searches/s", out, "rag_closed_loop.png")]
    return {"anomaly": [p for p in anomaly if p], "llm": [p for p in llm if p], "rag": [p for p in rag if p]}


def build_report(cells: Sequence[Cell], checks: Sequence[GateCheck], plots: dict[str, list[str]],
                 slo_path: str, hourly: dict[str, float]) -> list[Section]:
    """The page's sections; their tables are also what stdout shows."""
    prices = ", ".join(f"{w} {hourly.get(w, 0.0):.4f} USD/h" for w in dict.fromkeys(c["workload"] for c in cells))
    slo_note = (f"goodput: requests/s that met every per-request objective of the workload in {slo_path} "
                f"(client-side times); met SLO: their share. Cost: reserved resources at {prices}.")
    sections = []
    if any(c["workload"] == "anomaly" for c in cells):
        sections.append(Section("Anomaly scoring", [anomaly_closed_table(cells), anomaly_open_table(cells)],
                                plots["anomaly"], [slo_note]))
    if any(c["workload"] == "llm" for c in cells):
        sections.append(Section("LLM", [llm_closed_table(cells), llm_open_table(cells)], plots["llm"], [slo_note]))
    if any(c["workload"] in ("rag", "chat") for c in cells):
        sections.append(Section("Retrieval and chat", [rag_table(cells), chat_table(cells)], plots["rag"],
                                [slo_note]))
    sections.append(Section("Gate", [gate_rows(checks)], [], ["ratios measured in this run only"]))
    return sections


# ----- output -----------------------------------------------------------------------------------
def json_safe(obj: Any) -> Any:
    """NaN and infinities as null: results.json must parse outside Python too."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).parent)
    except OSError:
        return None
    return out.stdout.strip() or None


def write_results(out: Path, meta: dict[str, Any], cells: Sequence[Cell], checks: Sequence[GateCheck]) -> Path:
    payload = {"meta": meta, "cells": list(cells),
               "gate": [{**asdict(c), "passed": c.passed} for c in checks]}
    path = out / "results.json"
    path.write_text(json.dumps(json_safe(payload), indent=1, allow_nan=False))
    return path


def stdout_text(info: dict[str, Any], sections: Sequence[Section]) -> str:
    """The machine first (numbers from different CPUs must not be compared), then each table."""
    tables = [t for s in sections for t in s.tables if t.rows]
    return machine_line(info) + "".join(f"\n\n{t.caption}\n\n{markdown_table(t.headers, t.rows)}" for t in tables)


def default_out() -> Path:
    return RESULTS / time.strftime("%Y%m%d-%H%M%S")


# ----- the run ----------------------------------------------------------------------------------
def measure(settings: Settings, args: argparse.Namespace, plan: Plan, out: Path) -> tuple[list[Cell], dict]:
    """Start the server, load it, stop it; then the in-process LLM peer on the freed cores."""
    with Progress(console=console) as progress:
        steps = Steps(progress, plan.cells())
        with tempfile.TemporaryDirectory(prefix="stackserve-bench-") as workdir:
            server = launch(settings, args, plan, Path(workdir))
            console.print(f"server up: gateway {server.address}, Ray gRPC proxy {server.ray_grpc_address or 'off'}")
            cells: list[Cell] = []
            try:
                if "anomaly" in plan.workloads:
                    cells += anomaly_cells(server, settings, plan, steps)
                if "llm" in plan.workloads:
                    cells += llm_grpc_cells(server, plan, steps)
                if "rag" in plan.workloads:
                    cells += rag_grpc_cells(server, plan, steps)
            finally:
                (out / "server-log-tail.txt").write_text(server.log_tail(SERVER_LOG_TAIL_CHARS))
                server.stop(timeout=60)
        if "llm" in plan.workloads:
            cells += llm_inprocess_cells(settings, plan, steps)
        if "rag" in plan.workloads:
            cells += rag_inprocess_cells(settings, plan, steps)
    return cells, server.info


def run(args: argparse.Namespace) -> int:
    """Exit 0, 1 (``--gate`` and a ratio below its threshold) or 2 (bad options, no server): CI tells
    a regression from a broken setup by the code."""
    try:
        plan = make_plan(args.quick, parse_workloads(args.workloads), args.duration)
        settings = load_settings(args.config, **({"data_dir": args.data_dir} if args.data_dir else {}))
        slo = load_slo_file(settings.slo.file)
    except ValueError as exc:
        print(f"stackserve bench: {exc}", file=sys.stderr)
        return 2
    hourly = workload_hourly_cost(settings, slo, "llm" in plan.workloads or "rag" in plan.workloads,
                                  "rag" in plan.workloads)
    if "rag" in plan.workloads:
        prepare_rag(settings)
    out = Path(args.out) if args.out else default_out()
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    try:
        cells, server_info = measure(settings, args, plan, out)
    except ServerStartError as exc:
        print(f"stackserve bench: the server did not start: {exc}", file=sys.stderr)
        return 2
    judge(cells, slo, hourly)
    add_ratios(cells)
    checks = gate_checks(cells)
    sections = build_report(cells, checks, plot_all(cells, out), str(settings.slo.file or default_slo_path()), hourly)
    text = stdout_text(info, sections)
    print(text)
    (out / "results.md").write_text(text + "\n")
    meta = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(), "machine": info,
            "commit": git_commit(), "plan": asdict(plan), "server": server_info, "hourly_cost_usd": hourly,
            "slo": slo.model_dump(mode="json")}
    write_results(out, meta, cells, checks)
    write_index(out, "stackserve bench", [machine_line(info), f"{meta['time']}, commit {meta['commit'] or '?'}, "
                f"{'quick' if plan.quick else 'full'} run, workloads {','.join(plan.workloads)}"], sections)
    console.print(f"results: {out / 'index.html'}")
    return 1 if args.gate and not gate_passed(checks) else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.harness``: the options of ``stackserve bench`` (server/cli/bench.py defines them once)."""
    from server.cli import build_parser

    return run(build_parser().parse_args(["bench", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
