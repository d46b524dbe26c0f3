"""The ``stackserve`` command line (server/cli/main.py has the map of commands)."""

from server.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
