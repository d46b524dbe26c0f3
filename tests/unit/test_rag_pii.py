"""PII redaction: checked patterns (Luhn, IBAN mod-97, phone shapes), and no false positives on the corpus."""

from __future__ import annotations

import random
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from server.rag.pii import iban_ok, luhn_ok, redact
from tests.support.hypothesis_profiles import examples


def _luhn_complete(prefix: str) -> str:
    for d in "0123456789":
        if luhn_ok(prefix + d):
            return prefix + d
    raise AssertionError("unreachable: one check digit always fits")


@given(st.text(alphabet=string.digits, min_size=12, max_size=18).filter(lambda s: s[0] != "0"),
       st.sampled_from(["", " ", "-"]))
@settings(max_examples=examples(200), deadline=None)
def test_valid_card_numbers_are_redacted_and_broken_ones_kept(prefix, sep):
    card = _luhn_complete(prefix)
    grouped = sep.join(card[i : i + 4] for i in range(0, len(card), 4)) if sep else card
    r = redact(f"paid with {grouped} yesterday")
    assert r.text == "paid with [CARD] yesterday" and r.counts["card"] == 1
    broken = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert not luhn_ok(broken)
    assert redact(f"order {broken} shipped").counts["card"] == 0


def test_ibans_checked_by_mod_97():
    for iban in ("DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606"):
        assert iban_ok(iban)
        assert redact(f"send to {iban}.").text == "send to [IBAN]."
    assert not iban_ok("DE89 3704 0044 0532 0130 01")
    assert redact("send to DE89 3704 0044 0532 0130 01.").counts["iban"] == 0


def test_emails_and_phones():
    r = redact("Write to jane.oneil+tag@mail.example.org or call +1 415-555-2671 / (030) 1234 5678 / 415.555.2671.")
    assert r.text == "Write to [EMAIL] or call [PHONE] / [PHONE] / [PHONE]."
    assert (r.counts["email"], r.counts["phone"]) == (1, 3)
    assert redact("a@b.co").text == "[EMAIL]"


@given(st.text(alphabet=string.ascii_letters + " .,;:()[]{}'\"\n-_=+*/", max_size=300))
@settings(max_examples=examples(200), deadline=None)
def test_text_without_digits_or_at_signs_is_untouched(text):
    r = redact(text)
    assert r.text == text and r.total == 0


def test_numbers_that_are_not_pii_stay():
    for s in ("python 3.11.7", "2**64 = 18446744073709551616", "x = 123 456 789", "192.168.100.200",
              "in the form '+000000120'", "range(10, 20, 3) 2024-01-15", "0x7fffffffffffffff", ""):
        assert redact(s).text == s, s


def test_the_default_corpus_has_no_pii():
    """The Python docs contain no personal data: anything found here is a false positive."""
    from server.rag.documents import pydoc_corpus

    found = {d.title: dict(r.counts) for d in pydoc_corpus() for s in d.sections if (r := redact(s.text)).total}
    assert found == {}


def test_redaction_is_idempotent():
    rng = random.Random(0)
    text = " ".join(rng.choice(["mail x@y.io", "card 4111111111111111", "call +44 20 7183 8750", "plain words"])
                    for _ in range(50))
    once = redact(text).text
    assert redact(once).text == once
