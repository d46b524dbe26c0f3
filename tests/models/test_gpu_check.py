"""bench/gpu_check.sh dry-run on the CPU: the carried artifact is small enough and reproduces the
fp32 reference, and the script gets through everything that needs no GPU (versions, the carried
model, imports) before it stops, with a clear message and its own exit code, where CUDA is needed.
A GPU machine gives about 15 minutes; a script that dies on a typo there wastes the lend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu_check
from server.llm.backends import fp32_linear
from server.llm.llama import LlamaModel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def carried(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu_check")
    assert gpu_check.prepare(out, gpu_check.TRUNC_LAYERS, gpu_check.TRUNC_VOCAB) == 0
    return out


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("OUT", None)
    return subprocess.run(["bash", str(ROOT / "bench/gpu_check.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)


def test_carried_model_is_small_and_reproduces_the_reference(carried):
    path = carried / "model.pt"
    assert path.stat().st_size <= gpu_check.MAX_MODEL_BYTES
    assert (carried / "site" / "gguf" / "__init__.py").exists()
    data = gpu_check.load_carried(path)
    w = data["weights"]
    assert (w.config.n_layers, w.config.vocab_size) == (gpu_check.TRUNC_LAYERS, gpu_check.TRUNC_VOCAB)
    assert data["full_config"]["n_layers"] == 30 and data["full_config"]["vocab_size"] == 49152
    logits, tokens = gpu_check.reference_run(LlamaModel(w, fp32_linear), data["prompt"], gpu_check.DECODE_STEPS)
    assert tokens == data["ref_tokens"]
    assert torch.equal(logits, data["ref_logits"])
    assert len(set(tokens)) > 2  # a real continuation, not one token repeated


def test_dry_run_stops_where_cuda_is_needed(carried):
    proc = run_script("--model", str(carried / "model.pt"), "--out", str(carried / "report"))
    assert proc.returncode == gpu_check.EXIT_NO_CUDA, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "NO CUDA DEVICE" in proc.stdout
    for line in ("torch: ", "triton: ", "transformers: ", "nvidia-smi: ", "carried model: 4 layers, 7168 tokens"):
        assert line in proc.stdout, line


@pytest.mark.slow
def test_cpu_rehearsal_runs_every_device_section(tmp_path):
    """``--rehearse-cpu``: every section the device runs (correctness of the triton backend and the
    static step compiled with fullgraph, the kernel timings, decode and TTFT for ours and the peers,
    transformers generate) on a tiny random model, in the Triton interpreter: no check fails, no
    section errs or is skipped, every contender has a row at every batch size."""
    proc = run_script("--rehearse-cpu", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert not report["errors"] and not report["skipped"], report
    assert report["checks"] and all(c["ok"] for c in report["checks"])
    assert any(c["check"].startswith("static decode step, triton linears, default") for c in report["checks"])
    decode = {(r["contender"], r["batch"]) for r in report["rows"] if r["section"] == "decode"}
    contenders = {c for c, _ in decode}
    assert len(contenders) == 6 and decode == {(c, b) for c in contenders for b in (1, 2)}
    assert len([r for r in report["rows"] if r["section"] == "ttft"]) == 3
    assert any(r["section"] == "kernel" for r in report["rows"])


def test_missing_model_is_its_own_exit_code(tmp_path):
    proc = run_script("--model", str(tmp_path / "absent.pt"))
    assert proc.returncode == gpu_check.EXIT_BAD_MODEL, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "python -m bench.gpu_check prepare" in proc.stdout


def test_gemv_tuner_needs_cuda():
    """bench/triton_gemv_tune.py (run by the check's last section) stops clearly without a GPU."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "bench.triton_gemv_tune"], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 3 and "NO CUDA DEVICE" in proc.stdout, proc.stdout + proc.stderr[-2000:]
