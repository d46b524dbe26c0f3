"""Guardrails for chat: local rules and classifiers only (no LLM calls), each verdict with a reason
code. Input rails look at the user's message and at retrieved documents (injection hidden in a
source); output rails at the answer (toxicity, grounding in the retrieved context)."""
