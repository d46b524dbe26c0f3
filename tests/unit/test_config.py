from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.config import Settings, load_settings


def test_defaults_match_design(tmp_path, monkeypatch):
    monkeypatch.delenv("STACKSERVE_CONFIG", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = load_settings(None, data_dir=str(tmp_path))
    assert (s.gateway.host, s.gateway.port, s.gateway.metrics_port) == ("127.0.0.1", 50051, 9464)
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    assert load_settings(None, data_dir=str(tmp_path)).tracking_uri == "sqlite:////elsewhere.db"


def test_yaml_then_env_then_overrides(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("gateway:\n  port: 6000\n  metrics_port: 6001\ncoalescing:\n  max_wait_ms: 5\n")
    monkeypatch.setenv("STACKSERVE__GATEWAY__METRICS_PORT", "7001")
    s = load_settings(cfg, gateway={"port": 8000})
    assert s.gateway.port == 8000
    assert s.gateway.metrics_port == 7001
    assert s.coalescing.max_wait_ms == 5


def test_bad_values_are_rejected_with_the_field(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("coalescing:\n  max_batch_events: 0\n")
    with pytest.raises(ValidationError, match="max_batch_events"):
        load_settings(cfg)
    with pytest.raises(ValidationError, match="num_replicas"):
        Settings(anomaly={"num_replicas": "many"})
    cfg.write_text("gateway:\n  prot: 1\n")
    with pytest.raises(ValidationError, match="prot"):
        load_settings(cfg)


def test_non_mapping_yaml_is_rejected(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_settings(cfg)


def test_rollout_and_fault_injection_from_env_and_example(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("STACKSERVE__ROLLOUT__MODEL", "shuttle-rf")
    monkeypatch.setenv("STACKSERVE__ROLLOUT__CHALLENGER_VERSION", "2")
    monkeypatch.setenv("STACKSERVE__ROLLOUT__MODE", "shadow")
    monkeypatch.setenv("STACKSERVE__ANOMALY__FAULT_INJECTION__SCORE_OFFSET", "0.5")
    s = load_settings(Path(__file__).parents[2] / "stackserve.example.yaml", data_dir=str(tmp_path))
    assert (s.rollout.model, s.rollout.challenger_version, s.rollout.mode) == ("shuttle-rf", "2", "shadow")
    assert s.anomaly.fault_injection.score_offset == 0.5
    assert Settings.model_validate_json(s.model_dump_json()) == s  # what the Ray deployment receives
    with pytest.raises(ValidationError):
        load_settings(None, data_dir=str(tmp_path), rollout={"mode": "blue-green"})


def test_llm_placement_auto_is_the_gateway_only_on_a_ray_instance_this_server_owns():
    from server.placement import llm_in_gateway
    from server.ray_cluster import RayAttachment

    def placed(placement: str, owns: bool) -> bool:
        return llm_in_gateway(Settings(llm={"placement": placement}), RayAttachment(owns_cluster=owns))

    assert placed("auto", True) and not placed("auto", False)
    assert placed("gateway", False) and placed("gateway", True)
    assert not placed("ray", True) and not placed("ray", False)
    with pytest.raises(ValidationError, match="placement"):
        Settings(llm={"placement": "elsewhere"})
