"""Streaming output rails: generated text is held back in windows and released only once judged.

A rail that reads a stream after it was sent protects nobody: the client already has the text.
Here each piece the model writes waits in a window; when the window is full (``first_window`` tokens
for the first one, so time to first token grows little, ``window`` after that) it is judged, with
the tail of what was already released as context, by

- the ``harmful_output`` head (``classifier.py``): does this draft comply with a harmful request;
- the profanity model, sentence by sentence (``output_rails.toxicity``), for profanity only;
- any extra judge the caller adds (chat adds grounding in the retrieved sources),

and released only if every rail passes, up to its last sentence end: an unfinished sentence stays
held and is judged again, whole, with the next window (a draft that turns harmful mid-sentence is
judged on the harmful sentence, not on its harmless first words). The first failing window ends
the stream: nothing of it, or after it, leaves the server. In shadow mode verdicts are recorded
and everything is released.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from server.executors import RAILS, run_in
from server.guardrails.classifier import RiskClassifier
from server.guardrails.output_rails import split_sentences, toxicity
from server.guardrails.verdict import Action, Verdict

T = TypeVar("T")
CONTEXT_CHARS = 400  # released text given to the judges with each window
_SENTENCE_END = re.compile(r"[.!?:;]\s*$|\n")


@dataclass(frozen=True, slots=True)
class StreamRailConfig:
    first_window: int = 2  # tokens held before the first release (bench.guardrails: +6 % TTFT at 2, +25 % at 4)
    window: int = 16  # pieces held per later window
    toxicity_threshold: float = 0.9
    shadow: bool = False


Judge = Callable[[str, str], Verdict | None]  # (released context, window text) -> a BLOCK verdict or None


@dataclass(slots=True)
class StreamingRails(Generic[T]):
    """Holds pieces, hands out windows to judge, remembers what was released and why it stopped."""

    classifier: RiskClassifier | None
    cfg: StreamRailConfig = StreamRailConfig()
    extra: tuple[Judge, ...] = ()
    released: str = ""
    held: list[tuple[T, str, int]] = field(default_factory=list)  # (item, text, tokens)
    held_size: int = 0  # tokens held
    windows: int = 0
    seconds: float = 0.0  # time spent judging
    max_score: float = 0.0  # the highest harmful_output probability judged
    max_toxicity: float = 0.0
    stopped: Verdict | None = None
    shadow_flags: list[Verdict] = field(default_factory=list)

    def push(self, item: T, text: str, size: int = 1) -> bool:
        """Hold a piece of ``size`` tokens; True when the held window is full and should be judged now."""
        self.held.append((item, text, size))
        self.held_size += size
        limit = self.cfg.first_window if self.windows == 0 else self.cfg.window
        return self.held_size >= limit

    def judge(self) -> Verdict | None:
        """Judge the held window (blocking: run it in a worker thread). A BLOCK verdict when it must
        not be released (in shadow mode: recorded, None returned)."""
        t0 = time.perf_counter()
        window = "".join(t for _, t, _ in self.held)
        context = self.released[-CONTEXT_CHARS:]
        verdict = self._judge(context, window)
        self.seconds += time.perf_counter() - t0
        if verdict is not None and self.cfg.shadow:
            self.shadow_flags.append(Verdict(verdict.rail, verdict.action, verdict.reason, verdict.score,
                                             verdict.seconds, shadow=True))
            return None
        return verdict

    def _judge(self, context: str, window: str) -> Verdict | None:
        if not window.strip():
            return None
        t0 = time.perf_counter()
        if self.classifier is not None:
            # the window alone (a harmful sentence is not diluted by the harmless text before it) and
            # with its context (a harmful answer spread over windows), in one embed call
            head = self.classifier.heads["harmful_output"]
            texts = [window.strip(), (context + window).strip()] if context.strip() else [window.strip()]
            p = float(self.classifier.scores(texts, ("harmful_output",))["harmful_output"].max())
            self.max_score = max(self.max_score, p)
            if p >= head.threshold:
                return Verdict("output_harm", Action.BLOCK, "harmful_output", p, time.perf_counter() - t0)
        tail = context.rsplit("\n", 1)[-1] + window
        sentences = split_sentences(tail) or [tail.strip()]
        probs = toxicity(sentences)
        self.max_toxicity = max(self.max_toxicity, float(probs.max()) if len(probs) else 0.0)
        if len(probs) and probs.max() >= self.cfg.toxicity_threshold:
            return Verdict("toxicity", Action.BLOCK, "toxic", float(probs.max()), time.perf_counter() - t0)
        for judge in self.extra:
            v = judge(context, window)
            if v is not None:
                return v
        return None

    def release(self, everything: bool = False) -> list[T]:
        """The judged window's pieces, now safe to send: after the first window, only up to its last
        sentence end (the unfinished sentence stays held and is judged again with what follows, so
        a sentence that turns harmful is judged whole); all of it when it holds no sentence end, at
        the end of the stream, or when ``everything``."""
        cut = len(self.held)
        if self.windows > 0 and not everything:
            ends = [i for i, (_, t, _) in enumerate(self.held) if _SENTENCE_END.search(t)]
            if ends and ends[-1] < len(self.held) - 1:
                cut = ends[-1] + 1
        out, self.held = self.held[:cut], self.held[cut:]
        self.released += "".join(t for _, t, _ in out)
        self.held_size = sum(n for _, _, n in self.held)
        self.windows += 1
        return [item for item, _, _ in out]

    def verdicts(self) -> list[Verdict]:
        """What the stream's rails decided, for the request's record and the metrics."""
        if self.stopped is not None:
            return [self.stopped]
        return [*self.shadow_flags, Verdict("output_harm", Action.ALLOW, "clean", self.max_score, self.seconds),
                Verdict("toxicity", Action.ALLOW, "clean", self.max_toxicity, 0.0)]


async def guarded(pieces: AsyncIterator[T], text_of: Callable[[T], str], rails: StreamingRails[T],
                  size_of: Callable[[T], int] = lambda _: 1) -> AsyncIterator[T]:
    """Yield ``pieces`` window by window, each only after the rails passed it; stop at the first
    window that fails (``rails.stopped`` says why). Pieces without text pass straight through once
    everything before them has been released (a final piece with a finish reason, say)."""
    try:
        async for piece in pieces:
            text = text_of(piece)
            if not text:
                if not rails.held:
                    yield piece
                    continue
                rails.held.append((piece, "", 0))
                continue
            if rails.push(piece, text, size_of(piece)):
                verdict = await run_in(RAILS, rails.judge)
                if verdict is not None:
                    rails.stopped = verdict
                    return
                for item in rails.release():
                    yield item
        if rails.held:
            verdict = await run_in(RAILS, rails.judge)
            if verdict is not None:
                rails.stopped = verdict
                return
            for item in rails.release(everything=True):
                yield item
    finally:
        close = getattr(pieces, "aclose", None)
        if close is not None:
            await close()  # a stopped stream ends the generation behind it
