"""Benchmarks. Every ``python -m bench.…`` imports this first."""

import os

# transformers (a peer and reference here) must not ask for Hugging Face's hub kernels: that package's
# import name is our top-level kernels/ (docs/testing.md). The Makefile exports the same.
os.environ.setdefault("USE_HUB_KERNELS", "NO")
