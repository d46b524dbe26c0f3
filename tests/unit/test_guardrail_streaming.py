"""The streaming output rails' contract: nothing leaves before it is judged, nothing after a failed
window leaves at all, the source stream is closed (the engine aborts), shadow mode releases all.

The judge here is a plain function (the ``extra`` judges the chat pipeline adds): the windowing is
what is under test; the learned heads are tested in tests/eval/test_guardrail_heads.py."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from server.guardrails.streaming import StreamingRails, StreamRailConfig, guarded
from server.guardrails.verdict import Action, Verdict
from tests.support.hypothesis_profiles import examples

MARK = "HARM"


def _flags_mark(context: str, window: str) -> Verdict | None:
    return Verdict("output_harm", Action.BLOCK, "marked", 1.0) if MARK in window else None


class Source:
    """An engine stream of scripted pieces that records what was pulled and whether it was closed."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.pulled = 0
        self.closed = False

    def __aiter__(self):
        return self

    async def __anext__(self) -> str:
        if self.pulled >= len(self.pieces):
            raise StopAsyncIteration
        self.pulled += 1
        return self.pieces[self.pulled - 1]

    async def aclose(self) -> None:
        self.closed = True


def _run(pieces: list[str], cfg: StreamRailConfig) -> tuple[list[str], StreamingRails, Source, list[int]]:
    """(what the client got, the rails, the source, how many pieces the source had given at each release)."""
    source = Source(pieces)
    rails: StreamingRails[str] = StreamingRails(None, cfg, extra=(_flags_mark,))
    got: list[str] = []
    pulled_at: list[int] = []

    async def main():
        async for p in guarded(source, lambda s: s, rails):
            got.append(p)
            pulled_at.append(source.pulled)

    asyncio.run(main())
    return got, rails, source, pulled_at


def test_a_draft_that_turns_harmful_at_token_20_never_shows_its_harmful_tokens():
    pieces = [f" w{i}" for i in range(19)] + [f" {MARK}{i}" for i in range(30)]
    got, rails, source, _ = _run(pieces, StreamRailConfig(first_window=4, window=16))
    assert got == pieces[:4]  # windows 1-4 released; 5-20 held the first harmful token and were stopped
    assert not any(MARK in g for g in got)
    assert rails.stopped is not None and rails.stopped.reason == "marked"
    assert source.closed and source.pulled == 20  # stopped at once: the engine is not asked for more


@given(st.integers(0, 60), st.integers(1, 8), st.integers(1, 24), st.booleans())
@settings(max_examples=examples(100), deadline=None)
def test_every_released_piece_was_judged_and_nothing_after_a_flag_leaves(n, first, window, harmful):
    turn = n // 2
    pieces = [f" {MARK}" if harmful and i >= turn else f" ok{i}" for i in range(n)]
    got, rails, source, pulled_at = _run(pieces, StreamRailConfig(first_window=first, window=window))
    assert got == pieces[: len(got)]
    assert not any(MARK in g for g in got)
    assert source.closed
    if not harmful or turn >= n:
        assert got == pieces and rails.stopped is None
    else:
        assert rails.stopped is not None and len(got) <= turn
    # a piece leaves only once its whole window was pulled (it was judged with the window)
    for k, at in enumerate(pulled_at):
        assert at >= min(len(pieces), k + 1)


def test_the_first_window_is_small_and_later_ones_full():
    pieces = [f" t{i}" for i in range(40)]
    _, rails, _, pulled_at = _run(pieces, StreamRailConfig(first_window=2, window=10))
    assert pulled_at[:2] == [2, 2]  # the first release waits for 2 pieces only
    assert pulled_at[2:12] == [12] * 10  # then 10 at a time
    assert rails.windows == 1 + 4  # 2 + 10 + 10 + 10 + the last 8
    assert rails.verdicts()[-1].action is Action.ALLOW


def test_shadow_mode_releases_everything_and_records_the_flag():
    pieces = [" fine", " text", f" {MARK}", " more"]
    got, rails, _, _ = _run(pieces, StreamRailConfig(first_window=2, window=2, shadow=True))
    assert got == pieces and rails.stopped is None
    assert [v.shadow for v in rails.verdicts() if v.action is Action.BLOCK] == [True]


def test_pieces_without_text_wait_their_turn():
    source = Source(["a", "", "b", ""])
    rails: StreamingRails[str] = StreamingRails(None, StreamRailConfig(first_window=8, window=8), extra=(_flags_mark,))

    async def main():
        return [p async for p in guarded(source, lambda s: s, rails)]

    assert asyncio.run(main()) == ["a", "", "b", ""]  # order kept; the empty pieces left with their window


def test_an_unfinished_sentence_is_held_and_judged_whole_with_what_follows():
    pieces = [" Fine", " start", " ok", ".", " Now", " here", " is", f" {MARK}", " more"]
    got, rails, _, _ = _run(pieces, StreamRailConfig(first_window=2, window=4))
    assert got == [" Fine", " start", " ok", "."]  # " Now here is" never left: its sentence turned harmful
    assert rails.stopped is not None
