"""Sampling parameters of one request, validated once at the door.

Defaults follow vLLM/OpenAI (temperature 1, top_p 1, no top-k, no penalty) so clients moving
over get the same behaviour; ``temperature == 0`` means greedy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from server.llm.errors import LLMRequestError

MAX_STOP_STRINGS = 8
MAX_STOP_LEN = 64
MAX_STOP_TOKEN_IDS = 16
MAX_PRIORITY = 1000
MAX_TOP_LOGPROBS = 20  # OpenAI's limit for chat completions


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int = 128
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    ignore_eos: bool = False
    presence_penalty: float = 0.0  # OpenAI: minus this once for every token already generated
    frequency_penalty: float = 0.0  # OpenAI: minus this per occurrence in the generated tokens
    min_p: float = 0.0  # drop tokens whose probability is below min_p x the top token's
    stop_token_ids: tuple[int, ...] = field(default_factory=tuple)
    # scheduling, carried with the sampling options: lower runs first, and a waiting request with a
    # lower value than a running one takes its slot when none is free (the running one resumes later)
    priority: int = 0
    response_format: str = ""  # "" | "json_object" | "json_schema" (server/llm/structured.py)
    json_schema: str = ""  # the JSON Schema the output must validate against (response_format json_schema)
    # log-probabilities of each sampled token (and of the top_logprobs likeliest), from the raw logits
    logprobs: bool = False
    top_logprobs: int = 0
    # the admission class (llm.admission): "rag" for retrieval-augmented chats (their prompts are long:
    # a 1 s objective for short chats must not refuse them); "" = by priority, > 0 batch, else interactive
    request_class: str = ""

    @property
    def admission_class(self) -> str:
        if self.request_class:
            return self.request_class
        return "batch" if self.priority > 0 else "interactive"

    @property
    def penalized(self) -> bool:
        """Whether the generated tokens' counts change the logits (OpenAI's two penalties)."""
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def validate(self) -> SamplingParams:
        def bad(name: str, reason: str) -> LLMRequestError:
            return LLMRequestError(name, reason)

        if not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            raise bad("max_tokens", f"must be a positive integer, got {self.max_tokens!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise bad("temperature", f"must be >= 0 (0 = greedy), got {self.temperature!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise bad("top_k", f"must be >= 0 (0 = off), got {self.top_k!r}")
        if not math.isfinite(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise bad("top_p", f"must be in (0, 1], got {self.top_p!r}")
        if not math.isfinite(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise bad("repetition_penalty", f"must be > 0 (1 = off), got {self.repetition_penalty!r}")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not math.isfinite(value) or not -2.0 <= value <= 2.0:
                raise bad(name, f"must be in [-2, 2] (0 = off), got {value!r}")
        if not math.isfinite(self.min_p) or not 0.0 <= self.min_p <= 1.0:
            raise bad("min_p", f"must be in [0, 1] (0 = off), got {self.min_p!r}")
        if len(self.stop_token_ids) > MAX_STOP_TOKEN_IDS:
            raise bad("stop_token_ids", f"at most {MAX_STOP_TOKEN_IDS} ids, got {len(self.stop_token_ids)}")
        if any(t < 0 for t in self.stop_token_ids):
            raise bad("stop_token_ids", "ids must be >= 0")
        if not isinstance(self.priority, int) or not -MAX_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise bad("priority", f"must be an integer in [-{MAX_PRIORITY}, {MAX_PRIORITY}], got {self.priority!r}")
        if not isinstance(self.top_logprobs, int) or not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise bad("top_logprobs", f"must be an integer in [0, {MAX_TOP_LOGPROBS}], got {self.top_logprobs!r}")
        if self.top_logprobs and not self.logprobs:
            raise bad("top_logprobs", "needs logprobs")
        if self.response_format or self.json_schema:
            from server.llm.structured import check_format

            problem = check_format(self.response_format, self.json_schema)
            if problem:
                raise bad("response_format", problem)
            if self.ignore_eos:
                raise bad("ignore_eos", "cannot be combined with a response format (a complete document ends it)")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise bad("seed", f"must be in [0, 2**63), got {self.seed!r}")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise bad("stop", f"at most {MAX_STOP_STRINGS} stop strings, got {len(self.stop)}")
        for s in self.stop:
            if not s:
                raise bad("stop", "stop strings must not be empty")
            if len(s) > MAX_STOP_LEN:
                raise bad("stop", f"stop strings are at most {MAX_STOP_LEN} characters")
        return self
