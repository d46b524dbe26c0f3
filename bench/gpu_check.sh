#!/usr/bin/env bash
# The GPU check in one run (bench/gpu_check.py has the sections, budgets and exit codes).
#
# On the CPU machine first:   python -m bench.gpu_check prepare     (writes .bench-cache/gpu_check/)
# On the device:              bash bench/gpu_check.sh [--budget-s 450] [--model PATH] [--out DIR]
#   carrying .bench-cache/gpu_check (model.pt <= 16 MB, plus the pure-Python `gguf` package that our
#   weight modules import and the device lacks). Reports go to $OUT when set (the device's folder
#   that comes back), else bench/results/.
# Exit codes: 0 done, 1 a correctness check failed, 2 carried model missing/malformed,
#   3 no CUDA device (the CPU part passed; the dry run on the CPU machine stops here), 124 timed out.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch" 2>/dev/null && command -v python >/dev/null; then
    PY=python  # some images have torch only under `python`
fi
if ! "$PY" -c "import gguf" 2>/dev/null; then
    export PYTHONPATH=".bench-cache/gpu_check/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# under 8 minutes whatever happens: sections stop starting at --budget-s (450 s), this is the backstop
exec timeout 470 "$PY" -m bench.gpu_check "$@"
