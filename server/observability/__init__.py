"""Metrics and structured logs: one place that names every exported series."""
