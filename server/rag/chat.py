"""Chat over the retrieved sources: retrieve → input rails → prompt template → LLM stream → output
rails → an answer with citations, or an abstention, or a refusal. No gRPC here (the ChatService
servicer translates); the LLM is reached through the gateway's LLM endpoint, like any client call.

Order and overlap: the input rails (embedding the message's windows) and retrieval (embedding the
question, searching) run concurrently in worker threads, so the rails add little to time to first
token; a blocked message never reaches the model. Retrieved chunks pass the chunk rail (hidden
instructions are dropped) while the model prefills: no draft text leaves before the rail has passed
every chunk in the prompt, and a flagged chunk restarts the draft without it. Weak evidence (best
retrieval score below ``min_evidence``) abstains without generating. The draft streams in windows,
each released only after the streaming output rails judged it (harmful compliance, profanity:
``server/guardrails/streaming.py``), so a draft that turns harmful stops before its harmful text is
sent; once complete it must be grounded in the sources, else the answer is the extractive
fallback (the source sentences closest to the question, cited) when the evidence is strong
(``trust_evidence``), and an abstention when it is only moderate: a model that says "not in the
sources" over loosely related chunks is believed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from server.config import GuardrailPolicy
from server.executors import RAILS, RETRIEVAL, run_in
from server.guardrails.classifier import RiskClassifier
from server.guardrails.input_rails import CHUNK_RULES, INJECTION_RULES, InputRails
from server.guardrails.output_rails import GroundingConfig, grounding, split_sentences
from server.guardrails.streaming import StreamingRails, StreamRailConfig, guarded
from server.guardrails.verdict import Action, Verdict
from server.llm.outputs import FinishReason
from server.llm.params import SamplingParams
from server.llm.serving import LLMJob, Piece
from server.rag.filters import ChunkFilter
from server.rag.pii import redact
from server.rag.retrieval_workload import RetrievalWorkload, SearchResult
from server.rag.retriever import Hit

PROMPTS = Path(__file__).with_name("prompts")
PROMPT_VERSION = "answer_v1"
ABSTAIN = "Not in the provided sources."
REFUSE = "I can't help with that request."

# generate(job, timeout_s, request_id) -> pieces: the gateway's LLM endpoint
Generate = Callable[[LLMJob, float | None, str], AsyncIterator[Piece]]


@dataclass(frozen=True, slots=True)
class ChatConfig:
    k: int = 4
    max_tokens: int = 96
    min_evidence: float = 0.35  # best retrieval cosine below this: abstain without generating
    # between min_evidence and this, the sources are only loosely related: when the model says the
    # answer is not in them, or its draft is not grounded, abstain instead of extracting sentences
    trust_evidence: float = 0.5
    extractive_sentences: int = 2
    # the guardrails when the request brings no policy of its own (GuardrailsConfig.chat's default)
    policy: GuardrailPolicy = field(default_factory=lambda: GuardrailPolicy(redact_pii=True))
    grounding: GroundingConfig = field(default_factory=GroundingConfig)


@dataclass(slots=True)
class AskOutcome:
    """The last message's content."""

    answer: str = ""
    outcome: str = ""  # answered | extractive | abstained | refused
    citations: list[Hit] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    # seconds: embed, search, guard (all rails), guard_ttft (rails on the path to the first token),
    # prefill, first_token (from the call), decode, total
    timings: dict[str, float] = field(default_factory=dict)
    prompt_version: str = PROMPT_VERSION


