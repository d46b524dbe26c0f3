"""API keys: made here, stored only as their SHA-256, looked up by that digest.

Keys are 256-bit random strings, so a plain SHA-256 is the right at-rest form (as for GitHub's and
Stripe's tokens): a slow password hash protects guessable secrets, and these are not guessable.
Lookup is by digest in a dict, so the time taken reveals nothing about a stored key.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ssk-"


def new_key() -> str:
    """A fresh API key: the prefix makes a leaked one easy to find with secret scanners."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """What the config stores (``security.tenants[].key_sha256``)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_from_headers(pairs: object) -> str | None:
    """The key a caller sent: ``authorization: Bearer <key>`` (what OpenAI clients send) or
    ``x-api-key: <key>``. ``pairs``: (name, value) tuples, names lower-case (gRPC metadata)."""
    for name, value in pairs or ():  # type: ignore[attr-defined]
        if not isinstance(value, str):
            continue
        if name == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == "x-api-key" and value.strip():
            return value.strip()
    return None
