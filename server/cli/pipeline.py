"""``stackserve pipeline init|ingest|run|backfill|status``: the data platform's commands (and ``replay``,
the example data; ``stream``, ``publish`` and ``broker``, the message bus, are in pipeline_stream.py).

Each handler parses and prints; the work is in server/pipeline/. Every command works on the
pipeline dir (``pipeline.dir``, default ``<--data-dir>/pipeline``) and the spec there, or ``--spec``.
Exit codes: 0 done, 2 bad input (a missing file or column, an invalid spec, a bad range), 3 another
run holds the pipeline's lock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from server.cli.common import Subparsers, add_command, cli_settings, rich_console


def _context(args: argparse.Namespace):
    import importlib.util

    from server.pipeline.tables import Layout

    missing = [m for m in ("deltalake", "great_expectations") if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"stackserve pipeline needs {', '.join(missing)}: pip install 'stackserve[pipeline]'")

    settings = cli_settings(args)
    layout = Layout(Path(settings.pipeline_dir))
    spec_path = Path(args.spec) if getattr(args, "spec", None) else layout.spec
    return settings, layout, spec_path


def _exit(code: int) -> int:
    """End the process now, output flushed, skipping interpreter finalization.

    Why: once in dozens of runs (seen in the crash-drill test, not reproduced in 40 tries by hand), a
    command whose work and output were complete aborted at exit with ``terminate called without an
    active exception`` (SIGABRT): native thread pools (pyarrow's C++ pools, delta-rs' runtime) torn
    down in an unlucky order. Everything the command writes is committed (Delta) or flushed before
    this, so nothing is lost by skipping finalization, and scripts get the exit code they were owed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fail(message: str, code: int = 2) -> int:
    print(f"stackserve pipeline: {message}", file=sys.stderr)
    return code


def _load(spec_path: Path):
    from pydantic import ValidationError

    from server.pipeline.spec import load_spec

    try:
        return load_spec(spec_path)
    except ValidationError as exc:
        raise ValueError(f"{spec_path}: invalid spec: {exc}") from exc


