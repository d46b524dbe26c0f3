"""`stackserve serve --llm-only`: one process, no Ray, no anomaly models, no embedder; the LLM over
gRPC and the OpenAI API, the server's overall health following the LLM, the rest UNIMPLEMENTED."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.client import AnomalyClient, LLMClient

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def llm_only(tmp_path_factory):
    d = tmp_path_factory.mktemp("llm-only")
    ready = d / "ready.json"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "--data-dir", str(d), "serve", "--llm-only", "--port", "0",
         "--metrics-port", "0", "--openai-port", "0", "--ready-file", str(ready)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(d / "server.log", "w"),  # noqa: SIM115
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if proc.poll() is not None:
                pytest.fail(f"the server exited ({proc.returncode}): {(d / 'server.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the LLM-only server did not become ready in 120 s")
            time.sleep(0.05)
        print(f"LLM-only server ready after {time.perf_counter() - t0:.1f} s")
        yield proc, json.loads(ready.read_text())
    finally:
        proc.terminate()
        proc.wait(60)


def test_it_serves_the_llm_from_one_process_without_ray(llm_only):
    proc, info = llm_only
    assert info["llm"] and info["models"] == []
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children == [], "an LLM-only server starts no Ray (or any other) processes"
    models = httpx.get(f"{info['openai']}/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == [info["llm"]]  # no embedding model: retrieval is off
    out = httpx.post(f"{info['openai']}/completions", json={"prompt": "The sky is", "max_tokens": 3,
                                                           "temperature": 0}, timeout=60).json()
    assert out["usage"]["completion_tokens"] == 3
    with LLMClient(info["grpc"]) as c:
        assert c.complete("Hi", max_tokens=2, temperature=0).model == info["llm"]


def test_overall_health_follows_the_llm_and_other_services_are_unimplemented(llm_only):
    _, info = llm_only
    with grpc.insecure_channel(info["grpc"]) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
    with AnomalyClient(info["grpc"]) as c, pytest.raises(grpc.RpcError) as err:
        c.score(np.zeros((1, 9), np.float32))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
