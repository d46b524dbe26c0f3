"""Candidates we measured against the default LLM backend and did not ship (kept to rerun the comparison)."""
