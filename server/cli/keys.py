"""``stackserve keys new``: an API key and the config lines (its hash) that admit it."""

from __future__ import annotations

import argparse
import json

from server.cli.common import (
    Subparsers,
    add_command,
)


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
    if args.tokens_per_minute is not None:
        print(f"      tokens_per_minute: {args.tokens_per_minute}")
    return 0


def add_keys(sub: Subparsers) -> None:
    ks = add_command(sub, "keys", help="API keys for security.tenants").add_subparsers(dest="what", required=True)
    kn = add_command(ks, "new", help="make an API key and print the config lines (its hash) that admit it")
    kn.add_argument("--tenant", required=True)
    kn.add_argument("--services", nargs="+", default=["*"], choices=["*", "anomaly", "llm", "retriever", "chat"])
    kn.add_argument("--requests-per-s", type=float, help="the tenant's request rate limit")
    kn.add_argument("--tokens-per-minute", type=int, help="the tenant's LLM token budget (prompt + completion)")
    kn.set_defaults(func=cmd_keys_new)
