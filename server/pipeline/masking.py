"""PII column policies applied before silver: a keyed hash (HMAC-SHA256) or redaction.

Why keyed: an unkeyed hash of an e-mail address or account number is reversed by hashing the
guesses; with the deployment's secret (the same key that keys the log hashes,
server/security/keyed_hash.py) the masked values still join and group within the deployment and
reveal nothing outside it. Redaction keeps only whether a value was present.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from server.pipeline.spec import MaskPolicy

REDACTED = "[REDACTED]"


def pii_key(hash_key_file: Path) -> bytes:
    """The deployment's keyed-hash secret (``STACKSERVE_HASH_KEY`` wins; made on first use)."""
    from server.security.keyed_hash import load_or_create

    return load_or_create(hash_key_file)


def keyed_hash(value: str, key: bytes) -> str:
    """HMAC-SHA256 of the value, hex: stable for a key, useless without it."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def mask_value(value: str | None, policy: MaskPolicy, key: bytes) -> str | None:
    if value is None:
        return None
    return keyed_hash(value, key) if policy == "hash" else REDACTED


def mask_columns(df: pd.DataFrame, policies: Mapping[str, MaskPolicy], key: bytes) -> pd.DataFrame:
    """A copy of ``df`` with each policy's column masked (columns it lacks are left alone)."""
    out = df.copy()
    for col, policy in policies.items():
        if col in out.columns:
            out[col] = [mask_value(None if v is None or v != v else str(v), policy, key) for v in out[col].tolist()]
    return out


def mask_payload(payload: str, policies: Mapping[str, MaskPolicy], key: bytes) -> str:
    """A raw JSON payload with its PII fields masked: what quarantine keeps (people triaging
    quarantine need the bad values, not the customers' identities)."""
    if not policies:
        return payload
    try:
        row = json.loads(payload)
    except ValueError:
        return payload
    for col, policy in policies.items():
        if col in row:
            row[col] = mask_value(None if row[col] is None else str(row[col]), policy, key)
    return json.dumps(row, ensure_ascii=False)
