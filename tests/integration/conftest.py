"""Start the real app once per session: Ray + Serve apps + gateway, on free ports.

The server runs as ``stackserve serve`` in a subprocess, exactly as a user starts
it, against the session's trained MLflow store; tests talk real gRPC to it. The LLM
runs small (4 KV-cache slots, 512-token context, 2 waiting) so CI stays quick and the
queue limit is reachable; its backend is ``STACKSERVE_TEST_LLM_BACKEND`` if set, else
the config default where it is built on this machine, else ``torch-fp32``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port


@dataclass
class RunningServer:
    address: str
    metrics_url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def llm_test_backend() -> str:
    """The LLM backend the integration server uses (see the module docstring)."""
    from server.config import LLMConfig

    chosen = os.environ.get("STACKSERVE_TEST_LLM_BACKEND")
    if chosen:
        return chosen
    default = LLMConfig().backend
    if default == "cpu-int4":
        try:
            from kernels import llm_step  # type: ignore[attr-defined]

            built = bool(llm_step.available())
        except ImportError:
            built = False
        if not built:
            return "torch-fp32"
    return default


LLM_TEST_CONFIG = {"max_num_seqs": 4, "max_model_len": 512, "max_waiting": 2, "stats_interval_s": 0.25}


@pytest.fixture(scope="session")
def server(trained, settings, tmp_path_factory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("server")
    ready = tmp / "ready.json"
    log_path = tmp / "server.log"
    ray_grpc_port = free_port()
    env = {
        **os.environ,
        "STACKSERVE_DATA_DIR": str(settings.data_dir),
        "RAY_USAGE_STATS_ENABLED": "0",
        "STACKSERVE__DRIFT__INTERVAL_S": "0.5",  # drift recomputed often enough to observe in a test
        "STACKSERVE__RAY__HTTP_PROXY_PORT": str(free_port()),
        # a shadow rollout on the Ray path (test_rollout.py): the champion version as its own challenger,
        # so the other tests see unchanged answers; no verdict is ever reached (min_requests)
        "STACKSERVE__ROLLOUT__MODEL": "shuttle-iforest",
        "STACKSERVE__ROLLOUT__CHALLENGER_VERSION": "1",
        "STACKSERVE__ROLLOUT__MODE": "shadow",
        "STACKSERVE__ROLLOUT__MIN_REQUESTS": "1000000",
        "STACKSERVE__ROLLOUT__EVAL_INTERVAL_S": "0.5",
        "STACKSERVE__LLM__BACKEND": llm_test_backend(),
        **{f"STACKSERVE__LLM__{k.upper()}": str(v) for k, v in LLM_TEST_CONFIG.items()},
    }
    cmd = [
        sys.executable, "-m", "server.cli", "serve", "--port", "0", "--metrics-port", "0",
        "--ready-file", str(ready), "--ray-grpc-port", str(ray_grpc_port),
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log_path.read_text()[-5000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server not ready in 240s:\n{log_path.read_text()[-5000:]}")
        time.sleep(0.2)
    info = json.loads(ready.read_text())
    running = RunningServer(info["grpc"], info["metrics"], proc, log_path)
    running.ray_grpc_address = f"127.0.0.1:{ray_grpc_port}"  # type: ignore[attr-defined]
    yield running
    code = stop_gracefully(proc, "server")
    assert code == 0, f"server exited with {code}:\n{log_path.read_text()[-3000:]}"


def stop_gracefully(proc: subprocess.Popen, what: str, timeout: float = 60) -> int:
    """SIGTERM, as a supervisor stops the server; its exit code, or a test failure if it hangs."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"{what} did not stop within {timeout}s of SIGTERM")
