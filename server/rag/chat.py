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
from server.rag.retrieval_workload import RetrievalWorkload
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
        the request's guardrail policy (``guardrails.chat`` or its tenant's; None: the default)."""
        t0 = time.perf_counter()
        policy = policy or self.cfg.policy
        guarding = policy.mode != "off"
        shadow = policy.mode == "shadow"
        k = k or self.cfg.k
        ends: dict[str, float] = {}

        async def finished(name: str, work):
            out = await work
            ends[name] = time.perf_counter()
            return out

        guard = finished("rails", asyncio.to_thread(self._check_message, question, policy))
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
            outcome.timings["total"] = time.perf_counter() - t0
            return
        hits = result.hits
        if not hits or hits[0].score < self.cfg.min_evidence:
            outcome.answer, outcome.outcome = ABSTAIN, "abstained"
            outcome.timings["total"] = time.perf_counter() - t0
            return
        # The chunk rail (instructions hidden in retrieved text) runs beside prefill, not before it:
        # nothing the model writes leaves before the rail has passed every chunk in its prompt, and a
        # flagged chunk aborts the draft, which restarts without it (rare: only attacks pay for it).
        chunk_check: asyncio.Future | None = asyncio.ensure_future(
            asyncio.to_thread(self._check_chunks, [h.chunk.text for h in hits], shadow)) if guarding else None
        retrieved = hits
        n_out = max_tokens or self.cfg.max_tokens
        draft, t_call, t_first = "", time.perf_counter(), None

        async def chunk_rail_passed() -> bool:
            """Await the chunk rail once; False when it dropped a chunk the prompt holds."""
            nonlocal chunk_check, retrieved
            if chunk_check is None:
                return True
            t_wait = time.perf_counter()
            chunk_verdicts = await chunk_check
            chunk_check = None
            outcome.verdicts += [v for v in chunk_verdicts if v.action is not Action.ALLOW]
            # every chunk verdict carries the time since the rail started: the longest is the rail's time
            outcome.timings["guard"] += max((v.seconds for v in chunk_verdicts), default=0.0)
            outcome.timings["guard_ttft"] += time.perf_counter() - t_wait  # only what the stream waited
            kept = [h for h, v in zip(retrieved, chunk_verdicts, strict=True)
                    if v.action is Action.ALLOW or v.shadow]
            dropped = {h.chunk.id for h in retrieved} - {h.chunk.id for h in kept}
            retrieved = kept
            return not any(h.chunk.id in dropped for h in hits)

        attempt = 0
        stream_cfg = StreamRailConfig(policy.first_window, policy.window, shadow=shadow)
        stream_rails: StreamingRails[Piece] = StreamingRails(self.rails.classifier, stream_cfg)
        output_guarded = guarding and policy.output
        try:
            while True:
                if not retrieved or retrieved[0].score < self.cfg.min_evidence:
                    outcome.answer, outcome.outcome = ABSTAIN, "abstained"
                    outcome.timings["total"] = time.perf_counter() - t0
                    return
                hits = fit_sources(retrieved, self.context_tokens(), n_out, clean_question)
                if not hits:
                    outcome.answer, outcome.outcome = ABSTAIN, "abstained"
                    outcome.timings["total"] = time.perf_counter() - t0
                    return
                system, user = render_prompt(clean_question, hits)
                params = SamplingParams(max_tokens=n_out, temperature=0.0, repetition_penalty=1.1).validate()
                job = LLMJob("chat", params, True, messages=(("system", system), ("user", user)))
                t_call, restart = time.perf_counter(), False
                # a restarted draft is a new engine request: the aborted one may still be winding down
                rid = request_id if attempt == 0 else f"{request_id}.restart{attempt}"
                attempt += 1
                stream_rails = StreamingRails(self.rails.classifier, stream_cfg)

                async def engine_pieces(job=job, rid=rid) -> AsyncIterator[Piece]:
                    """The engine's pieces, stopped when the chunk rail drops a source of the prompt."""
                    nonlocal restart
                    stream = self.generate(job, timeout_s, rid)
                    try:
                        async for piece in stream:
                            if piece.text and chunk_check is not None and not await chunk_rail_passed():
                                restart = True
                                return
                            reason = piece.finish_reason
                            if reason is not None and not reason.asked_for and reason is not FinishReason.CANCELLED:
                                raise GenerationFailedError(f"generation ended: {reason}: {piece.error}")
                            yield piece
                    finally:
                        await stream.aclose()  # closing the stream aborts the request in the engine

                # nothing is sent before the streaming rails judged it (server/guardrails/streaming.py)
                released = (guarded(engine_pieces(), lambda p: p.text, stream_rails, lambda p: max(1, len(p.token_ids)))
                            if output_guarded else engine_pieces())
                async for piece in released:
                    if piece.text:
                        if t_first is None:
                            t_first = time.perf_counter()
                            outcome.timings["guard_ttft"] += stream_rails.seconds
                            outcome.timings["first_token"] = t_first - t0
                        draft += piece.text
                        yield piece.text
                if restart:
                    draft = ""
                    continue
                if not await chunk_rail_passed():
                    restart = True  # no text came (an empty draft): the sources still had to pass
                    draft = ""
                    continue
                break
        finally:
            if chunk_check is not None:
                chunk_check.cancel()
        t_end = time.perf_counter()
        outcome.timings.update(prefill=(t_first or t_end) - t_call, decode=t_end - (t_first or t_end))
        withheld = stream_rails.stopped
        outcome.verdicts += stream_rails.verdicts() if output_guarded else []
        outcome.timings["guard"] += stream_rails.seconds
        if withheld is None and draft.strip() and draft.strip() != ABSTAIN:
            ground = await asyncio.to_thread(grounding, draft, [h.chunk.text for h in hits], self.embed,
                                             self.cfg.grounding)
            outcome.verdicts.append(ground)
            outcome.timings["guard"] += ground.seconds
            if ground.action is Action.ALLOW:
                outcome.answer, outcome.outcome = draft.strip(), "answered"
                outcome.citations = _cited(draft, hits)
                outcome.timings["total"] = time.perf_counter() - t0
                return
        if hits[0].score < self.cfg.trust_evidence:
            outcome.answer, outcome.outcome = ABSTAIN, "abstained"
            outcome.timings["total"] = time.perf_counter() - t0
            return
        answer, cited = await asyncio.to_thread(extractive_answer, result.query_vec, hits, self.embed,
                                                self.cfg.extractive_sentences,
                                                functools.partial(flagged_sentences, self.rails.classifier)
                                                if guarding else None)
        outcome.answer, outcome.outcome, outcome.citations = answer, "extractive" if cited else "abstained", cited
        outcome.timings["total"] = time.perf_counter() - t0


    def _check_message(self, question: str, policy: GuardrailPolicy) -> tuple[str, list[Verdict]]:
        """The input rails under ``policy``: (the question as the model will see it, verdicts)."""
        if policy.mode == "off" or not policy.input:
            return (redact(question).text if policy.redact_pii else question), []
        clean, verdicts = self.rails.check_message(question)
        if policy.mode == "shadow":
            verdicts = [dataclasses.replace(v, shadow=v.action is Action.BLOCK) for v in verdicts]
        return (clean if policy.redact_pii else question), verdicts

    def _check_chunks(self, texts: list[str], shadow: bool) -> list[Verdict]:
        verdicts = self.rails.check_chunks(texts)
        return [dataclasses.replace(v, shadow=v.action is Action.DROP) for v in verdicts] if shadow else verdicts


def _cited(draft: str, hits: list[Hit]) -> list[Hit]:
    """Sources the draft names as [n]; the top source when it names none."""
    named = sorted({int(m) for m in re.findall(r"\[(\d{1,2})\]", draft) if 1 <= int(m) <= len(hits)})
    return [hits[n - 1] for n in named] or hits[:1]
