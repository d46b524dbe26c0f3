"""`stackserve serve` on a Ray cluster it did not start: a real `ray start --head` plus
`serve deploy deployments/configs/anomaly.yaml`.

The gateway must serve the deployed application as it is (no redeploy with its own
settings, so the config's autoscaling stays) and, on exit, leave the cluster and every
application on it running. Both ways of finding the cluster are checked: ``RAY_ADDRESS``,
and a cluster simply running on this machine with no address given.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from server.client import AnomalyClient
from server.launcher import free_port
from tests.integration.conftest import start_or_fail

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).resolve().parents[2] / "deployments" / "configs" / "anomaly.yaml"
CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # where `ray start` records the latest head


def _poll(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: process exited with {proc.returncode}\n{log.read_text()[-4000:] if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s\n{log.read_text()[-4000:] if log else ''}")
        time.sleep(0.5)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _applications(dashboard: str, token: str) -> dict:
    request = urllib.request.Request(
        f"{dashboard}/api/serve/applications/", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.load(r).get("applications", {})
    except OSError:
        return {}


@pytest.fixture(scope="module")
def cluster(trained, settings, tmp_path_factory):
    """A head node started with `ray start --head`, the anomaly app deployed with `serve deploy`."""
    tmp = tmp_path_factory.mktemp("cluster")
    gcs, dash = free_port(), free_port()
    # Ray token authentication, as a secured cluster runs it: the head, `serve deploy` and the
    # gateway all read this token (Ray would otherwise pick up ~/.ray/auth_token, which any local
    # ray.init() on this machine may have created, and the CLI would then be refused).
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "STACKSERVE_DATA_DIR": str(settings.data_dir),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "STACKSERVE__LLM__ENABLED": "false",
    }
    previous = CURRENT_CLUSTER.read_text() if CURRENT_CLUSTER.exists() else None
    log = tmp / "head.log"
    with open(log, "w") as out:
        head = subprocess.Popen(
            [
                str(BIN / "ray"),
                "start",
                "--head",
                f"--port={gcs}",
                "--num-cpus=2",
                "--include-dashboard=true",
                f"--dashboard-port={dash}",
                "--dashboard-host=127.0.0.1",
                f"--ray-client-server-port={free_port()}",
                "--disable-usage-stats",
                "--block",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dashboard = f"http://127.0.0.1:{dash}"
    try:
        _poll("ray head", lambda: _port_open(gcs) and _port_open(dash), 120, head, log)
        deploy = [str(BIN / "serve"), "deploy", str(CONFIG), "--address", dashboard]
        attempts = tmp / "deploy.log"

        def deployed() -> bool:
            done = subprocess.run(deploy, env=env, capture_output=True, text=True, timeout=120)
            with open(attempts, "a") as out:
                out.write(f"--- exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}\n")
            return done.returncode == 0

        _poll("serve deploy accepted", deployed, 240, head, attempts)
        _poll(
            "anomaly app RUNNING",
            lambda: _applications(dashboard, token.read_text()).get("anomaly", {}).get("status") == "RUNNING",
            180,
            head,
            log,
        )
        yield {
            "address": f"127.0.0.1:{gcs}",
            "dashboard": dashboard,
            "env": env,
            "tmp": tmp,
            "token": token.read_text(),
        }
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-f", "--", f"--gcs-address=127.0.0.1:{gcs}"], check=False)
        restore_current_cluster(gcs, previous)


def restore_current_cluster(gcs: int, previous: str | None) -> None:
    """The record of "the latest head on this machine" must not outlive the head a test started:
    a later `stackserve serve` would try to join the dead head."""
    if CURRENT_CLUSTER.exists() and f":{gcs}" in CURRENT_CLUSTER.read_text():
        if previous is None:
            CURRENT_CLUSTER.unlink()
        else:
            CURRENT_CLUSTER.write_text(previous)


def _snapshot(cluster: dict) -> dict:
    app = _applications(cluster["dashboard"], cluster["token"])["anomaly"]
    scorer = app["deployments"]["AnomalyScorer"]
    return {
        "status": app["status"],
        "last_deployed_time_s": app["last_deployed_time_s"],
        "autoscaling": scorer["deployment_config"].get("autoscaling_config", {}).get("target_ongoing_requests"),
    }


@pytest.mark.parametrize("how", ["RAY_ADDRESS", "running on this machine"])
def test_gateway_serves_the_deployed_app_as_is_and_leaves_it_running(cluster, trained, how):
    before = _snapshot(cluster)
    assert before["autoscaling"] == 16  # the config file's, not the gateway's default
    # the cluster's environment (its auth token), RAY_ADDRESS set or taken away
    env = {**cluster["env"], "RAY_ADDRESS": cluster["address"] if how == "RAY_ADDRESS" else None}
    gateway = start_or_fail(workdir=cluster["tmp"], name=f"gateway-{len(how)}", env=env, ready_timeout=180)
    try:
        X = np.ones((3, 9), dtype=np.float32)
        with AnomalyClient(gateway.address) as client:
            scores = client.score(X, model="shuttle-rf")
        assert scores.scores.shape == (3,) and scores.version == trained["shuttle-rf"].version
    finally:
        code = gateway.stop()
    assert code == 0, f"gateway exited with {code}:\n{gateway.log_tail(3000)}"
    assert "already deployed on the cluster as it is" in gateway.log()
    after = _snapshot(cluster)
    assert after == before  # not redeployed, not deleted, autoscaling untouched
