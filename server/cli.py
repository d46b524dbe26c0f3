"""`stackserve` command line: serve, train, score, generate, chat, models, drift, gate, rollout, health, demo.

Heavy imports (ray, mlflow, sklearn) happen inside the commands that need them,
so `stackserve --help` and `stackserve health` start in well under a second.

The global options (``--config``, ``--data-dir``, ``--log-level``) are accepted before or after
the subcommand. Client commands (score, generate, chat, health, rollout status) talk to the
gateway address of the configuration (``gateway.host``/``gateway.port``: defaults, YAML,
``STACKSERVE__GATEWAY__*``) unless ``--address`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import sys
from pathlib import Path

from server.config import Settings, load_settings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _console(stderr: bool = False):
    """Rich console; piped output gets a wide fixed width so tables are not truncated."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 200)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict = {}
    gateway = {}
    if getattr(args, "port", None) is not None:
        gateway["port"] = args.port
    if getattr(args, "metrics_port", None) is not None:
        gateway["metrics_port"] = args.metrics_port
    if getattr(args, "openai_port", None) is not None:
        gateway["openai_port"] = args.openai_port
    if gateway:
        overrides["gateway"] = gateway
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "ray_grpc_port", None):
        overrides["ray"] = {"grpc_proxy_port": args.ray_grpc_port}
    if getattr(args, "llm_only", False):
        overrides["anomaly"] = {"enabled": False}
        overrides["rag"] = {"enabled": False}
        overrides["llm"] = {"enabled": True}
    return load_settings(args.config, **overrides)


def _gateway_address(args: argparse.Namespace) -> str:
    """Where the configured gateway listens, as a client reaches it (wildcard binds mean this host)."""
    gw = _settings(args).gateway
    if gw.port == 0:
        raise SystemExit("stackserve: gateway.port is 0 (any free port) in the configuration: pass --address HOST:PORT")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(gw.host, gw.host)
    return f"[{host}]:{gw.port}" if ":" in host else f"{host}:{gw.port}"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stackserve")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _configure_logging(level: str) -> None:
    """``--log-level``: stackserve's JSON logs and the root logger (other libraries) at ``level``."""
    from server.observability.logs import configure_logging

    logging.basicConfig(stream=sys.stderr)
    logging.getLogger().setLevel(level)
    configure_logging(level)


def _serving_log_level() -> str:
    """The level ``--log-level`` set, else INFO: the server logs its JSON events at INFO by default."""
    level = logging.getLogger("stackserve").level
    return logging.getLevelName(level) if level else "INFO"


# ----- serve ------------------------------------------------------------------
async def _serve(settings: Settings, use_ray: bool, ready_file: Path | None) -> None:
    from server.lifecycle import running_server
    from server.observability.logs import configure_logging

    configure_logging(_serving_log_level())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signals() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

    on_signals()
    async with running_server(settings, use_ray=use_ray) as gateway:
        on_signals()  # Ray's core worker installs its own SIGTERM handler during ray.init: ours must win
        await gateway.wait_ready(settings.gateway.warmup_timeout_s)
        llm = gateway.llm.info.model if gateway.llm is not None and gateway.llm.info is not None else None
        scheme = "https" if settings.security.tls.enabled else "http"
        info = {
            "grpc": f"{settings.gateway.host}:{gateway.port}",
            "metrics": f"http://{settings.gateway.host}:{gateway.metrics_port}/metrics",
            "models": sorted(gateway.anomaly.scoring.catalog) if gateway.anomaly is not None else [],
            "llm": llm,
            "openai": None if gateway.openai_port is None else
            f"{scheme}://{settings.gateway.host}:{gateway.openai_port}/v1",
        }
        if ready_file:
            tmp = ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(ready_file)
        print(f"stackserve ready: gRPC {info['grpc']}, metrics {info['metrics']}, models {info['models']}, "
              f"llm {llm or 'off'}", file=sys.stderr, flush=True)
        await stop.wait()
        print("stackserve: shutting down", file=sys.stderr, flush=True)


def _check_models(settings: Settings, train_if_missing: bool) -> bool:
    """Fail fast with a clear message instead of a replica traceback from inside Ray."""
    from server.anomaly import registry

    client = registry.connect(settings)
    cfg = settings.anomaly
    if any(registry.has_version(client, name, cfg.alias) for name in cfg.models):
        return True
    if train_if_missing:
        from server.demo import ensure_models

        ensure_models(settings)
        return True
    print(
        f"stackserve serve: none of {cfg.models} is registered with alias {cfg.alias!r} in "
        f"{settings.tracking_uri}. Run `stackserve train anomaly` first, or serve with --train-if-missing.",
        file=sys.stderr,
    )
    return False


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.anomaly.enabled and not _check_models(settings, args.train_if_missing):
        return 2
    from server.eventloop import run_async
    from server.placement import needs_ray

    run_async(_serve(settings, use_ray=not args.no_ray and needs_ray(settings), ready_file=args.ready_file))
    return 0