def render_prompt(question: str, hits: list[Hit], version: str = PROMPT_VERSION) -> tuple[str, str]:
    """(system, user) messages from the versioned template file."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(PROMPTS), autoescape=False,
                             undefined=jinja2.StrictUndefined)
    sources = [{"n": i + 1, "title": h.chunk.title, "section": h.chunk.section, "text": h.chunk.text}
               for i, h in enumerate(hits)]
    rendered = json.loads(env.get_template(f"{version}.jinja").render(question=question, sources=sources))
    return rendered["system"], rendered["user"]


def extractive_answer(question_vec: np.ndarray, hits: list[Hit], embed: Callable[[list[str]], np.ndarray],
                      n: int, flagged: Callable[[list[str]], np.ndarray] | None = None) -> tuple[str, list[Hit]]:
    """The ``n`` source sentences closest to the question (in source order), and the chunks cited.
    ``flagged`` (sentences → bool per sentence): sentences the rails flag are never quoted (an
    instruction planted in a source that passed the chunk rail must not become the answer)."""
    sentences = [(h, s) for h in hits for s in split_sentences(h.chunk.text)]
    if sentences and flagged is not None:
        bad = flagged([s for _, s in sentences])
        sentences = [x for x, b in zip(sentences, bad, strict=True) if not b]
    if not sentences:
        return ABSTAIN, []
    sims = embed([s for _, s in sentences]) @ question_vec
    best = sorted(np.argsort(-sims)[:n])
    cited: list[Hit] = []
    for i in best:
        if sentences[i][0] not in cited:
            cited.append(sentences[i][0])
    return " ".join(sentences[i][1] for i in best), cited


def flagged_sentences(classifier: RiskClassifier, sentences: list[str]) -> np.ndarray:
    """Per sentence: an injection (a rule or the head) or a harmful compliance (the output head)."""
    scores = classifier.scores(sentences, ("injection", "harmful_output"))
    rules = np.array([any(p.search(s) for _, p in (*INJECTION_RULES, *CHUNK_RULES)) for s in sentences], dtype=bool)
    return (rules | (scores["injection"] >= classifier.heads["injection"].threshold)
            | (scores["harmful_output"] >= classifier.heads["harmful_output"].threshold))


class GenerationFailedError(RuntimeError):
    """The LLM ended the draft with a failure (deadline, engine stopped, failed step)."""


CHARS_PER_TOKEN = 3.0  # conservative for English and code with this BPE (measured ~3.6 on the corpus)
PROMPT_OVERHEAD_TOKENS = 96  # template text and chat markup around the sources


def fit_sources(hits: list[Hit], context_tokens: int, max_tokens: int, question: str) -> list[Hit]:
    """The best-ranked sources whose text fits the model's context beside the question and the
    answer; the last one kept may be cut short. The gateway cannot tokenize for a remote engine, so
    the budget is in characters at a conservative rate."""
    budget = int((context_tokens - max_tokens - PROMPT_OVERHEAD_TOKENS) * CHARS_PER_TOKEN) - len(question)
    kept: list[Hit] = []
    for h in hits:
        if budget <= 200:
            break
        text = h.chunk.text
        if len(text) > budget:
            text = text[:budget].rsplit(" ", 1)[0]
            h = Hit(dataclasses.replace(h.chunk, text=text), h.score)
        kept.append(h)
        budget -= len(text) + 40
    return kept


@dataclass(slots=True)
class _Draft:
    """One Ask's draft across restarts: the sources in its prompt, its text, when it was asked for
    and when its first text came, and the streaming rails that judged it."""

    hits: list[Hit]
    t_call: float
    text: str = ""
    t_first: float | None = None
    stream_rails: StreamingRails[Piece] | None = None
    output_guarded: bool = False
    abstained: bool = False  # the sources left were too few or too weak to draft from


class _ChunkRail:
    """The chunk rail (instructions hidden in retrieved text), run beside prefill rather than before
    it: nothing the model writes leaves before the rail has passed every chunk in its prompt, and a
    flagged chunk aborts the draft, which restarts without it (rare: only attacks pay for it)."""

    def __init__(self, pipeline: ChatPipeline, hits: list[Hit], policy: GuardrailPolicy, outcome: AskOutcome) -> None:
        self.retrieved = hits
        self.outcome = outcome
        self._check: asyncio.Future | None = (
            asyncio.ensure_future(run_in(RAILS, pipeline.check_chunks, [h.chunk.text for h in hits],
                                                    policy.mode == "shadow"))
            if policy.mode != "off" else None
        )

    @property
    def pending(self) -> bool:
        return self._check is not None

    async def passed(self, in_prompt: list[Hit]) -> bool:
        """Await the rail once; False when it dropped a chunk of ``in_prompt``."""
        if self._check is None:
            return True
        t_wait = time.perf_counter()
        verdicts = await self._check
        self._check = None
        self.outcome.verdicts += [v for v in verdicts if v.action is not Action.ALLOW]
        # every chunk verdict carries the time since the rail started: the longest is the rail's time
        self.outcome.timings["guard"] += max((v.seconds for v in verdicts), default=0.0)
        self.outcome.timings["guard_ttft"] += time.perf_counter() - t_wait  # only what the stream waited
        kept = [h for h, v in zip(self.retrieved, verdicts, strict=True) if v.action is Action.ALLOW or v.shadow]
        dropped = {h.chunk.id for h in self.retrieved} - {h.chunk.id for h in kept}
        self.retrieved = kept
        return not any(h.chunk.id in dropped for h in in_prompt)

    def cancel(self) -> None:
        if self._check is not None:
            self._check.cancel()


class ChatPipeline:
    def __init__(self, rag: RetrievalWorkload, rails: InputRails, generate: Generate, context_tokens: Callable[[], int],
                 cfg: ChatConfig = ChatConfig()) -> None:
        self.rag = rag
        self.rails = rails
        self.generate = generate
        self.context_tokens = context_tokens  # the served model's context length (EngineInfo.max_model_len)
        self.cfg = cfg

    @property
    def embed(self) -> Callable[[list[str]], np.ndarray]:
        assert self.rag.retriever is not None
        return self.rag.retriever.embedder.encode

    async def ask(self, question: str, k: int | None, where: ChunkFilter | None, max_tokens: int | None,
                  request_id: str, timeout_s: float | None, outcome: AskOutcome,
                  policy: GuardrailPolicy | None = None) -> AsyncIterator[str]:
        """Yield draft text pieces; fills ``outcome`` (read it once the iterator ends). ``policy``:
        the request's guardrail policy (``guardrails.chat`` or its tenant's; None: the default).

        The steps: the input rails beside retrieval (refuse, or abstain on weak evidence); the chunk
        rail beside prefill; drafts, restarted without a chunk the rail drops, released through the
        streaming rails; then grounding, or an extractive answer, or abstention."""
        t0 = time.perf_counter()
        policy = policy or self.cfg.policy
        try:
            screened = await self._screen(question, k or self.cfg.k, where, policy, outcome)
            if screened is None:
                return
            question_clean, result = screened
            draft = _Draft(hits=result.hits, t_call=time.perf_counter())
            rail = _ChunkRail(self, result.hits, policy, outcome)
            try:
                async for text in self._drafts(question_clean, draft, rail, policy, max_tokens, request_id,
                                               timeout_s, outcome, t0):
                    yield text
            finally:
                rail.cancel()
            if draft.abstained:
                outcome.answer, outcome.outcome = ABSTAIN, "abstained"
                return
            await self._conclude(draft, result.query_vec, policy, outcome)
        finally:
            outcome.timings["total"] = time.perf_counter() - t0

    async def _screen(self, question: str, k: int, where: ChunkFilter | None, policy: GuardrailPolicy,
                      outcome: AskOutcome) -> tuple[str, SearchResult] | None:
        """The input rails beside retrieval: (the question the model will see, the search result), or
        None with the outcome set when the rails refuse or the evidence is too weak."""
        ends: dict[str, float] = {}

        async def finished(name: str, work):
            out = await work
            ends[name] = time.perf_counter()
            return out

        guard = finished("rails", run_in(RAILS, self._check_message, question, policy))
        search = finished("search", self.rag.search(question, k, where))
        (clean_question, verdicts), result = await asyncio.gather(guard, search)
        outcome.verdicts += verdicts
        # guard_ttft: rail time on the way to the first token; the input rails count only for the
        # time they outlast retrieval (they run beside it)
        outcome.timings.update(embed=result.embed_s, search=result.search_s,
                               guard=sum(v.seconds for v in verdicts),
                               guard_ttft=max(0.0, ends["rails"] - ends["search"]))
        if any(v.blocks for v in verdicts):
            outcome.answer, outcome.outcome = REFUSE, "refused"
            return None
        if not result.hits or result.hits[0].score < self.cfg.min_evidence:
            outcome.answer, outcome.outcome = ABSTAIN, "abstained"
            return None
        return clean_question, result

    async def _drafts(self, question: str, draft: _Draft, rail: _ChunkRail, policy: GuardrailPolicy,
                      max_tokens: int | None, request_id: str, timeout_s: float | None, outcome: AskOutcome,
                      t0: float) -> AsyncIterator[str]:
        """Draft until one completes with every source of its prompt passed by the chunk rail; a
        dropped source restarts the draft without it (``draft.abstained`` when too little is left)."""
        n_out = max_tokens or self.cfg.max_tokens
        stream_cfg = StreamRailConfig(policy.first_window, policy.window, shadow=policy.mode == "shadow")
        output_guarded = policy.mode != "off" and policy.output
        attempt = 0
        while True:
            if not rail.retrieved or rail.retrieved[0].score < self.cfg.min_evidence:
                draft.abstained = True
                return
            draft.hits = fit_sources(rail.retrieved, self.context_tokens(), n_out, question)
            if not draft.hits:
                draft.abstained = True
                return
            system, user = render_prompt(question, draft.hits)
            params = SamplingParams(max_tokens=n_out, temperature=0.0, repetition_penalty=1.1,
                                    request_class="rag").validate()
            job = LLMJob("chat", params, True, messages=(("system", system), ("user", user)))
            draft.t_call, draft.text, restart = time.perf_counter(), "", [False]
            # a restarted draft is a new engine request: the aborted one may still be winding down
            rid = request_id if attempt == 0 else f"{request_id}.restart{attempt}"
            attempt += 1
            draft.stream_rails = StreamingRails(self.rails.classifier, stream_cfg)
            pieces = self._engine_pieces(job, rid, timeout_s, rail, draft.hits, restart)
            # nothing is sent before the streaming rails judged it (server/guardrails/streaming.py)
            released = (guarded(pieces, lambda p: p.text, draft.stream_rails, lambda p: max(1, len(p.token_ids)))
                        if output_guarded else pieces)
            async for piece in released:
                if piece.text:
                    if draft.t_first is None:
                        draft.t_first = time.perf_counter()
                        outcome.timings["guard_ttft"] += draft.stream_rails.seconds
                        outcome.timings["first_token"] = draft.t_first - t0
                    draft.text += piece.text
                    yield piece.text
            if restart[0]:
                continue
            if not await rail.passed(draft.hits):  # no text came (an empty draft): the sources still had to pass
                continue
            draft.output_guarded = output_guarded
            return

    async def _engine_pieces(self, job: LLMJob, rid: str, timeout_s: float | None, rail: _ChunkRail,
                             in_prompt: list[Hit], restart: list[bool]) -> AsyncIterator[Piece]:
        """The engine's pieces, stopped (``restart[0]`` set) when the chunk rail drops a source of
        the prompt; an unasked-for finish raises GenerationFailedError."""
        stream = self.generate(job, timeout_s, rid)
        try:
            async for piece in stream:
                if piece.text and rail.pending and not await rail.passed(in_prompt):
                    restart[0] = True
                    return
                reason = piece.finish_reason
                if reason is not None and not reason.asked_for and reason is not FinishReason.CANCELLED:
                    raise GenerationFailedError(f"generation ended: {reason}: {piece.error}")
                yield piece
        finally:
            await stream.aclose()  # closing the stream aborts the request in the engine

    async def _conclude(self, draft: _Draft, query_vec: np.ndarray, policy: GuardrailPolicy,
                        outcome: AskOutcome) -> None:
        """The answer: the grounded draft; else, with sources trusted enough, sentences extracted
        from them; else abstention."""
        t_end = time.perf_counter()
        outcome.timings.update(prefill=(draft.t_first or t_end) - draft.t_call,
                               decode=t_end - (draft.t_first or t_end))
        rails = draft.stream_rails
        withheld = rails.stopped if rails is not None else None
        if rails is not None:
            outcome.verdicts += rails.verdicts() if draft.output_guarded else []
            outcome.timings["guard"] += rails.seconds
        hits, text = draft.hits, draft.text
        if withheld is None and text.strip() and text.strip() != ABSTAIN:
            ground = await run_in(RAILS, grounding, text, [h.chunk.text for h in hits], self.embed,
                                             self.cfg.grounding)
            outcome.verdicts.append(ground)
            outcome.timings["guard"] += ground.seconds
            if ground.action is Action.ALLOW:
                outcome.answer, outcome.outcome = text.strip(), "answered"
                outcome.citations = _cited(text, hits)
                return
        if hits[0].score < self.cfg.trust_evidence:
            outcome.answer, outcome.outcome = ABSTAIN, "abstained"
            return
        answer, cited = await run_in(RETRIEVAL, extractive_answer, query_vec, hits, self.embed,
                                                self.cfg.extractive_sentences,
                                                functools.partial(flagged_sentences, self.rails.classifier)
                                                if policy.mode != "off" else None)
        outcome.answer, outcome.outcome, outcome.citations = answer, "extractive" if cited else "abstained", cited

    def _check_message(self, question: str, policy: GuardrailPolicy) -> tuple[str, list[Verdict]]:
        """The input rails under ``policy``: (the question as the model will see it, verdicts)."""
        if policy.mode == "off" or not policy.input:
            return (redact(question).text if policy.redact_pii else question), []
        clean, verdicts = self.rails.check_message(question)
        if policy.mode == "shadow":
            verdicts = [dataclasses.replace(v, shadow=v.action is Action.BLOCK) for v in verdicts]
        return (clean if policy.redact_pii else question), verdicts

    def check_chunks(self, texts: list[str], shadow: bool) -> list[Verdict]:
        verdicts = self.rails.check_chunks(texts)
        return [dataclasses.replace(v, shadow=v.action is Action.DROP) for v in verdicts] if shadow else verdicts


def _cited(draft: str, hits: list[Hit]) -> list[Hit]:
    """Sources the draft names as [n]; the top source when it names none."""
    named = sorted({int(m) for m in re.findall(r"\[(\d{1,2})\]", draft) if 1 <= int(m) <= len(hits)})
    return [hits[n - 1] for n in named] or hits[:1]