def cmd_init(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from server.pipeline.drops import read_drop
    from server.pipeline.infer_spec import infer_spec
    from server.pipeline.spec import save_spec

    settings, _, spec_path = _context(args)
    if spec_path.exists() and not args.force:
        return _fail(f"{spec_path} exists (review and edit it, or pass --force to infer a new one)")
    try:
        data = read_drop(Path(args.data))
        if data.empty:
            return _fail(f"{args.data} has no rows to infer a spec from")
        spec = infer_spec(data, args.entity, args.timestamp, label=args.label, tenant=args.tenant, pii=args.pii or (),
                          event_id=args.event_id, pii_policy=settings.pipeline.pii_policy,
                          window=settings.pipeline.window, alpha=settings.pipeline.alpha)
    except (FileNotFoundError, ValueError, ValidationError) as exc:
        return _fail(str(exc))
    save_spec(spec, spec_path)
    print(f"wrote {spec_path}: {len(spec.columns)} columns, event id {spec.event_id or '(hash of the raw row)'}, "
          f"{len(spec.feature_views)} feature view(s); review the ranges and allowed values before ingesting")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from server.pipeline.bronze import ingest_file
    from server.pipeline.metrics import PipelineMetrics

    _, layout, spec_path = _context(args)
    try:
        _load(spec_path)  # drops land only in a pipeline that has a contract
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    missing = [f for f in args.files if not Path(f).exists()]
    if missing:
        return _fail(f"no such file: {', '.join(missing)} (nothing landed)")
    metrics = PipelineMetrics()
    metrics.load(layout.metrics)
    results, code = [], 0
    for f in args.files:
        try:
            r = ingest_file(layout, Path(f), metrics)
        except (ValueError, OSError) as exc:  # one unreadable drop does not stop the others
            print(f"stackserve pipeline: {exc}", file=sys.stderr)
            code = 2
            continue
        results.append(asdict(r))
        print(r.message, file=sys.stderr)
    metrics.save(layout.metrics)
    if args.json:
        print(json.dumps(results, indent=2))
    return code


def _online(settings, args: argparse.Namespace):
    """The Feast online store the run materializes into, ``None`` when materialization is off
    (``--no-materialize`` or ``pipeline.materialize: false``) or feast is not installed (said once)."""
    import importlib.util

    from server.pipeline.feature_store import OnlineStore

    if getattr(args, "no_materialize", False) or not settings.pipeline.materialize:
        return None
    if importlib.util.find_spec("feast") is None:
        print("stackserve pipeline: feast is not installed: gold is not materialized (pip install "
              "'stackserve[pipeline]')", file=sys.stderr)
        return None
    return OnlineStore(settings.pipeline.online_store, settings.pipeline.redis_url)


def cmd_run(args: argparse.Namespace) -> int:
    from server.pipeline.masking import pii_key
    from server.pipeline.runner import run

    settings, layout, spec_path = _context(args)
    try:
        spec = _load(spec_path)
        report = run(layout, spec, pii_key(settings.hash_key_file), settings.pipeline.retyped_fraction,
                     progress=lambda m: print(m, file=sys.stderr, flush=True), online=_online(settings, args))
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    except RuntimeError as exc:
        return _fail(str(exc), 3)
    return _print_report(args, report)


def cmd_backfill(args: argparse.Namespace) -> int:
    from server.pipeline.masking import pii_key
    from server.pipeline.runner import backfill

    settings, layout, spec_path = _context(args)
    try:
        spec = _load(spec_path)
        report = backfill(layout, spec, pii_key(settings.hash_key_file), args.start, args.end,
                          settings.pipeline.retyped_fraction, progress=lambda m: print(m, file=sys.stderr, flush=True),
                          online=_online(settings, args))
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    except RuntimeError as exc:
        return _fail(str(exc), 3)
    return _print_report(args, report)


def _print_report(args: argparse.Namespace, report) -> int:
    if args.json:
        print(json.dumps(asdict(report), indent=2))
        return 0
    for line in report.schema_breaks:
        print(f"quarantined a batch: {line}", file=sys.stderr)
    gold = ", ".join(f"{t}: {n}" for t, n in report.gold_rows.items()) or "unchanged"
    print(f"run {report.run_id}: {report.rows_in} bronze events -> silver +{report.silver_rows}, quarantine "
          f"+{report.quarantined_rows}, duplicates {report.duplicates}; gold {gold}; materialized "
          f"{', '.join(f'{t} (gold v{v})' for t, v in report.materialized.items()) or 'nothing new'} "
          f"({report.seconds:.2f} s)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from server.pipeline.replay import shuttle_events, write_events

    try:
        events = shuttle_events(args.rows, entities=args.entities, start=args.start, interval_s=args.interval_s,
                                offset=args.offset)
        path = write_events(events, Path(args.out))
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    print(f"wrote {len(events)} events to {path}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from server.pipeline.status import status

    _, layout, _ = _context(args)
    doc = status(layout)
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    console = rich_console()
    table = Table(title=f"pipeline {layout.root}")
    for col in ("table", "rows", "Delta version"):
        table.add_column(col)
    for name in ("bronze", "silver", "quarantine"):
        t = doc["tables"][name]
        table.add_row(name, str(t["rows"]), str(t["version"]))
    for name, t in doc["tables"]["gold"].items():
        table.add_row(f"gold {name}" + (" (retired)" if t["retired"] else ""), str(t["rows"]), str(t["version"]))
    console.print(table)
    for name, n in doc["quarantine_by_expectation"].items():
        console.print(f"quarantined by {name}: {n}")
    ge = doc["last_great_expectations_result"]
    if ge:
        console.print(f"last Great Expectations result: success={ge['success']}, "
                      f"{ge['successful_expectations']}/{ge['evaluated_expectations']} expectations met "
                      f"over {ge['evaluated_rows']} rows ({ge['validated_at']})")
    return 0


def add_pipeline(sub: Subparsers) -> None:
    group = add_command(sub, "pipeline", help="the data platform: bronze/silver/gold Delta tables with a "
                        "Great Expectations gate").add_subparsers(dest="what", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = add_command(group, name, help=help)
        p.add_argument("--spec", help="the pipeline spec (default: pipeline.yaml in the pipeline dir)")
        return p

    p = command("init", "write a spec inferred from a file (types, ranges, allowed values) for review")
    p.add_argument("--data", required=True, help="a sample drop: CSV, JSON Lines or Parquet")
    p.add_argument("--entity", required=True, help="the column naming the entity (device, account)")
    p.add_argument("--timestamp", required=True, help="the column holding the event time (ISO-8601)")
    p.add_argument("--label", help="the label column, if any")
    p.add_argument("--tenant", help="the tenant column, if any")
    p.add_argument("--pii", nargs="+", metavar="COL", help="columns masked before silver (pipeline.pii_policy)")
    p.add_argument("--event-id", help="the unique event id column (default: event_id if present, else a hash "
                   "of the raw row)")
    p.add_argument("--force", action="store_true", help="replace an existing spec")
    p.set_defaults(func=lambda a, f=cmd_init: _exit(f(a)))

    p = command("ingest", "land drops in bronze (append-only; one commit and batch id per file)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print what landed as JSON")
    p.set_defaults(func=lambda a, f=cmd_ingest: _exit(f(a)))

    p = command("run", "process what is new: bronze -> silver (+ quarantine) -> gold -> Feast")
    p.add_argument("--json", action="store_true", help="print the run's report as JSON")
    p.add_argument("--no-materialize", action="store_true", help="leave the Feast repository and online store "
                   "as they are (the next run catches up)")
    p.set_defaults(func=lambda a, f=cmd_run: _exit(f(a)))

    p = command("backfill", "recompute silver, quarantine and gold for an event-time range")
    p.add_argument("--from", dest="start", required=True, help="start of the range (ISO-8601, inclusive)")
    p.add_argument("--to", dest="end", required=True, help="end of the range (ISO-8601, exclusive)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-materialize", action="store_true", help="leave the Feast repository and online store "
                   "as they are (the next run catches up)")
    p.set_defaults(func=lambda a, f=cmd_backfill: _exit(f(a)))

    p = command("replay", "write the Shuttle data as timestamped events with entity keys (the default example)")
    p.add_argument("--out", required=True, help="the file to write: .csv, .jsonl or .parquet")
    p.add_argument("--rows", type=int, help="how many rows (default: all 49,097)")
    p.add_argument("--offset", type=int, default=0, help="first Shuttle row")
    p.add_argument("--entities", type=int, default=64, help="devices the events are spread over")
    p.add_argument("--start", default="2026-01-01T00:00:00Z", help="time of Shuttle row 0")
    p.add_argument("--interval-s", type=float, default=1.0, help="seconds between consecutive rows")
    p.set_defaults(func=lambda a, f=cmd_replay: _exit(f(a)))

    p = command("status", "rows and Delta version per table, quarantine by expectation, the last GE result")
    p.add_argument("--json", action="store_true", help="print the status document as JSON")
    p.set_defaults(func=lambda a, f=cmd_status: _exit(f(a)))

    from server.cli.pipeline_stream import add_stream_commands

    add_stream_commands(command, lambda f: lambda a: _exit(f(a)))
