"""The anomaly workload's commands: ``train anomaly``, ``score`` (over gRPC, or ``--batch`` on Ray
Data), ``models list|promote``, ``drift``, ``gate`` and ``rollout status``. Each handler parses and
prints; the work is in server/anomaly/ and server/drift/."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from server.cli.common import (
    ADDRESS_HELP,
    Subparsers,
    add_command,
    cli_settings,
    rich_console,
)


def cmd_train_anomaly(args: argparse.Namespace) -> int:
    from rich.table import Table

    from server.anomaly.data import read_table
    from server.anomaly.training import MODEL_FAMILIES, train_default
    from server.anomaly.validation import DataValidationError

    console = rich_console(stderr=True)
    settings = cli_settings(args)
    if args.name_prefix:
        settings.training.name_prefix = args.name_prefix
    families = args.families.split(",") if args.families else None
    bad = [f for f in families or () if f not in MODEL_FAMILIES]
    if bad:
        console.print(f"[red]unknown model families {bad}; choose from {MODEL_FAMILIES}")
        return 2
    if args.feature_view and args.data:
        console.print("[red]--feature-view and --data are two sources of training rows: give one")
        return 2
    data = read_table(args.data, args.format) if args.data else None
    try:
        with console.status("training") as status:
            if args.feature_view:
                from server.anomaly.training import train_from_feature_view

                results = train_from_feature_view(
                    settings, args.feature_view, args.label, families=families, promote=args.promote,
                    spec_path=Path(args.spec) if args.spec else None,
                    progress=lambda msg: (status.update(msg), console.log(msg)))
            else:
                results = train_default(
                    settings,
                    data=data,
                    label=args.label,
                    entity_column=args.entity_column,
                    families=families,
                    promote=args.promote,
                    progress=lambda msg: (status.update(msg), console.log(msg)),
                )
    except (DataValidationError, ValueError, FileNotFoundError) as exc:
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
    rich_console().print(table)
    return 0


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
            with Progress(console=rich_console(stderr=True), transient=True, disable=len(X) <= args.batch_size) as bar:
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


def _score_batch(args: argparse.Namespace) -> int:
    """``score --batch``: Ray Data over files and folders (server/anomaly/batch_scoring.py)."""
    from server.anomaly.batch_scoring import BatchInputError, describe, plan_batch, score_files
    from server.ray_cluster import connect_ray, disconnect_ray

    if args.output == "-":
        print("stackserve score --batch: --output must name a folder for the Parquet files", file=sys.stderr)
        return 2
    settings = cli_settings(args)
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


def cmd_models_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from server.anomaly import registry

    client = registry.connect(cli_settings(args))
    table = Table(title="registered models")
    for col in ("name", "version", "aliases", "test F1", "test ROC-AUC", "run"):
        table.add_column(col)
    for v in registry.list_versions(client):
        table.add_row(v.name, v.version, ",".join(v.aliases), _fmt(v.f1), _fmt(v.roc_auc), v.run_id[:12])
    rich_console().print(table)
    return 0


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def cmd_models_promote(args: argparse.Namespace) -> int:
    from server.anomaly import registry

    settings = cli_settings(args)
    client = registry.connect(settings)
    try:
        registry.promote(client, args.name, args.version, args.alias or settings.anomaly.alias)
    except registry.ModelNotFoundError as exc:
        print(f"stackserve models promote: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name} version {args.version} is now @{args.alias or settings.anomaly.alias}; "
          "restart or redeploy the server to serve it")
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from rich.table import Table

    from server.anomaly import registry
    from server.anomaly.data import read_table
    from server.drift.batch_report import compare, html_report

    settings = cli_settings(args)
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
    rich_console().print(table)
    args.html.write_text(html_report(f"Drift: {args.current} vs {name} v{servable.card.version}",
                                     servable.reference, current, rows))
    print(f"HTML report: {args.html}", file=sys.stderr)
    return 1 if any(r.verdict == "alert" for r in rows) and args.fail_on_alert else 0


def cmd_gate(args: argparse.Namespace) -> int:
    """Quality gates for a challenger version (server/anomaly/gates.py ``run_gates``); ``--train``
    first trains a champion and a retrained challenger, which is what `make gate` runs in CI."""
    from rich.table import Table

    from server.anomaly.gates import GateInputError, run_gates

    try:
        run = run_gates(cli_settings(args), args.model, challenger=args.challenger, train=args.train,
                        holdout_path=args.holdout, label=args.label, fmt=args.format, max_f1_drop=args.max_f1_drop,
                        max_latency_ratio=args.max_latency_ratio, max_brier_ratio=args.max_brier_ratio)
    except GateInputError as exc:
        print(f"stackserve gate: {exc}", file=sys.stderr)
        return 2
    table = Table(title=f"gates: {args.model} v{run.challenger_version} (challenger) vs "
                        f"v{run.champion_version} (@{run.alias}); holdout: {run.source}, "
                        f"{run.rows} rows, {run.anomalies} anomalies")
    for col in ("gate", "result", "measured", "limit"):
        table.add_column(col)
    for r in run.results:
        table.add_row(r.gate, "[green]pass" if r.passed else "[red]FAIL", r.measured, r.limit)
    rich_console().print(table)
    return 0 if run.passed else 1


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
    rich_console().print(table)
    print(f"score PSI (challenger vs champion): {st.score_psi:.4f}; shadow copies dropped: {st.shadow_dropped}")
    return 0


def add_train(sub: Subparsers) -> None:
    t = add_command(sub, "train", help="train and register models").add_subparsers(dest="what", required=True)
    ta = add_command(t, "anomaly", help="train anomaly detectors, log to MLflow, register them")
    ta.add_argument("--data", help="CSV/Parquet/JSONL with a label column (default: ODDS Shuttle)")
    ta.add_argument("--format", choices=["csv", "parquet", "jsonl"])
    ta.add_argument("--label", default="anomaly", help="0/1 label column (default: anomaly)")
    ta.add_argument("--entity-column", help="entity id column for stream features (rf-stream)")
    ta.add_argument("--families", help="comma list of iforest,rf,rf-stream (default: iforest,rf, plus rf-stream "
                    "when the data has an --entity-column or is the built-in Shuttle demo)")
    ta.add_argument("--name-prefix", help="registered names are <prefix>-<family> (default: shuttle)")
    ta.add_argument("--promote", action="store_true", help="move the champion alias to the new versions")
    ta.add_argument("--feature-view", metavar="NAME[:VERSION]", help="train from a gold feature view through Feast "
                    "(point-in-time correct; families iforest,rf); logs the view version and gold Delta version")
    ta.add_argument("--spec", help="with --feature-view: the pipeline spec (default: pipeline.yaml in the "
                    "pipeline dir)")
    ta.set_defaults(func=cmd_train_anomaly)


def add_score(sub: Subparsers) -> None:
    sc = add_command(sub, "score", help="score a CSV/Parquet/JSONL file (or - for stdin) over gRPC")
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


def add_models(sub: Subparsers) -> None:
    m = add_command(sub, "models", help="MLflow registry").add_subparsers(dest="what", required=True)
    add_command(m, "list", help="registered models, versions and aliases").set_defaults(func=cmd_models_list)
    mp = add_command(m, "promote", help="move the champion alias to a version")
    mp.add_argument("name")
    mp.add_argument("version")
    mp.add_argument("--alias", help="alias to move (default: champion)")
    mp.set_defaults(func=cmd_models_promote)


def add_drift(sub: Subparsers) -> None:
    dr = add_command(sub, "drift", help="per-feature drift of a data file against a model's training reference")
    dr.add_argument("--reference", required=True, help="NAME, NAME@ALIAS (default alias: champion) or an MLflow run id")
    dr.add_argument("--current", required=True, help="CSV/Parquet/JSONL with the model's feature columns")
    dr.add_argument("--format", choices=["csv", "parquet", "jsonl"])
    dr.add_argument("--html", type=Path, default=Path("drift_report.html"), help="HTML report path")
    dr.add_argument("--fail-on-alert", action="store_true", help="exit 1 when any feature alerts (for CI)")
    dr.set_defaults(func=cmd_drift)


def add_gate(sub: Subparsers) -> None:
    g = add_command(sub, "gate", help="CI quality gates: challenger version vs the champion")
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


def add_rollout(sub: Subparsers) -> None:
    ro = add_command(sub, "rollout", help="challenger rollout (canary/shadow)")
    ro = ro.add_subparsers(dest="what", required=True)
    rs = add_command(ro, "status", help="state, per-arm numbers and reason, from the running gateway")
    rs.add_argument("--address", help=ADDRESS_HELP)
    rs.add_argument("--timeout", type=float, default=10.0)
    rs.add_argument("--json", action="store_true", help="print the RolloutStatus message as JSON")
    rs.set_defaults(func=cmd_rollout_status)
