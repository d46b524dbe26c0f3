"""What a rail decides: the action, a reason code (a metric label), the evidence, the time it took."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.StrEnum):
    ALLOW = "allow"
    BLOCK = "block"  # refuse the request / withhold the output
    DROP = "drop"  # leave a retrieved chunk out of the context
    REDACT = "redact"  # text changed (PII) but the request goes on


@dataclass(frozen=True, slots=True)
class Verdict:
    rail: str  # injection | harmful | pii | toxicity | grounding | schema
    action: Action
    reason: str  # reason code: rule:ignore_instructions, similar:jailbreak, toxic, ungrounded, ...
    score: float = 0.0  # the evidence: a similarity, a probability, a supported share
    seconds: float = 0.0
    shadow: bool = False  # decided in shadow mode: logged and counted, not enforced

    @property
    def blocks(self) -> bool:
        return self.action is Action.BLOCK and not self.shadow