# ----- train ------------------------------------------------------------------
def cmd_train_anomaly(args: argparse.Namespace) -> int:
    from rich.table import Table

    from server.anomaly.data import read_table
    from server.anomaly.training import MODEL_FAMILIES, train_default
    from server.anomaly.validation import DataValidationError

    console = _console(stderr=True)
    settings = _settings(args)
    if args.name_prefix:
        settings.training.name_prefix = args.name_prefix
    families = args.families.split(",") if args.families else None
    bad = [f for f in families or () if f not in MODEL_FAMILIES]
    if bad:
        console.print(f"[red]unknown model families {bad}; choose from {MODEL_FAMILIES}")
        return 2
    data = read_table(args.data, args.format) if args.data else None
    try:
        with console.status("training") as status:
            results = train_default(
                settings,
                data=data,
                label=args.label,
                entity_column=args.entity_column,
                families=families,
                promote=args.promote,
                progress=lambda msg: (status.update(msg), console.log(msg)),
            )
    except (DataValidationError, ValueError) as exc:
        console.print(f"[red]{exc}")
        return 3
    table = Table(title=f"trained (MLflow: {settings.tracking_uri})")
    for col in ("model", "version", "precision", "recall", "F1", "ROC-AUC", "AP", "µs/event@4096"):
        table.add_column(col)
    for r in results:
        m = r.metrics
        table.add_row(
            r.name, r.version, f"{m['test_precision']:.4f}", f"{m['test_recall']:.4f}", f"{m['test_f1']:.4f}",
            f"{m['test_roc_auc']:.4f}", f"{m['test_average_precision']:.4f}",
            f"{m['scoring_latency_batch4096_us_per_event']:.3f}",
        )
    _console().print(table)
    return 0


# ----- ingest / search ----------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    import json

    import torch
    from rich.progress import Progress

    from server.rag.documents import UnsupportedFileError, load_paths, pydoc_corpus
    from server.rag.embedder import Embedder
    from server.rag.ingest import ingest
    from server.rag.store_from_config import open_store

    console = _console(stderr=True)
    settings = _settings(args)
    try:
        docs = load_paths([Path(p) for p in args.paths]) if args.paths else []
    except (UnsupportedFileError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}")
        return 2
    if args.default_corpus or not args.paths:
        docs += pydoc_corpus()
    torch.set_num_threads(args.threads)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("loading the embedder", total=len(docs))
        embedder = Embedder(precision=settings.rag.embedder.precision)
        bar.update(task, description="chunking")
        store = open_store(settings)
        report = ingest(docs, store, embedder, settings.rag, progress=lambda doc: bar.advance(task))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        pii = ", ".join(f"{k} {v}" for k, v in sorted(report.pii.items())) or "none"
        _console().print(
            f"{report.documents} documents ({report.new} new, {report.changed} changed, {report.unchanged} unchanged)"
            f" → {report.chunks_total} chunks ({report.chunks_embedded} embedded, {report.chunks_reused} reused, "
            f"{report.duplicates_skipped} duplicates skipped); PII redacted: {pii}; index {report.index} "
            f"(recall@10 {report.recall_at_10:.3f}); {report.seconds['total']:.1f} s → {store.describe()}"
        )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    import json

    from pydantic import ValidationError

    from server.rag.embedder import Embedder
    from server.rag.filters import ChunkFilter
    from server.rag.retriever import EmptyStoreError, Retriever
    from server.rag.store_from_config import open_store

    settings = _settings(args)
    try:
        where = ChunkFilter.model_validate_json(args.filter) if args.filter else None
    except ValidationError as exc:
        _console(stderr=True).print(f"[red]--filter: {exc}")
        return 2
    try:
        embedder = Embedder(precision=settings.rag.embedder.precision)
        hits = Retriever(open_store(settings), embedder).search(args.query, args.k, where)
    except EmptyStoreError as exc:
        _console(stderr=True).print(f"[red]{exc}")
        return 3
    for h in hits:
        c = h.chunk
        print(json.dumps({"id": c.id, "score": round(h.score, 4), "source": c.source, "section": c.section,
                          "text": c.text[:200]}))
    return 0


