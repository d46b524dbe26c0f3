"""A scoring call whose Ray replica was lost is sent once more; other failures, and a second loss,
reach the caller as ours (server/gateway/ray_errors.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from ray.exceptions import ActorUnavailableError

from server.gateway.anomaly_endpoint import RayAnomalyEndpoint
from server.gateway.ray_errors import ReplicaLostError


class _Method:
    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    async def remote(self, *args):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class _Handle:
    def __init__(self, outcomes):
        self.score = _Method(outcomes)


def lost() -> ActorUnavailableError:
    return ActorUnavailableError("actor 7f3a died (pid=4242, ip=10.1.2.3)", None)


def score(handle):
    return asyncio.run(RayAnomalyEndpoint(handle).score("m", np.ones((2, 3), np.float32), ["r1"]))


def test_a_lost_replica_is_retried_once():
    handle = _Handle([lost(), "scores"])
    assert score(handle) == "scores" and handle.score.calls == 2


def test_a_second_loss_is_unavailable_and_other_errors_are_not_retried():
    handle = _Handle([lost(), lost(), "never"])
    with pytest.raises(ReplicaLostError):
        score(handle)
    assert handle.score.calls == 2
    handle = _Handle([ValueError("bad input"), "never"])
    with pytest.raises(ValueError, match="bad input"):
        score(handle)
    assert handle.score.calls == 1
