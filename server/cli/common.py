"""What every ``stackserve`` command shares: the settings from the global options, the gateway address
clients use, logging, the rich console, and ``add_command``, which gives every subcommand the global
options so they are accepted before or after it."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from server.config import Settings, load_settings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def rich_console(stderr: bool = False):
    """Rich console; piped output gets a wide fixed width so tables are not truncated."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 200)


def cli_settings(args: argparse.Namespace) -> Settings:
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


def gateway_address(args: argparse.Namespace) -> str:
    """Where the configured gateway listens, as a client reaches it (wildcard binds mean this host)."""
    gw = cli_settings(args).gateway
    if gw.port == 0:
        raise SystemExit("stackserve: gateway.port is 0 (any free port) in the configuration: pass --address HOST:PORT")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(gw.host, gw.host)
    return f"[{host}]:{gw.port}" if ":" in host else f"{host}:{gw.port}"


def version_string() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stackserve")
    except PackageNotFoundError:
        return "unknown (not installed)"


def configure_cli_logging(level: str) -> None:
    """``--log-level``: stackserve's JSON logs and the root logger (other libraries) at ``level``."""
    from server.observability.logs import configure_logging

    logging.basicConfig(stream=sys.stderr)
    logging.getLogger().setLevel(level)
    configure_logging(level)


def serving_log_level() -> str:
    """The level ``--log-level`` set, else INFO: the server logs its JSON events at INFO by default."""
    level = logging.getLogger("stackserve").level
    return logging.getLevelName(level) if level else "INFO"


ADDRESS_HELP = "gateway HOST:PORT (default: gateway.host:gateway.port of the configuration, 127.0.0.1:50051)"


def global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--config", default=default, help="YAML config file (default: $STACKSERVE_CONFIG)")
    parser.add_argument("--data-dir", default=default, help="where MLflow and logs live (default: ./.data)")
    parser.add_argument("--log-level", default=default, type=str.upper, choices=LOG_LEVELS,
                        help="log level of stackserve's JSON logs and the root logger (default: INFO when serving)")


# The global options again, for every subcommand (as a parent parser): with default=SUPPRESS, given
# after the subcommand they win, and not given they leave the value parsed before it alone.
_AFTER_SUBCOMMAND = argparse.ArgumentParser(add_help=False)
global_options(_AFTER_SUBCOMMAND, argparse.SUPPRESS)

Subparsers = Any  # what ArgumentParser.add_subparsers returns (argparse does not export its type)


def add_command(sub: Subparsers, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """``sub.add_parser(name, ...)`` with the global options accepted after the subcommand too."""
    return sub.add_parser(name, parents=[_AFTER_SUBCOMMAND], **kwargs)