# ----- score ------------------------------------------------------------------
def cmd_score(args: argparse.Namespace) -> int:
    if args.batch:
        return _score_batch(args)
    import grpc
    import numpy as np

    from server.anomaly.data import read_table
    from server.client import AnomalyClient

    if len(args.input) != 1:
        print("stackserve score: one input over gRPC (several files or folders: --batch)", file=sys.stderr)
        return 2
    df = read_table(args.input[0], args.format)
    with AnomalyClient(args.address) as client:
        try:
            infos = {m.name: m for m in client.list_models()}
            name = args.model or next((m.name for m in infos.values() if m.is_default and
                                       m.uses_stream_features == bool(args.entity_column)), "")
            if name not in infos:
                print(f"stackserve score: unknown model {name!r}; server has {sorted(infos)}", file=sys.stderr)
                return 2
            columns = list(infos[name].feature_names)
            missing = [c for c in columns if c not in df.columns]
            if missing:
                print(f"stackserve score: input lacks columns {missing} that model {name!r} needs", file=sys.stderr)
                return 2
            X = df[columns].to_numpy(dtype=np.float32)
            keys = df[args.entity_column].astype(str).tolist() if args.entity_column else None
            from rich.progress import Progress

            scores, flags = [], []
            with Progress(console=_console(stderr=True), transient=True, disable=len(X) <= args.batch_size) as bar:
                task = bar.add_task(f"scoring with {name}", total=len(X))
                for start in range(0, len(X), args.batch_size):
                    stop = start + args.batch_size
                    r = client.score(X[start:stop], model=name, entity_keys=keys[start:stop] if keys else None)
                    scores.append(r.scores)
                    flags.append(r.is_anomaly)
                    bar.advance(task, len(r.scores))
        except grpc.RpcError as exc:
            print(f"stackserve score: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    out = df.copy()
    out["score"] = np.concatenate(scores) if scores else np.array([])
    out["is_anomaly"] = np.concatenate(flags) if flags else np.array([], dtype=bool)
    jsonl = args.output_format == "jsonl" or args.output.endswith(".jsonl")
    if args.output.endswith(".parquet"):
        out.to_parquet(args.output)
    else:
        dest = sys.stdout if args.output == "-" else args.output
        if jsonl:
            out.to_json(dest, orient="records", lines=True)
        else:
            out.to_csv(dest, index=False)
    return 0


# ----- models -----------------------------------------------------------------
def cmd_models_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from server.anomaly import registry

    client = registry.connect(_settings(args))
    table = Table(title="registered models")
    for col in ("name", "version", "aliases", "test F1", "test ROC-AUC", "run"):
        table.add_column(col)
    for v in registry.list_versions(client):
        table.add_row(v.name, v.version, ",".join(v.aliases), _fmt(v.f1), _fmt(v.roc_auc), v.run_id[:12])
    _console().print(table)
    return 0


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def cmd_models_promote(args: argparse.Namespace) -> int:
    from server.anomaly import registry

    settings = _settings(args)
    client = registry.connect(settings)
    try:
        registry.promote(client, args.name, args.version, args.alias or settings.anomaly.alias)
    except registry.ModelNotFoundError as exc:
        print(f"stackserve models promote: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name} version {args.version} is now @{args.alias or settings.anomaly.alias}; "
          "restart or redeploy the server to serve it")
    return 0


# ----- drift ------------------------------------------------------------------
def cmd_drift(args: argparse.Namespace) -> int:
    from rich.table import Table

    from server.anomaly import registry
    from server.anomaly.data import read_table
    from server.drift.batch_report import compare, html_report

    settings = _settings(args)
    client = registry.connect(settings)
    name, _, alias = args.reference.partition("@")
    try:
        if re.fullmatch(r"[0-9a-f]{32}", args.reference):  # an MLflow run id
            servable = registry.load_servable_from_run(client, args.reference)
        else:
            servable = registry.load_servable(client, name, alias or settings.anomaly.alias)
    except registry.ModelNotFoundError as exc:
        print(f"stackserve drift: {exc}", file=sys.stderr)
        return 2
    if servable.reference is None:
        print(f"stackserve drift: {args.reference} was trained without a reference profile", file=sys.stderr)
        return 2
    current = read_table(args.current, args.format)
    try:
        rows = compare(servable.reference, current, settings.drift)
    except ValueError as exc:
        print(f"stackserve drift: {exc}", file=sys.stderr)
        return 2
    table = Table(title=f"drift of {args.current} vs {name} v{servable.card.version} reference")
    for col in ("feature", "PSI", "KS statistic", "KS p-value", "verdict"):
        table.add_column(col)
    colour = {"ok": "green", "warn": "yellow", "alert": "red"}
    for r in rows:
        table.add_row(r.feature, f"{r.psi:.4f}", f"{r.ks_statistic:.4f}", f"{r.ks_pvalue:.3g}",
                      f"[{colour[r.verdict]}]{r.verdict}")
    _console().print(table)
    args.html.write_text(html_report(f"Drift: {args.current} vs {name} v{servable.card.version}",
                                     servable.reference, current, rows))
    print(f"HTML report: {args.html}", file=sys.stderr)
    return 1 if any(r.verdict == "alert" for r in rows) and args.fail_on_alert else 0


# ----- gates ------------------------------------------------------------------
def cmd_gate(args: argparse.Namespace) -> int:
    """Quality gates for a challenger version; ``--train`` first trains a champion and a
    retrained challenger (next estimator seed, same split) into the store, which is what
    `make gate` runs in CI. The holdout is the built-in data's rows neither run saw, or
    the user's own labelled file (``--holdout FILE --label COL``)."""
    from rich.table import Table

    from server.anomaly import registry
    from server.anomaly.data import load_shuttle, read_table
    from server.anomaly.gates import (
        GateInputError,
        check_holdout,
        drift_gates,
        latency_gate,
        probability_gate,
        regression_gate,
        unseen_holdout,
    )
    from server.anomaly.training import train_family

    if not args.train and not args.challenger:
        print("stackserve gate: give --challenger VERSION, or --train", file=sys.stderr)
        return 2
    if args.train and args.holdout:
        print("stackserve gate: --train trains on the built-in data; it takes no --holdout", file=sys.stderr)
        return 2
    settings = _settings(args)
    client = registry.connect(settings)
    family = args.model.removeprefix(f"{settings.training.name_prefix}-")
    if args.train:
        if family not in ("rf", "iforest"):
            print("stackserve gate --train: choose a shuttle-rf or shuttle-iforest model", file=sys.stderr)
            return 2
        df = load_shuttle()
        train_family(df, family, args.model, "anomaly", None, settings)
        settings.training.seed += 1  # the estimator's seed only: the split stays (training.split_seed)
        args.challenger = train_family(df, family, args.model, "anomaly", None, settings).version
        settings.training.seed -= 1
    try:
        champion = registry.load_servable(client, args.model, settings.anomaly.alias)
        challenger = registry.load_servable(client, args.model, version=args.challenger)
    except registry.ModelNotFoundError as exc:
        print(f"stackserve gate: {exc}", file=sys.stderr)
        return 2
    if champion.card.version == challenger.card.version:
        print(f"stackserve gate: the challenger v{challenger.card.version} is the champion itself", file=sys.stderr)
        return 2
    if any(m.card.stream is not None or m.reference is None for m in (champion, challenger)):
        print("stackserve gate: needs raw-feature models trained with a reference profile", file=sys.stderr)
        return 2
    features = list(champion.card.feature_names)
    if list(challenger.card.feature_names) != features:
        print(f"stackserve gate: the challenger takes {list(challenger.card.feature_names)}, the champion {features}",
              file=sys.stderr)
        return 2
    try:
        if args.holdout:
            holdout, label, source = read_table(args.holdout, args.format), args.label, args.holdout
        else:
            holdout = unseen_holdout(client, [champion.card.run_id, challenger.card.run_id], load_shuttle())
            label, source = "anomaly", "Shuttle rows neither run saw"
        X, y = check_holdout(holdout, features, label)
    except (GateInputError, FileNotFoundError, ValueError) as exc:
        print(f"stackserve gate: {exc}", file=sys.stderr)
        return 2
    results = [
        regression_gate(champion, challenger, X, y, args.max_f1_drop),
        *filter(None, [probability_gate(champion, challenger, X, y, args.max_brier_ratio)]),
        latency_gate(champion, challenger, X, max_ratio=args.max_latency_ratio),
        *drift_gates(challenger.reference, holdout[features], settings.drift),
    ]
    table = Table(title=f"gates: {args.model} v{challenger.card.version} (challenger) vs "
                        f"v{champion.card.version} (@{settings.anomaly.alias}); holdout: {source}, "
                        f"{len(y)} rows, {int(y.sum())} anomalies")
    for col in ("gate", "result", "measured", "limit"):
        table.add_column(col)
    for r in results:
        table.add_row(r.gate, "[green]pass" if r.passed else "[red]FAIL", r.measured, r.limit)
    _console().print(table)
    return 0 if all(r.passed for r in results) else 1


# ----- rollout ----------------------------------------------------------------
def cmd_rollout_status(args: argparse.Namespace) -> int:
    """Ask the gateway (GetRollout) how its challenger rollout stands."""
    import grpc
    from google.protobuf.json_format import MessageToDict
    from rich.table import Table

    from server.client import AnomalyClient

    with AnomalyClient(args.address) as client:
        try:
            st = client.rollout(timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"{args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(MessageToDict(st, always_print_fields_with_no_presence=True)))
        return 0
    if not st.active:
        print(f"{args.address}: no rollout" + (f" (configured for {st.model}, not started)" if st.model else ""))
        return 0
    table = Table(title=f"rollout of {st.model}: {st.state} ({st.mode}"
                        + (f", share {st.canary_share:g})" if st.mode == "canary" else ")")
                        + f", {st.running_for_s:.0f}s" + (f": {st.reason}" if st.reason else ""))
    for col in ("arm", "version", "requests (window)", "errors", "error rate", "p95 ms", "total requests"):
        table.add_column(col)
    for arm, a in (("champion", st.champion), ("challenger", st.challenger)):
        table.add_row(arm, a.version, str(a.requests), str(a.errors), f"{a.error_rate:.4f}",
                      f"{a.p95_seconds * 1e3:.2f}", str(a.total_requests))
    _console().print(table)
    print(f"score PSI (challenger vs champion): {st.score_psi:.4f}; shadow copies dropped: {st.shadow_dropped}")
    return 0


def cmd_slo(args: argparse.Namespace) -> int:
    """Objectives, goodput and cost of a running server (from its /metrics), or its alerting rules."""
    from server.slo.objectives import load_slo_file

    settings = _settings(args)
    try:
        slo = load_slo_file(args.file or settings.slo.file)
    except ValueError as exc:
        print(f"stackserve: {exc}", file=sys.stderr)
        return 2
    if args.rules:
        from server.slo.rules import alert_rules_yaml

        Path(args.rules).write_text(alert_rules_yaml(slo))
        print(f"wrote {len(slo.objectives)} objectives' alerting rules to {args.rules}")
        return 0
    from rich.table import Table

    from server.slo.table import objective_rows, scrape, workload_rows

    url = args.metrics_url or f"http://{settings.gateway.host}:{settings.gateway.metrics_port}/metrics"
    try:
        series = scrape(url, timeout=args.timeout)
    except OSError as exc:
        print(f"stackserve: cannot read {url}: {exc}", file=sys.stderr)
        return 1
    rows = objective_rows(series)
    if not rows:
        print(f"{url}: no SLO series (is slo.enabled off on that server?)", file=sys.stderr)
        return 1
    table = Table(title=f"SLOs at {url}")
    for col in ("objective", "workload", "indicator", "value", "target", "requests", "state", "burn rate"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    _console().print(table)
    wt = Table(title="goodput and cost")
    for col in ("workload", "requests/s", "goodput/s", "USD/hour", "USD per 1K tokens", "USD per 1M events"):
        wt.add_column(col)
    for r in workload_rows(series):
        wt.add_row(*r)
    _console().print(wt)
    return 0


# ----- bench ------------------------------------------------------------------------
def _bench_argv(args: argparse.Namespace) -> list[str]:
    """The parsed ``bench`` options as arguments again, for ``python -m bench.harness``."""
    argv: list[str] = []
    for flag, value in (("--config", args.config), ("--data-dir", args.data_dir), ("--log-level", args.log_level),
                        ("--workloads", args.workloads), ("--duration", args.duration), ("--out", args.out)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + [flag for flag, on in (("--quick", args.quick), ("--gate", args.gate)) if on]


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the checkout's bench/harness.py in a child interpreter rather than importing it: server/
    never imports bench/ (the layers point one way: tests/unit/test_architecture.py), and bench/ is
    not installed with the package, only checked out next to server/."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / "bench" / "harness.py").is_file():
        print(f"stackserve bench: needs a source checkout (no bench/harness.py under {root})", file=sys.stderr)
        return 2
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "bench.harness", *_bench_argv(args)],
                            env={**os.environ, "PYTHONPATH": path})
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the harness as well: it stops its server, then exits
            continue


# ----- generate / chat --------------------------------------------------------------
def _sampling_args(args: argparse.Namespace) -> dict:
    return {
        "max_tokens": args.max_tokens, "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
        "repetition_penalty": args.repetition_penalty, "seed": args.seed, "stop": args.stop or None,
        "ignore_eos": True if args.ignore_eos else None,
    }


def _stream_to_stdout(responses) -> int:
    """Print text as it arrives; a summary line (tokens, TTFT, tokens/s) on stderr."""
    import time

    import grpc

    t0 = time.perf_counter()
    last = None
    n = 0
    ttft = 0.0
    try:
        for r in responses:
            sys.stdout.write(r.text)
            sys.stdout.flush()
            n += len(r.token_ids)
            if r.index == 0 and r.timing.ttft_s:
                ttft = r.timing.ttft_s
            last = r
    except grpc.RpcError as exc:
        print(f"\nstackserve: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        responses.cancel()
        print("\nstackserve: cancelled", file=sys.stderr)
        return 130
    wall = time.perf_counter() - t0
    sys.stdout.write("\n")
    if last is not None:
        decode = wall - ttft if n > 1 else wall
        rate = (n - 1) / decode if n > 1 and decode > 0 else 0.0
        print(f"[{last.finish_reason}] {last.usage.prompt_tokens} prompt + {last.usage.completion_tokens} generated "
              f"tokens; TTFT {ttft * 1e3:.0f} ms, {rate:.1f} tokens/s", file=sys.stderr)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from server.client import LLMClient

    with LLMClient(args.address) as client:
        return _stream_to_stdout(
            client.generate(args.prompt, model=args.model, timeout=args.timeout, **_sampling_args(args))
        )


def cmd_chat(args: argparse.Namespace) -> int:
    from server.client import LLMClient

    messages = [("system", args.system)] if args.system else []
    messages.append(("user", args.message))
    with LLMClient(args.address) as client:
        return _stream_to_stdout(
            client.chat(messages, model=args.model, timeout=args.timeout, **_sampling_args(args))
        )


# ----- health / demo ------------------------------------------------------------
def cmd_health(args: argparse.Namespace) -> int:
    import grpc

    from server.client import AnomalyClient

    with AnomalyClient(args.address) as client:
        try:
            status = client.health(args.service, timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"{args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    print(f"{args.address} {args.service or '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


def _score_batch(args: argparse.Namespace) -> int:
    """``score --batch``: Ray Data over files and folders (server/anomaly/batch_scoring.py)."""
    from server.anomaly.batch_scoring import BatchInputError, describe, plan_batch, score_files
    from server.ray_cluster import connect_ray, disconnect_ray

    if args.output == "-":
        print("stackserve score --batch: --output must name a folder for the Parquet files", file=sys.stderr)
        return 2
    settings = _settings(args)
    try:  # refused in seconds, before a Ray head starts
        plan = plan_batch(settings, args.input, args.model, args.batch_size)
    except (BatchInputError, FileNotFoundError) as exc:
        print(f"stackserve score --batch: {exc}", file=sys.stderr)
        return 2
    attachment = connect_ray(settings)
    try:
        report = score_files(settings, plan, args.output, args.batch_size, args.actors if args.actors > 0 else (1, 4))
    except (BatchInputError, FileNotFoundError) as exc:
        print(f"stackserve score --batch: {exc}", file=sys.stderr)
        return 2
    finally:
        disconnect_ray(attachment)
    print(json.dumps(describe(report)))
    return 0


def cmd_keys_new(args: argparse.Namespace) -> int:
    """A new API key on stdout (give it to the client) and the config lines that admit it (only the
    key's SHA-256 goes into the server's config; the key itself is shown once, here)."""
    from server.security.api_keys import key_digest, new_key

    key = new_key()
    print(f"API key (shown once; the server stores only its hash): {key}")
    print("security:\n  tenants:")
    print(f"    - name: {args.tenant}\n      key_sha256: [{key_digest(key)}]")
    print(f"      services: [{', '.join(json.dumps(x) for x in args.services)}]")  # "*" unquoted is YAML syntax
    if args.requests_per_s is not None:
        print(f"      requests_per_s: {args.requests_per_s}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from server.demo import run_demo

    return run_demo(_settings(args), use_ray=not args.no_ray)


ADDRESS_HELP = "gateway HOST:PORT (default: gateway.host:gateway.port of the configuration, 127.0.0.1:50051)"


def _add_global_options(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("--config", default=default, help="YAML config file (default: $STACKSERVE_CONFIG)")
    p.add_argument("--data-dir", default=default, help="where MLflow and logs live (default: ./.data)")
    p.add_argument("--log-level", default=default, type=str.upper, choices=LOG_LEVELS,
                   help="log level of stackserve's JSON logs and the root logger (default: INFO when serving)")


class _Subcommands(argparse._SubParsersAction):
    """Subparsers that also accept the global options after the subcommand.

    Each gets them with ``default=SUPPRESS``: given after the subcommand they win, not given they
    leave the value parsed before the subcommand (or the top-level default) alone.
    """

    def add_parser(self, name, **kwargs):
        parser = super().add_parser(name, **kwargs)
        _add_global_options(parser, argparse.SUPPRESS)
        parser.register("action", "parsers", _Subcommands)
        return parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stackserve", description=__doc__.splitlines()[0])
    p.register("action", "parsers", _Subcommands)
    _add_global_options(p, None)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start Ray, the Serve app and the gRPC gateway until Ctrl-C")
    s.add_argument("--port", type=int, help="gRPC port (default 50051; 0 = any free port)")
    s.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 9464)")
    s.add_argument("--openai-port", type=int, help="OpenAI-compatible HTTP API port (default 8080; 0: a free one)")
    s.add_argument("--no-ray", action="store_true", help="score in the gateway process, without Ray")
    s.add_argument("--llm-only", action="store_true",
                   help="serve only the LLM (gRPC LLMService and the OpenAI API) from this process: no Ray, no "
                   "anomaly models, no embedder (anomaly.enabled and rag.enabled off)")
    s.add_argument("--ray-grpc-port", type=int, help="also start Ray Serve's own gRPC proxy (benchmark baseline)")
    s.add_argument("--ready-file", type=Path, help="write the bound addresses here as JSON once SERVING")
    s.add_argument("--train-if-missing", action="store_true", help="train the default models if none is registered")
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("train", help="train and register models").add_subparsers(dest="what", required=True)
    ta = t.add_parser("anomaly", help="train anomaly detectors, log to MLflow, register them")
    ta.add_argument("--data", help="CSV/Parquet/JSONL with a label column (default: ODDS Shuttle)")
    ta.add_argument("--format", choices=["csv", "parquet", "jsonl"])
    ta.add_argument("--label", default="anomaly", help="0/1 label column (default: anomaly)")
    ta.add_argument("--entity-column", help="entity id column for stream features (rf-stream)")
    ta.add_argument("--families", help="comma list of iforest,rf,rf-stream (default: iforest,rf, plus rf-stream "
                    "when the data has an --entity-column or is the built-in Shuttle demo)")
    ta.add_argument("--name-prefix", help="registered names are <prefix>-<family> (default: shuttle)")
    ta.add_argument("--promote", action="store_true", help="move the champion alias to the new versions")
    ta.set_defaults(func=cmd_train_anomaly)

    sc = sub.add_parser("score", help="score a CSV/Parquet/JSONL file (or - for stdin) over gRPC")
    sc.add_argument("input", nargs="*", default=["-"], help="a file, or - for stdin; with --batch: files and folders")
    sc.add_argument("--batch", action="store_true",
                    help="score Parquet/CSV files or folders on Ray Data (the cluster of RAY_ADDRESS, else a "
                    "private Ray) into Parquet files under --output; no gateway needed")
    sc.add_argument("--actors", type=int, default=0, help="--batch: scoring actors (default: autoscale 1..4)")
    sc.add_argument("--format", choices=["csv", "parquet", "jsonl"])
    sc.add_argument("--model", default="", help="registered model name (default: the server's default)")
    sc.add_argument("--entity-column", help="column with entity keys (uses the stream model)")
    sc.add_argument("--address", help=ADDRESS_HELP)
    sc.add_argument("--batch-size", type=int, default=4096)
    sc.add_argument("--output", "-o", default="-", help="output path (default stdout)")
    sc.add_argument("--output-format", choices=["csv", "jsonl"], default="csv")
    sc.set_defaults(func=cmd_score)

    for name, help_text in (("generate", "stream a completion of a raw prompt (LLMService.Generate)"),
                            ("chat", "stream the model's chat answer to a message (LLMService.Chat)")):
        gp = sub.add_parser(name, help=help_text)
        if name == "generate":
            gp.add_argument("prompt")
            gp.set_defaults(func=cmd_generate)
        else:
            gp.add_argument("message")
            gp.add_argument("--system", help="a system message before yours")
            gp.set_defaults(func=cmd_chat)
        gp.add_argument("--address", help=ADDRESS_HELP)
        gp.add_argument("--model", default="", help="served model name (default: the server's)")
        gp.add_argument("--max-tokens", type=int)
        gp.add_argument("--temperature", type=float, help="0 = greedy (server default 1)")
        gp.add_argument("--top-k", type=int)
        gp.add_argument("--top-p", type=float)
        gp.add_argument("--repetition-penalty", type=float)
        gp.add_argument("--seed", type=int)
        gp.add_argument("--stop", action="append", help="stop string (repeatable)")
        gp.add_argument("--ignore-eos", action="store_true")
        gp.add_argument("--timeout", type=float, default=300.0, help="deadline in seconds")

    m = sub.add_parser("models", help="MLflow registry").add_subparsers(dest="what", required=True)
    m.add_parser("list", help="registered models, versions and aliases").set_defaults(func=cmd_models_list)
    mp = m.add_parser("promote", help="move the champion alias to a version")
    mp.add_argument("name")
    mp.add_argument("version")
    mp.add_argument("--alias", help="alias to move (default: champion)")
    mp.set_defaults(func=cmd_models_promote)

    dr = sub.add_parser("drift", help="per-feature drift of a data file against a model's training reference")
    dr.add_argument("--reference", required=True, help="NAME, NAME@ALIAS (default alias: champion) or an MLflow run id")
    dr.add_argument("--current", required=True, help="CSV/Parquet/JSONL with the model's feature columns")
    dr.add_argument("--format", choices=["csv", "parquet", "jsonl"])
    dr.add_argument("--html", type=Path, default=Path("drift_report.html"), help="HTML report path")
    dr.add_argument("--fail-on-alert", action="store_true", help="exit 1 when any feature alerts (for CI)")
    dr.set_defaults(func=cmd_drift)

    g = sub.add_parser("gate", help="CI quality gates: challenger version vs the champion")
    g.add_argument("--model", default="shuttle-rf", help="registered model name")
    g.add_argument("--challenger", help="challenger version (required unless --train)")
    g.add_argument("--train", action="store_true", help="train a champion and a retrained challenger first")
    g.add_argument("--holdout", help="your labelled holdout (CSV/Parquet/JSONL) that neither version trained on "
                   "(default: the built-in Shuttle rows outside both runs' logged splits)")
    g.add_argument("--label", default="anomaly", help="0/1 label column of --holdout (default: anomaly)")
    g.add_argument("--format", choices=["csv", "parquet", "jsonl"], help="format of --holdout")
    g.add_argument("--max-f1-drop", type=float, default=0.01)
    g.add_argument("--max-latency-ratio", type=float, default=1.2)
    g.add_argument("--max-brier-ratio", type=float, default=1.5,
                   help="random forests: challenger Brier score at most this x the champion's (+1e-4)")
    g.set_defaults(func=cmd_gate)

    ro = sub.add_parser("rollout", help="challenger rollout (canary/shadow)").add_subparsers(dest="what", required=True)
    rs = ro.add_parser("status", help="state, per-arm numbers and reason, from the running gateway")
    rs.add_argument("--address", help=ADDRESS_HELP)
    rs.add_argument("--timeout", type=float, default=10.0)
    rs.add_argument("--json", action="store_true", help="print the RolloutStatus message as JSON")
    rs.set_defaults(func=cmd_rollout_status)

    sl = sub.add_parser("slo", help="SLO attainment, goodput and cost of a running server; --rules: alerting rules")
    sl.add_argument("--metrics-url", help="default: http://<gateway.host>:<gateway.metrics_port>/metrics")
    sl.add_argument("--file", help="the SLO file (default: slo.file, else deployments/configs/slo.yaml)")
    sl.add_argument("--rules", metavar="FILE", help="write Prometheus alerting rules for the objectives and exit")
    sl.add_argument("--timeout", type=float, default=10.0)
    sl.set_defaults(func=cmd_slo)

    bn = sub.add_parser("bench", help="benchmark harness: one server, every workload's load vs its peer, goodput, "
                        "cost, plots and an HTML page under bench/results/ (from a checkout)")
    bn.add_argument("--quick", action="store_true", help="CI-sized run: fewer load levels, short cells")
    bn.add_argument("--gate", action="store_true", help="exit 1 when a same-run ratio is below its threshold "
                    "(bench/gate.py: gateway vs Ray proxy, gRPC vs in-process LLM)")
    bn.add_argument("--workloads", default="anomaly,llm,rag",
                    help="comma list of anomaly,llm,rag (default: all; rag = retrieval Search and chat Ask)")
    bn.add_argument("--duration", type=float, help="seconds per anomaly cell (default 5, quick 2); LLM open-loop "
                    "cells run 4x as long")
    bn.add_argument("--out", type=Path, help="output folder (default: bench/results/<timestamp>)")
    bn.set_defaults(func=cmd_bench)

    ig = sub.add_parser("ingest", help="chunk, redact, embed and index documents for retrieval")
    ig.add_argument("paths", nargs="*", help=".txt/.md/.rst/.html files or folders (none: the default corpus)")
    ig.add_argument("--default-corpus", action="store_true", help="also ingest the built-in corpus (pydoc topics)")
    ig.add_argument("--threads", type=int, default=2, help="torch threads for the embedder")
    ig.add_argument("--json", action="store_true", help="print the ingest report as JSON")
    ig.set_defaults(func=cmd_ingest)

    se = sub.add_parser("search", help="top-k chunks for a query from the local retrieval store")
    se.add_argument("query")
    se.add_argument("-k", type=int, default=5)
    se.add_argument("--filter", help='JSON, e.g. \'{"equals": {"source": "pydoc:for"}}\'')
    se.set_defaults(func=cmd_search)

    h = sub.add_parser("health", help="gRPC health check")
    h.add_argument("--address", help=ADDRESS_HELP)
    h.add_argument("--service", default="", help="e.g. stackserve.v1.AnomalyService (default: whole server)")
    h.add_argument("--timeout", type=float, default=5.0)
    h.set_defaults(func=cmd_health)

    ks = sub.add_parser("keys", help="API keys for security.tenants").add_subparsers(dest="what", required=True)
    kn = ks.add_parser("new", help="make an API key and print the config lines (its hash) that admit it")
    kn.add_argument("--tenant", required=True)
    kn.add_argument("--services", nargs="+", default=["*"], choices=["*", "anomaly", "llm", "retriever", "chat"])
    kn.add_argument("--requests-per-s", type=float)
    kn.set_defaults(func=cmd_keys_new)

    d = sub.add_parser("demo", help="train if needed, start everything, run a scripted client session, stop")
    d.add_argument("--port", type=int, default=0)
    d.add_argument("--metrics-port", type=int, default=0)
    d.add_argument("--openai-port", type=int, default=0)
    d.add_argument("--no-ray", action="store_true")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.log_level:
        _configure_logging(args.log_level)
    if getattr(args, "address", "") is None:
        args.address = _gateway_address(args)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
