"""Rollout routing and the controller's decisions (no Ray, no gRPC; a fake clock)."""

from __future__ import annotations

import numpy as np
import pytest

from server.config import RolloutConfig
from server.rollout import challenger_key, parse_challenger_key
from server.rollout.controller import RolloutController, RolloutState
from server.rollout.router import CHALLENGER, CHAMPION, bucket, choose_arm, routing_key


def test_challenger_keys_round_trip():
    assert challenger_key("shuttle-rf", "3") == "shuttle-rf@v3"
    assert parse_challenger_key("shuttle-rf@v3") == ("shuttle-rf", "3")
    assert parse_challenger_key("shuttle-rf") is None


def test_router_is_sticky_and_honours_the_share():
    keys = [f"device-{i}" for i in range(20_000)]
    arms = [choose_arm(k, 0.2) for k in keys]
    assert arms == [choose_arm(k, 0.2) for k in keys]  # same key, same arm (no per-process salt)
    share = arms.count(CHALLENGER) / len(arms)
    assert 0.19 < share < 0.21
    # growing the share only moves champion keys over: a challenger entity stays on the challenger
    assert all(choose_arm(k, 0.5) == CHALLENGER for k, a in zip(keys, arms, strict=True) if a == CHALLENGER)
    assert {choose_arm(k, 0.0) for k in keys[:500]} == {CHAMPION}
    assert {choose_arm(k, 1.0) for k in keys[:500]} == {CHALLENGER}
    assert bucket("device-1") == pytest.approx(bucket("device-1"))
    assert routing_key(["dev-7", "dev-8"], "req-1") == "dev-7"
    assert routing_key(None, "req-1") == "req-1"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _controller(**overrides):
    cfg = RolloutConfig(model="m", challenger_version="2", mode="canary", canary_share=0.5, window_s=10,
                        min_requests=20, max_error_rate=0.05, max_p95_ratio=2.0, p95_slack_s=0.001,
                        max_score_psi=0.25, promote_after_s=30, **overrides)
    clock, promoted = Clock(), []
    return RolloutController(cfg, "1", lambda: promoted.append(True), clock=clock), clock, promoted


def _feed(c, n, arm, latency=0.001, ok=True, scores=None, rng=np.random.default_rng(0)):
    for _ in range(n):
        c.record(arm, latency, ok, rng.beta(1, 20, size=8) if scores is None else scores)


def test_no_verdict_below_min_requests():
    c, _, _ = _controller()
    _feed(c, 19, CHALLENGER, ok=False)
    _feed(c, 50, CHAMPION)
    assert c.evaluate().state == RolloutState.RUNNING


def test_error_rate_rolls_back_and_routes_everything_to_the_champion():
    c, clock, promoted = _controller()
    _feed(c, 50, CHAMPION)
    _feed(c, 18, CHALLENGER)
    _feed(c, 2, CHALLENGER, ok=False)  # 10% > 5%
    snap = c.evaluate()
    assert snap.state == RolloutState.ROLLED_BACK and "error rate 0.100" in snap.reason
    assert {c.arm_for(f"k{i}") for i in range(200)} == {CHAMPION}
    clock.t += 100
    assert c.evaluate().state == RolloutState.ROLLED_BACK and not promoted  # terminal


def test_old_errors_leave_the_window():
    c, clock, _ = _controller()
    _feed(c, 20, CHALLENGER, ok=False)
    clock.t += 11
    _feed(c, 30, CHAMPION)
    _feed(c, 30, CHALLENGER)
    assert c.evaluate().state == RolloutState.RUNNING


def test_p95_regression_needs_ratio_and_slack():
    c, _, _ = _controller()
    _feed(c, 40, CHAMPION, latency=0.0001)
    _feed(c, 40, CHALLENGER, latency=0.0005)  # 5x, but only 0.4 ms worse: noise
    assert c.evaluate().state == RolloutState.RUNNING
    _feed(c, 200, CHALLENGER, latency=0.05)
    snap = c.evaluate()
    assert snap.state == RolloutState.ROLLED_BACK and "p95" in snap.reason


def test_shifted_scores_roll_back_on_psi():
    c, _, _ = _controller()
    rng = np.random.default_rng(1)
    for _ in range(40):
        s = rng.beta(1, 20, size=16)
        c.record(CHAMPION, 0.001, True, s)
        c.record(CHALLENGER, 0.001, True, s + 0.3)
    snap = c.evaluate()
    assert snap.state == RolloutState.ROLLED_BACK and snap.score_psi > 1 and "PSI" in snap.reason


def test_healthy_challenger_is_promoted_after_the_hold():
    c, clock, promoted = _controller()
    _feed(c, 40, CHAMPION)
    _feed(c, 40, CHALLENGER)
    assert c.evaluate().state == RolloutState.RUNNING and not promoted
    clock.t += 31
    _feed(c, 40, CHAMPION)
    _feed(c, 40, CHALLENGER)
    snap = c.evaluate()
    assert snap.state == RolloutState.PROMOTED and promoted == [True]
    assert snap.score_psi < 0.25
    assert {c.arm_for(f"k{i}") for i in range(200)} == {CHALLENGER}


def test_failed_promotion_keeps_running_and_retries():
    cfg = RolloutConfig(model="m", challenger_version="2", min_requests=5, promote_after_s=1)
    clock, calls = Clock(), []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("registry down")

    c = RolloutController(cfg, "1", flaky, clock=clock)
    clock.t += 2
    _feed(c, 10, CHAMPION)
    _feed(c, 10, CHALLENGER)
    assert c.evaluate().state == RolloutState.RUNNING
    assert c.evaluate().state == RolloutState.PROMOTED and len(calls) == 2


def test_shadow_never_routes_to_the_challenger():
    c, _, _ = _controller()
    c.cfg.mode = "shadow"
    assert {c.arm_for(f"k{i}") for i in range(200)} == {CHAMPION} and c.shadowing


def test_config_requires_a_version():
    with pytest.raises(ValueError, match="challenger_version"):
        RolloutConfig(model="m")


def test_psi_sees_a_shift_away_from_a_point_mass():
    """A forest scores most normal events exactly 0.0: the shift must still show."""
    c, _, _ = _controller()
    for _ in range(40):
        c.record(CHAMPION, 0.001, True, np.zeros(16))
        c.record(CHALLENGER, 0.001, True, np.full(16, 0.5))
    snap = c.evaluate()
    assert snap.state == RolloutState.ROLLED_BACK and snap.score_psi > 1
