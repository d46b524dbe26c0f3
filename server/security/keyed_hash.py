"""The secret that keys the prompt and response hashes written to the logs.

An unkeyed hash of a prompt lets anyone holding the logs confirm a guessed prompt ("was this
customer's question X?"). Keyed BLAKE2b (a MAC, like HMAC but one pass) with a per-deployment secret
keeps the hashes useful for matching requests within a deployment and useless outside it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_BYTES = 32
ENV_VAR = "STACKSERVE_HASH_KEY"


def load_or_create(path: Path) -> bytes:
    """The deployment's key: ``STACKSERVE_HASH_KEY`` (hex), else the file, else a new one written
    there readable by the owner only (so every restart hashes alike)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            key = bytes.fromhex(env)
        except ValueError:
            raise ValueError(f"{ENV_VAR} must be hex") from None
        if not 16 <= len(key) <= 64:
            raise ValueError(f"{ENV_VAR} must be 16 to 64 bytes (32 to 128 hex digits)")
        return key
    if path.exists():
        key = bytes.fromhex(path.read_text().strip())
        if not 16 <= len(key) <= 64:
            raise ValueError(f"{path} must hold 16 to 64 bytes as hex")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key
