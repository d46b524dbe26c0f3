"""`stackserve` command line: serve, train, score, generate, chat, models, drift, gate, rollout, pipeline, health, demo.

Heavy imports (ray, mlflow, sklearn) happen inside the commands that need them,
so `stackserve --help` and `stackserve health` start in well under a second.

The global options (``--config``, ``--data-dir``, ``--log-level``) are accepted before or after
the subcommand. Client commands (score, generate, chat, health, rollout status) talk to the
gateway address of the configuration (``gateway.host``/``gateway.port``: defaults, YAML,
``STACKSERVE__GATEWAY__*``) unless ``--address`` is given.

One module per command group (serve, anomaly, llm, rag, bench, keys); each handler parses its
arguments and prints, the work is in the module that owns it.
"""

from __future__ import annotations

import argparse
import sys

from server.cli import anomaly, bench, keys, llm, pipeline, rag, serve
from server.cli.common import configure_cli_logging, gateway_address, global_options, version_string


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stackserve", description=__doc__.splitlines()[0])
    global_options(p, None)
    p.add_argument("--version", action="version", version=f"%(prog)s {version_string()}")
    sub = p.add_subparsers(dest="command", required=True)
    # in the order `stackserve --help` lists them
    for add in (serve.add_serve, anomaly.add_train, anomaly.add_score, llm.add_generate_chat, anomaly.add_models,
                anomaly.add_drift, anomaly.add_gate, anomaly.add_rollout, bench.add_slo, bench.add_bench,
                rag.add_ingest, rag.add_search, pipeline.add_pipeline, serve.add_health, keys.add_keys, serve.add_demo):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.log_level:
        configure_cli_logging(args.log_level)
    if getattr(args, "address", "") is None:
        args.address = gateway_address(args)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
