"""Scale-out on a real two-node Ray cluster on this machine: `ray start --head` plus a second node
joined with `ray start --address`, the anomaly app deployed with `serve deploy` and autoscaling,
the gateway in front (`stackserve serve` with RAY_ADDRESS). Load through the gateway scales the
deployment up to replicas on both nodes; the worker node is then killed under load (its replicas'
calls are retried on the head's, and serving goes on); once the load stops, it scales back down. Bounded in time.
The cluster is the session's external one (tests/support/ray_cluster.py), shared with the attach
tests; this test deploys its own autoscaling config and brings the worker node up if it is down."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml

from server.client import AnomalyClient
from tests.integration.conftest import start_or_fail
from tests.support.ray_cluster import ANOMALY_CONFIG, ExternalCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
SCALE_UP_BOUND_S = 240  # measured 42 s on 2 cores (replicas start slowly while 8 clients load the machine)
# A downscale delay longer than replicas take to start: with 6 s, a CI run oscillated 4 -> 2 -> 4 for
# 240 s (the gateway's calls are short; while replicas start, the load per running one dips below
# the target and the autoscaler gives back the replicas still starting).
AUTOSCALING = {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 1,
               "upscale_delay_s": 1, "downscale_delay_s": 45, "look_back_period_s": 3}


def _replicas(cluster: ExternalCluster) -> list[dict]:
    app = cluster.applications().get("anomaly", {})
    replicas = app.get("deployments", {}).get("AnomalyScorer", {}).get("replicas", [])
    return [r for r in replicas if r.get("state") == "RUNNING"]


@pytest.fixture
def two_nodes(external_cluster: ExternalCluster) -> ExternalCluster:
    """The shared external cluster with its worker node up and the anomaly app deployed with autoscaling."""
    c = external_cluster
    c.ensure_worker()  # the scale-out below waits for replicas on both nodes
    c.deploy(_config(c, AUTOSCALING))
    return c


def _config(c: ExternalCluster, autoscaling: dict) -> Path:
    """The shipped anomaly config with this test's autoscaling policy and CPU share."""
    config = yaml.safe_load(ANOMALY_CONFIG.read_text())
    (deployment,) = config["applications"][0]["deployments"]
    deployment["autoscaling_config"] = autoscaling
    deployment["ray_actor_options"] = {"num_cpus": 0.5}  # 2 on the head node, 4 on the worker
    path = c.tmp / f"anomaly-two-nodes-{autoscaling['downscale_delay_s']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.timeout(900)
def test_load_scales_out_to_both_nodes_and_back_down(two_nodes):
    c = two_nodes
    env = {**c.env, "RAY_ADDRESS": c.address,
           # the gateway mirrors the deployed autoscaling policy, so it lets enough calls through
           "STACKSERVE__ANOMALY__NUM_REPLICAS": "auto", "STACKSERVE__ANOMALY__MAX_REPLICAS": "4",
           "STACKSERVE__ANOMALY__TARGET_ONGOING_REQUESTS": "1", "STACKSERVE__ANOMALY__IN_GATEWAY_MAX_EVENTS": "0",
           "STACKSERVE__COALESCING__MAX_BATCH_EVENTS": "2048",
           # the load saturates on purpose (to make Serve scale out): relative admission would refuse
           # its excess at once, by design (tests/integration/test_admission_overload.py); here every
           # refusal would count against the node-loss error budget this test measures
           "STACKSERVE__COALESCING__ADMISSION": "false"}
    gateway = start_or_fail(workdir=c.tmp, name="gateway-two-nodes", env=env, ready_timeout=180)
    stop = threading.Event()
    errors: list[str] = []
    ok_at: list[float] = []  # when each call succeeded

    def load() -> None:
        X = np.random.default_rng(0).normal(size=(2048, 9)).astype(np.float32)
        with AnomalyClient(gateway.address) as client:
            while not stop.is_set():
                try:
                    client.score(X, model="shuttle-rf", timeout=30)
                    ok_at.append(time.monotonic())
                except grpc.RpcError as exc:  # counted; a few RESOURCE_EXHAUSTED under overload are fine
                    errors.append(exc.code().name)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(8)]
    progress: list[tuple] = [(0.0, 1, 1, "HEALTHY", ["RUNNING"])]
    started = time.monotonic()
    try:
        for t in threads:
            t.start()

        def spread() -> list[dict] | None:
            replicas = _replicas(c)
            nodes = {r.get("node_id") for r in replicas}
            app = c.applications().get("anomaly", {})
            dep = app.get("deployments", {}).get("AnomalyScorer", {})
            states = sorted(r.get("state") for r in dep.get("replicas", []))
            now = (len(replicas), len(nodes), dep.get("status"), states)
            if now != progress[-1][1:]:  # the scale-up as it happens (shown when the test fails)
                progress.append((round(time.monotonic() - started, 1), *now))
                print(progress[-1], dep.get("message", "")[:200], f"{len(ok_at)} calls", flush=True)
            return replicas if len(replicas) >= 3 and len(nodes) >= 2 else None

        up = wait_until(spread, SCALE_UP_BOUND_S, "scaled out to >= 3 replicas on both nodes", interval=0.5)
        scaled_up_s = time.monotonic() - started

        # the worker node dies (SIGKILL to its raylet and workers): its replicas' calls in flight are
        # retried on the head's replicas, Serve replaces the lost replicas where there is room
        errors_before = len(errors)
        os.killpg(c.worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def rescheduled() -> list[dict] | None:
            replicas = _replicas(c)
            nodes = {r.get("node_id") for r in replicas}
            resumed = sum(t > killed_at + 1 for t in ok_at) >= 20
            return replicas if resumed and len(nodes) == 1 and len(replicas) >= 2 else None

        survivors = wait_until(rescheduled, SCALE_UP_BOUND_S, "serving again on the head node's replicas",
                               interval=0.5)
        node_lost_recovery_s = time.monotonic() - killed_at
        node_lost_errors = errors[errors_before:]
        times = sorted(ok_at)
        longest_gap_s = max((b - a for a, b in itertools.pairwise(times) if b > killed_at), default=0.0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    try:
        stopped = time.monotonic()
        # The long downscale delay guards the scale-out; once the load has stopped the operator shortens
        # it live (autoscaling is a lightweight config update: no replica restarts), so the test does
        # not idle through 45 s of it (measured 45.6 s before).
        c.deploy(_config(c, {**AUTOSCALING, "downscale_delay_s": 2}))
        wait_until(lambda: len(_replicas(c)) == 1, 150, "scaled back to 1 replica", interval=0.5)
        scaled_down_s = time.monotonic() - stopped
    finally:
        code = gateway.stop()
    assert code == 0, gateway.log_tail(3000)
    print(json.dumps({"replicas_at_peak": len(up), "nodes": len({r.get("node_id") for r in up}),
                      "scale_up_s": round(scaled_up_s, 1), "scale_down_s": round(scaled_down_s, 1),
                      "worker_node_killed": {"replicas_after": len(survivors),
                                             "recovered_s": round(node_lost_recovery_s, 1),
                                             "longest_gap_without_success_s": round(longest_gap_s, 2),
                                             "failed_calls": len(node_lost_errors)},
                      "requests": len(ok_at), "client_errors": len(errors)}))
    assert len(ok_at) > 0 and len(errors) <= 0.05 * (len(ok_at) + len(errors)), errors[:10]
    assert set(errors) <= {"UNAVAILABLE", "RESOURCE_EXHAUSTED"}, errors[:10]
    assert longest_gap_s < 60, longest_gap_s
