"""The security building blocks on their own: keys, the access policy, rate limits, keyed hashes,
the rotating access log, the config's checks and the clipping of echoed input."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from server.config import SecurityConfig, Settings
from server.observability import logs
from server.protocol.errors import MAX_DETAILS_CHARS, clip, not_found
from server.protocol.errors import ServingError as Refusal
from server.security import keyed_hash
from server.security.access_policy import AccessPolicy
from server.security.api_keys import KEY_PREFIX, key_digest, key_from_headers, new_key
from server.security.rate_limit import TokenBucket
from tests.support.hypothesis_profiles import examples


def policy(**beta: object) -> tuple[AccessPolicy, str, str]:
    alpha_key, beta_key = new_key(), new_key()
    cfg = SecurityConfig(tenants=[
        {"name": "alpha", "key_sha256": [key_digest(alpha_key)]},
        {"name": "beta", "key_sha256": [key_digest(beta_key).upper()], "services": ["anomaly"], **beta},
    ])
    return AccessPolicy(cfg), alpha_key, beta_key


def admit(p: AccessPolicy, key: str | None, service: str):
    return asyncio.run(p.admit(key, service))


def refusal(fn) -> Refusal:
    with pytest.raises(Refusal) as err:
        fn()
    return err.value


def test_keys_are_random_prefixed_and_stored_as_sha256():
    a, b = new_key(), new_key()
    assert a != b and a.startswith(KEY_PREFIX) and len(a) > 40
    assert key_digest(a) == hashlib.sha256(a.encode()).hexdigest()


def test_key_from_headers_takes_bearer_or_x_api_key():
    assert key_from_headers([("authorization", "Bearer k1")]) == "k1"
    assert key_from_headers([("authorization", "bearer  k2 ")]) == "k2"
    assert key_from_headers([("x-api-key", "k3")]) == "k3"
    assert key_from_headers([("authorization", "Basic Zm9vOmJhcg==")]) is None
    assert key_from_headers([("authorization", "Bearer ")]) is None
    assert key_from_headers([("x-api-key", b"bytes")]) is None
    assert key_from_headers(None) is None


def test_policy_authenticates_authorizes_and_names_no_key():
    p, alpha, beta = policy()
    assert p.enabled
    assert admit(p, None, "grpc.health.v1.Health") is None  # probes carry no key
    no_key = refusal(lambda: admit(p, None, "stackserve.v1.LLMService"))
    assert no_key.code is grpc.StatusCode.UNAUTHENTICATED
    wrong = refusal(lambda: admit(p, alpha + "x", "stackserve.v1.LLMService"))
    assert wrong.code is grpc.StatusCode.UNAUTHENTICATED and alpha not in wrong.details
    assert admit(p, alpha, "stackserve.v1.LLMService").name == "alpha"
    assert admit(p, alpha, "grpc.reflection.v1alpha.ServerReflection").name == "alpha"
    assert admit(p, beta, "anomaly").name == "beta"  # digests are case-insensitive in the config
    denied = refusal(lambda: admit(p, beta, "stackserve.v1.ChatService"))
    assert denied.code is grpc.StatusCode.PERMISSION_DENIED and "chat" in denied.details
    assert not AccessPolicy(SecurityConfig()).enabled


def test_rate_limit_refuses_past_the_burst_and_refills():
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after_s() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() and not bucket.take()
    now[0] += 100
    assert sum(bucket.take() for _ in range(10)) == 3  # never more than the burst


def test_policy_rate_limit_is_per_tenant_and_resource_exhausted():
    p, alpha, beta = policy(requests_per_s=0.001, burst=2)
    assert admit(p, beta, "anomaly") and admit(p, beta, "anomaly")
    over = refusal(lambda: admit(p, beta, "anomaly"))
    assert over.code is grpc.StatusCode.RESOURCE_EXHAUSTED and "rate limit" in over.details
    assert "'beta'" in over.details and "requests/s" in over.details and beta not in over.details
    assert over.retry_after_s > 100  # one token per 1000 s
    assert all(admit(p, alpha, "anomaly") for _ in range(50))  # alpha has no limit
    assert p.store is None  # no redis_url: this process's buckets, as before


def test_token_bucket_charges_after_the_fact_into_debt_and_gives_back():
    now = [0.0]
    bucket = TokenBucket(10.0, 100, clock=lambda: now[0])
    assert bucket.take(60) and not bucket.take(60)  # a reservation the balance cannot hold takes nothing
    assert bucket.retry_after_s(60) == pytest.approx(2.0)
    bucket.charge(90)  # used more than reserved: the balance owes 50
    assert bucket.tokens == pytest.approx(-50) and not bucket.take(1)
    bucket.charge(-500)  # a refund never fills past the capacity
    assert bucket.tokens == 100


def test_token_budget_reserves_claims_settles_and_releases():
    from server.security.shared_limits import TOKEN_BUDGET, RateLimited

    alpha_key = new_key()
    p = AccessPolicy(SecurityConfig(tenants=[
        {"name": "alpha", "key_sha256": [key_digest(alpha_key)], "tokens_per_minute": 600}]))
    tenant = admit(p, alpha_key, "llm")
    assert tenant.requests is None and tenant.tokens.capacity == 600 and tenant.tokens.rate == 10.0
    assert TOKEN_BUDGET.get() is None

    async def run() -> None:
        budget = tenant.token_budget()
        assert await budget.reserve(1000) == 600  # capped at the budget: a request it could never admit
        assert await budget.claim(200) == 200 and budget.held == 400  # from the call's reservation
        budget.settle(200, 150)  # 50 of the 200 unused: back
        budget.release()  # the 400 no generation claimed: back
        assert tenant.tokens.local.tokens == pytest.approx(450, abs=1)
        with pytest.raises(RateLimited) as err:
            await budget.claim(500)
        assert "'alpha'" in err.value.details and "600 tokens per minute" in err.value.details
        assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED and err.value.retry_after_s > 4

    asyncio.run(run())


@pytest.mark.parametrize("bad", [
    {"tenants": [{"name": "a", "key_sha256": ["ssk-not-a-digest"]}]},
    {"tenants": [{"name": "a", "key_sha256": []}]},
    {"tenants": [{"name": "a b", "key_sha256": ["0" * 64]}]},
    {"tenants": [{"name": "a", "key_sha256": ["0" * 64], "services": ["gpu"]}]},
    {"tenants": [{"name": "a", "key_sha256": ["0" * 64]}, {"name": "a", "key_sha256": ["1" * 64]}]},
    {"tenants": [{"name": "a", "key_sha256": ["0" * 64]}, {"name": "b", "key_sha256": ["0" * 64]}]},
    {"tls": {"cert": "/x.pem"}},
    {"tls": {"client_ca": "/ca.pem"}},
    {"tenants": [{"name": "a", "key_sha256": ["0" * 64], "tokens_per_minute": 0}]},
    {"limits_store": {"redis_url": "http://redis:6379"}},
    {"limits_store": {"timeout_s": 0}},
])
def test_security_config_refuses_mistakes(bad):
    with pytest.raises(ValidationError):
        SecurityConfig(**bad)


def test_hash_key_is_made_once_owner_only_and_keys_the_hash(tmp_path, monkeypatch):
    monkeypatch.delenv(keyed_hash.ENV_VAR, raising=False)
    path = tmp_path / "d" / "hash.key"
    key = keyed_hash.load_or_create(path)
    assert len(key) == 32 and keyed_hash.load_or_create(path) == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    monkeypatch.setenv(keyed_hash.ENV_VAR, "ab" * 32)
    assert keyed_hash.load_or_create(path) == bytes.fromhex("ab" * 32)
    monkeypatch.setenv(keyed_hash.ENV_VAR, "abc")
    with pytest.raises(ValueError, match="STACKSERVE_HASH_KEY"):
        keyed_hash.load_or_create(path)
    before = logs.payload_hash("the prompt")
    try:
        logs.install_hash_key(key)
        keyed = logs.payload_hash("the prompt")
        assert keyed == hashlib.blake2b(b"the prompt", digest_size=8, key=key).hexdigest()
        assert keyed != hashlib.blake2b(b"the prompt", digest_size=8).hexdigest() and keyed != before
        h = logs.payload_hasher()
        h.update(b"the ")
        h.update(b"prompt")
        assert h.hexdigest() == keyed  # streamed responses hash alike
    finally:
        logs.install_hash_key(os.urandom(32))


def test_rotating_access_log_keeps_whole_lines_and_n_backups(tmp_path):
    f = logs.RotatingFile(tmp_path / "access.log", max_bytes=100, backups=2)
    lines = [f"line {i:03d} " + "x" * 30 + "\n" for i in range(12)]
    for ln in lines:
        f.write(ln)
    f.flush()
    f.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["access.log", "access.log.1", "access.log.2"]  # the oldest dropped
    kept = "".join((tmp_path / n).read_text() for n in ("access.log.2", "access.log.1", "access.log"))
    assert kept == "".join(lines[-len(kept.splitlines()):])  # newest lines, in order, none split
    assert all((tmp_path / n).stat().st_size <= 100 for n in files)


@given(st.text(max_size=3000))
@settings(max_examples=examples(60), deadline=None)
def test_echoed_input_is_clipped_so_a_status_fits_its_trailer(name):
    err = not_found("model", f"unknown model {clip(name)!r}; serving ['a']")
    assert len(err.details) <= MAX_DETAILS_CHARS + 40
    assert err.details.endswith("serving ['a']")  # the useful tail survives a huge echoed value
    long = Refusal(grpc.StatusCode.INVALID_ARGUMENT, name * 3, "f")
    assert len(long.details) <= MAX_DETAILS_CHARS + 40


def test_settings_have_security_off_by_default():
    s = Settings()
    assert s.security.tenants == [] and not s.security.tls.enabled and s.security.access_log_file is None
    assert s.security.limits_store.redis_url is None  # per-process limits unless a store is named


def test_limits_store_from_env_with_its_password_kept_out_of_logs(monkeypatch):
    from server.security.shared_limits import redacted

    monkeypatch.setenv("STACKSERVE__SECURITY__LIMITS_STORE__REDIS_URL", "redis://:s3cret@redis:6379/2")
    store = Settings().security.limits_store
    assert store.redis_url == "redis://:s3cret@redis:6379/2" and store.timeout_s == 0.05
    assert redacted(store.redis_url) == "redis://redis:6379/2"


@pytest.mark.parametrize(("tls", "field"), [
    ({"cert": "s.crt"}, "go together"),
    ({"client_ca": "ca.crt"}, "client_ca"),
    ({"metrics": True}, "security.tls.metrics"),
])
def test_tls_config_refuses_incomplete_settings(tls, field):
    with pytest.raises(ValidationError, match=field):
        SecurityConfig(tls=tls)


def test_tls_for_metrics_is_opt_in():
    cfg = SecurityConfig(tls={"cert": "s.crt", "key": "s.key"})
    assert cfg.tls.enabled and not cfg.tls.metrics
