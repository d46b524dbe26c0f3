"""Which guardrail policy a request gets: its tenant's, else its model's, else its door's default.

The order follows who owns the risk: an operator who gives a tenant (an API key) its own policy
means it for every door that tenant calls; a model's policy covers the LLM doors of that model;
the door's default covers everyone else.
"""

from __future__ import annotations

from typing import Literal

from server.config import GuardrailPolicy, Settings

Door = Literal["chat", "llm"]


def resolve(settings: Settings, door: Door, tenant: str | None = None, model: str | None = None) -> GuardrailPolicy:
    for t in settings.security.tenants:
        if t.name == tenant and t.guardrails is not None:
            return t.guardrails
    cfg = settings.guardrails
    if door == "llm" and model is not None and model in cfg.models:
        return cfg.models[model]
    return cfg.chat if door == "chat" else cfg.llm


def llm_doors_guarded(settings: Settings) -> bool:
    """True when some request to an LLM door may run a rail (so the rails must be loaded)."""
    policies = [settings.guardrails.llm, *settings.guardrails.models.values(),
                *(t.guardrails for t in settings.security.tenants if t.guardrails is not None)]
    return any(p.mode != "off" and (p.input or p.output) for p in policies)
