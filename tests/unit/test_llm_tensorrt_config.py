"""The TensorRT backend refuses, at engine start, every ``llm.*`` setting it cannot serve, and sizes
its engine from the ones it can (server/llm/backends/tensorrt.py). Needs no ``tensorrt``: the
validation runs before it is imported."""

from __future__ import annotations

import sys
import types

import pytest

from server.llm.backends import build_forward, tensorrt
from server.llm.backends.tensorrt import TensorRTConfigError, validate_config
from server.llm.engine import LLMEngine
from tests.support.llm_fixtures import engine_config, weights


def trt_config(**kw):
    return engine_config(**{"backend": "tensorrt", "max_num_seqs": 1, **kw})


def test_max_num_seqs_above_one_is_refused_naming_setting_and_supported_value(monkeypatch):
    monkeypatch.delenv("STACKSERVE_TRT_PRECISION", raising=False)
    with pytest.raises(TensorRTConfigError, match=r"llm\.max_num_seqs=16") as exc:
        validate_config(trt_config(max_num_seqs=16))
    assert "the supported value is 1" in str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert validate_config(trt_config()) == "fp16"


def test_int8_activations_and_bad_precision_are_refused(monkeypatch):
    monkeypatch.setenv("STACKSERVE_TRT_PRECISION", "int4")
    with pytest.raises(TensorRTConfigError) as exc:
        validate_config(trt_config(max_num_seqs=4, activation_precision="int8"))
    msg = str(exc.value)  # every problem at once, each with what works
    assert "llm.max_num_seqs=4" in msg
    assert "llm.activation_precision='int8'" in msg and "'int8x2'" in msg
    assert "STACKSERVE_TRT_PRECISION='int4'" in msg and "fp16, int8, fp8" in msg
    monkeypatch.setenv("STACKSERVE_TRT_PRECISION", "fp8")
    assert validate_config(trt_config()) == "fp8"


def test_engine_start_refuses_before_tensorrt_is_needed(monkeypatch):
    """Before: the engine started, and the first request failed inside the forward."""
    monkeypatch.delenv("STACKSERVE_TRT_PRECISION", raising=False)
    monkeypatch.setattr(tensorrt, "tensorrt_available", lambda: pytest.fail("tensorrt probed first"))
    with pytest.raises(TensorRTConfigError, match=r"max_num_seqs=16.*supported value is 1"):
        build_forward("tensorrt", weights(), config=trt_config(max_num_seqs=16))
    with pytest.raises(TensorRTConfigError, match=r"max_num_seqs=2"):
        LLMEngine(trt_config(max_num_seqs=2), weights=weights())


def test_context_and_step_budget_size_the_engine(monkeypatch, tmp_path):
    """max_model_len and max_num_batched_tokens are served: they become the profile's bounds."""
    monkeypatch.delenv("STACKSERVE_TRT_PRECISION", raising=False)
    seen = {}
    monkeypatch.setattr(tensorrt, "tensorrt_available", lambda: True)
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.0"))
    monkeypatch.setattr(tensorrt.torch.cuda, "get_device_name", lambda *a: "Fake GPU")
    monkeypatch.setattr("server.config.default_data_dir", lambda: tmp_path)

    def export(w, path, precision):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    monkeypatch.setattr(tensorrt, "export_for_tensorrt", export)
    monkeypatch.setattr(tensorrt, "build_engine", lambda *a, **kw: seen.setdefault("build", kw))

    class Step:
        def __init__(self, path, cfg, max_new_tokens, max_len):
            seen["step"] = (max_new_tokens, max_len)

        def forward(self, batch, cache):
            raise AssertionError("not run")

    monkeypatch.setattr(tensorrt, "TensorRTLlamaStep", Step)
    build_forward("tensorrt", weights(), config=trt_config(max_model_len=512, max_num_batched_tokens=64))
    assert seen["build"]["max_len"] == 512 and seen["build"]["max_new_tokens"] == 64
    assert seen["step"] == (64, 512)
