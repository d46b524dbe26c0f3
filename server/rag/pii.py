"""PII redaction before text is embedded, stored, shown to the model or logged.

Four kinds, each replaced by a typed placeholder (``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``) so
a reader still sees that something was there. Patterns are checked, not just matched: a card number
must pass the Luhn checksum and an IBAN the ISO 13616 mod-97 check, so version strings, long ids
and arithmetic in the Python docs are left alone. Phone numbers need a phone-like shape (a leading
``+`` and country code, an area code in parentheses, or 3-3-4 digits joined by ``-`` or ``.``; 9 to 15
digits in all): bare digit runs and space-separated numbers are not phones.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

KINDS = ("email", "card", "iban", "phone")

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
# 13-19 digits, optionally grouped by single spaces or hyphens
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,5}"  # international: +CC ...
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"  # (area) local
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 415-555-2671
    r")(?![\w-])"
)
_IBAN_LENGTHS = {  # ISO 13616 lengths of common countries; others: 15..34
    "DE": 22, "FR": 27, "GB": 22, "ES": 24, "IT": 27, "NL": 18, "BE": 16, "CH": 21, "AT": 20, "PL": 28,
    "SE": 24, "DK": 18, "NO": 15, "FI": 18, "IE": 22, "PT": 25, "LU": 20, "CZ": 24, "GR": 27, "HU": 28,
}


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    s = iban.replace(" ", "")
    expected = _IBAN_LENGTHS.get(s[:2])
    if (expected is not None and len(s) != expected) or not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _phone_ok(raw: str) -> bool:
    """9 to 15 digits (E.164), and an international number's country code never starts with 0."""
    digits = sum(c.isdigit() for c in raw)
    return 9 <= digits <= 15 and not (raw.startswith("+") and raw[1:2] == "0")


@dataclass(slots=True)
class Redaction:
    text: str
    counts: Counter = field(default_factory=Counter)  # kind -> how many were replaced

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def redact(text: str) -> Redaction:
    """``text`` with every checked email, card number, IBAN and phone number replaced."""
    counts: Counter = Counter()

    def sub(pattern: re.Pattern, kind: str, check=None) -> None:
        nonlocal text

        def repl(m: re.Match) -> str:
            raw = m.group(0)
            if check is not None and not check(raw):
                return raw
            counts[kind] += 1
            return f"[{kind.upper()}]"

        text = pattern.sub(repl, text)

    sub(_EMAIL, "email")
    sub(_IBAN, "iban", iban_ok)
    sub(_CARD, "card", lambda raw: luhn_ok(re.sub(r"[ -]", "", raw)))
    sub(_PHONE, "phone", _phone_ok)
    return Redaction(text, counts)
