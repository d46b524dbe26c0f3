"""`stackserve serve` on a Ray cluster it did not start: a real `ray start --head` (plus a worker node)
and `serve deploy deployments/configs/anomaly.yaml`.

The gateway must serve the deployed application as it is (no redeploy with its own
settings, so the config's autoscaling stays) and, on exit, leave the cluster and every
application on it running. Both ways of finding the cluster are checked: ``RAY_ADDRESS``,
and a cluster simply running on this machine with no address given (found through the record
``ray start`` leaves in ``RAY_TMPDIR``, private to this cluster: tests/support/ray_cluster.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from server.client import AnomalyClient
from tests.integration.conftest import start_or_fail
from tests.support.ray_cluster import ANOMALY_CONFIG, ExternalCluster

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def _snapshot(cluster: ExternalCluster) -> dict:
    app = cluster.applications()["anomaly"]
    scorer = app["deployments"]["AnomalyScorer"]
    return {
        "status": app["status"],
        "last_deployed_time_s": app["last_deployed_time_s"],
        "autoscaling": scorer["deployment_config"].get("autoscaling_config", {}).get("target_ongoing_requests"),
    }


@pytest.mark.timeout(600)
@pytest.mark.parametrize("how", ["RAY_ADDRESS", "running on this machine"])
def test_gateway_serves_the_deployed_app_as_is_and_leaves_it_running(external_cluster, trained, how):
    cluster = external_cluster
    cluster.deploy(ANOMALY_CONFIG)  # the shipped config, as an operator deploys it
    before = _snapshot(cluster)
    assert before["autoscaling"] == 16  # the config file's, not the gateway's default
    # the cluster's environment (its auth token, its RAY_TMPDIR), RAY_ADDRESS set or not
    env = {**cluster.env, "RAY_ADDRESS": cluster.address if how == "RAY_ADDRESS" else None}
    gateway = start_or_fail(workdir=cluster.tmp, name=f"gateway-{len(how)}", env=env, ready_timeout=180)
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
