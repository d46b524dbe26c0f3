#!/usr/bin/env bash
# Build llama.cpp's llama-bench and llama-batched-bench from the llama-cpp-python sdist (the
# package registry is the only source we can reach), into .peers/llama.cpp/build/bin.
# Takes ~5-10 minutes on 2 cores; only `make bench` runs it. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
DEST=$ROOT/.peers
BIN=$DEST/llama.cpp/build/bin
if [[ -x $BIN/llama-bench && -x $BIN/llama-batched-bench ]]; then
  echo "llama.cpp peers already built in $BIN"; exit 0
fi
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==0.3.36" -d "$DEST/sdist"
tar xzf "$DEST"/sdist/llama_cpp_python-*.tar.gz -C "$DEST"
rm -rf "$DEST/llama.cpp"
mv "$DEST"/llama_cpp_python-*/vendor/llama.cpp "$DEST/llama.cpp"
cmake -S "$DEST/llama.cpp" -B "$DEST/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF >/dev/null
cmake --build "$DEST/llama.cpp/build" --target llama-bench llama-batched-bench -j "$(nproc)"
echo "built $BIN"
