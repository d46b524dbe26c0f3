"""The data platform under the anomaly path: drops land in bronze, are typed, deduplicated, masked
and validated into silver (failures into quarantine), and become per-entity rolling features in
gold, incrementally and exactly once. docs/design/pipeline.md describes how the parts fit.

Modules, one job each: ``spec`` (the YAML contract), ``infer_spec`` (a spec learned from a file),
``drops`` (reading CSV/JSONL/Parquet as raw text), ``replay`` (the Shuttle set as timestamped
events), ``tables`` (where the Delta tables live, reading them), ``bronze`` (append-only landing),
``contract`` (schema breaks and typing), ``expectations`` (the Great Expectations gate),
``masking`` (PII column policies), ``silver``, ``feature_views`` (versioned gold schemas),
``gold``, ``checkpoints``, ``metrics``, ``runner`` (run and backfill), ``status``.
"""
