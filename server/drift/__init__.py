"""Drift of served inputs and scores against the training reference: the live monitor per model
(monitor.py), the loop that feeds and evaluates them in the gateway (loop.py), what it publishes
(publish.py: gauges, log events) and the batch report of a data file (batch_report.py). The PSI/KS
kernels are in kernels/drift.py."""
