"""Guardrails on the raw LLM doors (LLMService.Generate/Chat/Complete and the OpenAI endpoints).

The same rails as chat, resolved per request (``policy.py``): the input rails judge the prompt (a
chat's user turns, a completion's prompt) before it reaches the engine; the streaming output rails
(``streaming.py``) hold the generated text in windows and release each only once judged. A refusal
is a normal completion whose finish reason is ``content_filter`` (OpenAI's shape): a refused prompt
gets ``REFUSAL`` as its text; a stream stopped mid-way ends with an empty final piece.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import numpy as np

from server.config import GuardrailPolicy, Settings
from server.executors import RAILS, run_in
from server.guardrails.input_rails import InputRailConfig, InputRails
from server.guardrails.policy import llm_doors_guarded, resolve
from server.guardrails.streaming import StreamingRails, StreamRailConfig, guarded
from server.guardrails.verdict import Action, Verdict
from server.llm.outputs import FinishReason
from server.llm.serving import LLMJob, Piece
from server.observability import metrics
from server.rag.pii import redact

log = logging.getLogger(__name__)
REFUSAL = "I can't help with that request."
PROMPT_CHARS = 8000  # the end of a longer prompt is judged (where the request usually is)


def prompt_text(job: LLMJob) -> str:
    """What the input rails read: every user (and system) turn of a chat, a completion's prompt."""
    if job.messages:
        text = "\n".join(content for role, content in job.messages if role in ("user", "system"))
    else:
        text = job.prompt or ""
    return text[-PROMPT_CHARS:]


def record(verdicts: list[Verdict]) -> None:
    for v in verdicts:
        metrics.GUARDRAIL_VERDICTS.labels(v.rail, v.action.value, v.reason, str(v.shadow).lower()).inc()
        metrics.GUARDRAIL_SECONDS.labels(v.rail).observe(v.seconds)


def _final_piece(finish: FinishReason, text: str = "", prompt_tokens: int = 0, output_tokens: int = 0) -> Piece:
    return Piece(text, [], [], finish, prompt_tokens, output_tokens, 0.0, 0.0, [], 0, 0, 0.0)


class LLMGuard:
    """Loads the rails when some policy needs them; applies the resolved policy per request."""

    def __init__(self, settings: Settings, embed: Callable[[list[str]], np.ndarray] | None = None) -> None:
        self.settings = settings
        self._embed = embed
        self.rails: InputRails | None = None
        self.needed = llm_doors_guarded(settings)

    async def start(self) -> None:
        """Load the embedder (unless one was given) and the heads: ~2 s, once, in a worker thread."""
        if not self.needed:
            log.warning("GUARDRAILS ARE OFF on the LLM doors (LLMService, /v1/completions, /v1/chat/completions): "
                        "prompts and completions are not moderated; set guardrails.llm.mode: enforce "
                        "(or a tenant's or model's guardrails) to moderate them")
            return
        embed = self._embed
        if embed is None:
            from server.rag.embedder import Embedder

            embed = (await asyncio.to_thread(Embedder, None, 8192, self.settings.rag.embedder.precision)).encode
        self.rails = await asyncio.to_thread(InputRails, embed, InputRailConfig())

    def policy(self, tenant: str | None, model: str | None) -> GuardrailPolicy | None:
        """The policy of this request, or None when nothing runs."""
        p = resolve(self.settings, "llm", tenant, model)
        return None if p.mode == "off" or self.rails is None else p

    async def admit(self, job: LLMJob, policy: GuardrailPolicy) -> tuple[LLMJob, Piece | None]:
        """(the job, PII redacted when the policy says so; a refusal piece when the prompt is refused)."""
        assert self.rails is not None
        if policy.redact_pii:
            job = _redacted(job)
        if not policy.input:
            return job, None
        _, verdicts = await run_in(RAILS, self.rails.check_message, prompt_text(job))
        shadow = policy.mode == "shadow"
        verdicts = [replace(v, shadow=shadow and v.action is Action.BLOCK) for v in verdicts if v.rail != "pii"]
        record(verdicts)
        if any(v.blocks for v in verdicts):
            return job, _final_piece(FinishReason.CONTENT_FILTER, REFUSAL)
        return job, None

    def output(self, pieces: AsyncIterator[Piece], policy: GuardrailPolicy) -> AsyncIterator[Piece]:
        """``pieces`` released window by window once judged; a stopped stream ends with a
        ``content_filter`` piece."""
        if not policy.output:
            return pieces
        assert self.rails is not None
        cfg = StreamRailConfig(first_window=policy.first_window, window=policy.window, shadow=policy.mode == "shadow")
        rails: StreamingRails[Piece] = StreamingRails(self.rails.classifier, cfg)
        return _judged(pieces, rails)


async def _judged(pieces: AsyncIterator[Piece], rails: StreamingRails[Piece]) -> AsyncIterator[Piece]:
    prompt_tokens = output_tokens = 0
    async for piece in guarded(pieces, lambda p: p.text, rails, lambda p: max(1, len(p.token_ids))):
        prompt_tokens = piece.prompt_tokens or prompt_tokens
        output_tokens = piece.output_tokens or output_tokens
        yield piece
    record(rails.verdicts())
    if rails.stopped is not None:
        yield _final_piece(FinishReason.CONTENT_FILTER, "", prompt_tokens, output_tokens)


def _redacted(job: LLMJob) -> LLMJob:
    if job.messages:
        return replace(job, messages=tuple((role, redact(text).text) for role, text in job.messages))
    if job.prompt is not None:
        return replace(job, prompt=redact(job.prompt).text, prompt_token_ids=None)
    return job
