#!/usr/bin/env bash
# Build llama.cpp's llama-bench, llama-batched-bench, llama-tokenize and llama-server from the
# llama-cpp-python sdist (the package registry is the only source we can reach), into
# .peers/llama.cpp/build/bin. Takes ~5-10 minutes on 2 cores; only `make bench` runs it.
#
# LLAMA_TIER=avx2 builds the AVX2 tier instead (GGML_NATIVE=OFF, AVX2 + FMA + F16C + BMI2, no
# AVX-512) into .peers/llama.cpp/build-avx2: what llama.cpp runs on a CPU without AVX-512, so that a
# machine with AVX-512 can measure both tiers side by side (our kernels' AVX2 path is forced with
# llm_step.force_avx2). It runs on any AVX2 CPU, so it is not rebuilt when the CPU changes.
#
# Works on every x86-64 CPU this machine class meets:
# * GGML_NATIVE=ON tunes for the CPU it builds on; on a CPU that reports AMX, ggml's AMX matmul
#   dies with SIGILL (ldtilecfg: the process never asks the kernel for the tile state), so on such
#   a CPU the AMX instructions are switched off with -mno-amx-* (AVX-512 VNNI stays on).
# * A native build only runs on the CPU it was built for (a Zen 4 build SIGILLs on a CPU without
#   AVX-512), so the build records the CPU and ISA it was made for in build/stackserve-build.json
#   and is redone when the CPU changes. llm_bench.py prints that record.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
DEST=$ROOT/.peers
TIER=${LLAMA_TIER:-native}
case $TIER in
  native) BUILD=$DEST/llama.cpp/build ;;
  avx2) BUILD=$DEST/llama.cpp/build-avx2 ;;
  *) echo "LLAMA_TIER must be native or avx2, got $TIER" >&2; exit 2 ;;
esac
BIN=$BUILD/bin
STAMP=$BUILD/stackserve-build.json
VERSION=0.3.36

CPU_MODEL=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
CPU_FLAGS=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2- | tr ' ' '\n' | grep -E '^(avx|avx2|fma|f16c|avx_vnni|avx512.*|amx_.*)$' | sort | tr '\n' ' ' | sed 's/ $//')
EXTRA_FLAGS=""
if grep -m1 '^flags' /proc/cpuinfo | grep -qw amx_tile; then
  EXTRA_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF
            -DLLAMA_BUILD_SERVER=ON -DLLAMA_OPENSSL=OFF "-DCMAKE_C_FLAGS=$EXTRA_FLAGS" "-DCMAKE_CXX_FLAGS=$EXTRA_FLAGS")
if [[ $TIER == avx2 ]]; then
  CPU_MODEL="any x86-64 with AVX2"
  CPU_FLAGS="avx avx2 f16c fma"
  CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON
              -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DLLAMA_CURL=OFF
              -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_OPENSSL=OFF)
fi

if [[ -x $BIN/llama-bench && -x $BIN/llama-batched-bench && -x $BIN/llama-tokenize && -x $BIN/llama-server &&
      -f $STAMP ]] &&
   "$PY" - "$STAMP" "$CPU_MODEL" "$CPU_FLAGS" <<'PYEOF'
import json, sys
rec = json.load(open(sys.argv[1]))
sys.exit(0 if (rec.get("cpu"), rec.get("cpu_isa")) == (sys.argv[2], sys.argv[3]) else 1)
PYEOF
then
  echo "llama.cpp peers ($TIER) already built for this CPU ($CPU_MODEL) in $BIN"; exit 0
fi
if [[ -x $BIN/llama-bench ]]; then
  echo "llama.cpp was built for another CPU (or without a build record): rebuilding for $CPU_MODEL"
fi
mkdir -p "$DEST"
if [[ ! -f $DEST/llama.cpp/CMakeLists.txt ]]; then
  "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$DEST/sdist"
  tar xzf "$DEST"/sdist/llama_cpp_python-$VERSION.tar.gz -C "$DEST"
  rm -rf "$DEST/llama.cpp"
  mv "$DEST"/llama_cpp_python-$VERSION/vendor/llama.cpp "$DEST/llama.cpp"
  rm -rf "$DEST"/llama_cpp_python-$VERSION
fi
rm -rf "$BUILD"
echo "cmake ${CMAKE_ARGS[*]}"
cmake -S "$DEST/llama.cpp" -B "$BUILD" "${CMAKE_ARGS[@]}" >/dev/null
cmake --build "$BUILD" --target llama-bench llama-batched-bench llama-tokenize llama-server -j "$(nproc)"
"$PY" - "$STAMP" "$CPU_MODEL" "$CPU_FLAGS" "$EXTRA_FLAGS" "$VERSION" "${CMAKE_ARGS[@]}" <<'PYEOF'
import json, subprocess, sys
path, cpu, isa, extra, version, *cmake = sys.argv[1:]
cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
json.dump({"source": f"llama-cpp-python {version} sdist (vendored llama.cpp)", "cpu": cpu, "cpu_isa": isa,
           "tier": "avx2" if "-DGGML_NATIVE=OFF" in cmake else "native",
           "extra_c_flags": extra, "cmake_args": cmake, "compiler": cc[0] if cc else "?"}, open(path, "w"), indent=2)
PYEOF
echo "built $BIN (record: $STAMP)"
