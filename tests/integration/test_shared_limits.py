"""Tenants' limits shared across gateways through a real Redis (server/security/shared_limits.py).

Two ``AccessPolicy`` objects with their own Redis clients stand for two gateway replicas: hammered
together, a tenant's admitted requests stay at its one rate (not twice it); a token budget reserved
through one is seen by the other; with Redis stopped or hung every request is still decided, by the
local bucket, and counted as a fallback. A real gateway (gRPC and the OpenAI HTTP API) refuses LLM
requests past the tenant's tokens per minute, charges what a request used and gives back the rest
of its reservation. The two-process version of the rate check is tests/integration/test_shared_limits_gateways.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import grpc
import httpx
import numpy as np
import pytest
import redis

from server.client import AnomalyClient, LLMClient
from server.client_channel import ChannelSecurity
from server.config import SecurityConfig
from server.observability.metrics import RATE_LIMIT_STORE_FALLBACKS
from server.security.access_policy import AccessPolicy
from server.security.api_keys import key_digest, new_key
from server.security.shared_limits import RateLimited
from tests.support.in_process_gateway import Gateway, gateway_settings
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
X = np.ones((2, 9), dtype=np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RedisServer:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


def fallbacks() -> float:
    return RATE_LIMIT_STORE_FALLBACKS._value.get()


def security(url: str | None, key: str, prefix: str, **limits: object) -> SecurityConfig:
    return SecurityConfig(
        tenants=[{"name": "team", "key_sha256": [key_digest(key)], **limits}],
        limits_store={"redis_url": url, "key_prefix": prefix, "recheck_s": 0.2},
    )


async def hammer(policies: list[AccessPolicy], key: str, seconds: float, workers: int = 4) -> tuple[list[int], float]:
    """Every policy asked by ``workers`` tasks as fast as they go for ``seconds``: admitted per policy."""
    admitted = [0] * len(policies)
    start = time.monotonic()
    stop = start + seconds

    async def worker(i: int) -> None:
        while time.monotonic() < stop:
            try:
                await policies[i].admit(key, "anomaly")
                admitted[i] += 1
            except RateLimited:
                await asyncio.sleep(0.001)

    await asyncio.gather(*(worker(i) for i in range(len(policies)) for _ in range(workers)))
    return admitted, time.monotonic() - start


def test_two_gateways_share_one_tenant_rate(store):
    """The tenant's combined admitted rate through two policies stays at its limit (±10%)."""
    key, rate, burst = new_key(), 50.0, 10
    cfg = security(store.url, key, f"t-rate-{time.time_ns()}:", requests_per_s=rate, burst=burst)

    async def run() -> tuple[list[int], float]:
        a, b = AccessPolicy(cfg), AccessPolicy(cfg)  # two replicas: their own clients, one Redis
        try:
            return await hammer([a, b], key, 6.0)
        finally:
            await a.close()
            await b.close()

    before = fallbacks()
    admitted, seconds = asyncio.run(run())
    expected = rate * seconds + burst
    total = sum(admitted)
    print(f"two policies, one Redis: admitted {admitted} = {total} in {seconds:.2f} s; "
          f"limit {rate:g}/s + burst {burst} = {expected:.0f} ({total / expected - 1:+.1%})")
    assert fallbacks() == before, "the store answered every call"
    assert min(admitted) > 0.2 * total, admitted  # both replicas admitted a share
    assert abs(total - expected) <= 0.1 * expected, (admitted, seconds, expected)


def test_local_buckets_grant_the_rate_once_per_gateway():
    """Without a store each replica grants the full rate: why the shared store exists."""
    key, rate, burst = new_key(), 50.0, 10
    cfg = security(None, key, "unused:", requests_per_s=rate, burst=burst)

    async def run() -> tuple[list[int], float]:
        return await hammer([AccessPolicy(cfg), AccessPolicy(cfg)], key, 2.0, workers=2)

    admitted, seconds = asyncio.run(run())
    assert sum(admitted) > 1.6 * (rate * seconds + burst), admitted


def test_token_budget_is_one_budget_across_gateways(store):
    """A reservation through one replica is gone for the other; what a generation did not use comes
    back for both; a refusal names the tenant and its tokens per minute, never the key."""
    key = new_key()
    prefix = f"t-tpm-{time.time_ns()}:"
    cfg = security(store.url, key, prefix, tokens_per_minute=600)  # refills 10 tokens/s

    async def run() -> None:
        a, b = AccessPolicy(cfg), AccessPolicy(cfg)
        try:
            ta, tb = await a.admit(key, "llm"), await b.admit(key, "llm")
            ba, bb = ta.token_budget(), tb.token_budget()
            assert await ba.claim(500) == 500  # 100 left in the shared bucket
            with pytest.raises(RateLimited) as err:
                await bb.claim(300)
            details = err.value.details
            assert "'team'" in details and "600 tokens per minute" in details and key not in details
            assert 15 <= err.value.retry_after_s <= 21  # (300 - ~100) / 10 per second
            ba.settle(500, 120)  # used 120 of 500: 380 back, charged through the store
            await asyncio.sleep(0.2)  # the charge is sent without waiting for it
            assert await bb.claim(300) == 300  # the other replica sees the refund
        finally:
            await a.close()
            await b.close()

    before = fallbacks()
    asyncio.run(run())
    assert fallbacks() == before
    client = redis.Redis.from_url(store.url)
    ttl = client.pttl(f"{prefix}team:tokens")
    assert 0 < ttl <= 60_000 + 1000  # expires once it would be full again: idle tenants cost nothing


def test_store_down_or_hung_falls_back_to_the_local_bucket(tmp_path, caplog):
    """Redis stopped mid-run: every request is still decided (locally), counted, warned about once;
    a hung Redis costs at most timeout_s per call; back up, the store decides again."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    key = new_key()
    cfg = security(server.url, key, f"t-down-{time.time_ns()}:", requests_per_s=1000.0, burst=100)
    caplog.set_level(logging.INFO, logger="stackserve.security")

    async def run() -> None:
        policy = AccessPolicy(cfg)
        try:
            start = fallbacks()
            for _ in range(5):
                assert (await policy.admit(key, "anomaly")).name == "team"
            assert fallbacks() == start
            server.stop()
            for _ in range(20):  # no error reaches the caller
                assert (await policy.admit(key, "anomaly")).name == "team"
            assert fallbacks() == start + 20
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unreachable" in r.message]
            assert len(warnings) == 1 and key not in warnings[0].message
            server.start()
            await asyncio.sleep(0.3)  # past recheck_s
            mark = fallbacks()
            assert (await policy.admit(key, "anomaly")).name == "team"
            assert fallbacks() == mark
            assert any("answers again" in r.message for r in caplog.records)
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGSTOP)  # a hung store: the timeout decides
            try:
                await asyncio.sleep(0.3)
                t0 = time.monotonic()
                assert (await policy.admit(key, "anomaly")).name == "team"
                assert time.monotonic() - t0 < 0.5  # timeout_s is 0.05
                assert fallbacks() == mark + 1
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
        finally:
            await policy.close()

    try:
        asyncio.run(run())
    finally:
        server.stop()


# ----- a real gateway: LLM tokens per minute over gRPC and HTTP ---------------------------------------

TPM = 120  # 2 tokens per second: a test finishes long before the budget refills


@pytest.fixture(scope="module")
def tpm_gateway(trained, settings, store, shared_llm):
    keys = {"tpm": new_key(), "tpm-cancel": new_key(), "tpm-http": new_key(), "rate": new_key()}
    prefix = f"t-gw-{time.time_ns()}:"
    cfg = gateway_settings(
        settings.data_dir,
        security={
            "tenants": [
                {"name": "tpm", "key_sha256": [key_digest(keys["tpm"])], "tokens_per_minute": TPM},
                {"name": "tpm-cancel", "key_sha256": [key_digest(keys["tpm-cancel"])], "tokens_per_minute": TPM},
                {"name": "tpm-http", "key_sha256": [key_digest(keys["tpm-http"])], "tokens_per_minute": TPM},
                {"name": "rate", "key_sha256": [key_digest(keys["rate"])], "requests_per_s": 0.01, "burst": 2},
            ],
            "limits_store": {"redis_url": store.url, "key_prefix": prefix, "timeout_s": 0.5},
        },
    )
    g = Gateway(cfg, shared_llm)
    yield g, keys, prefix
    g.close()


def _balance(store: RedisServer, key: str) -> float:
    return float(redis.Redis.from_url(store.url).hget(key, "tokens"))


def test_llm_tokens_per_minute_refuses_and_refunds_over_grpc(tpm_gateway, store):
    g, keys, prefix = tpm_gateway
    bucket = f"{prefix}tpm:tokens"
    with LLMClient(f"127.0.0.1:{g.gw.port}", security=ChannelSecurity(keys["tpm"])) as c:
        t0 = time.monotonic()
        out = c.complete("The capital of France is", max_tokens=50, temperature=0)
        used = out.usage.prompt_tokens + out.usage.completion_tokens
        # reserved 50 at admission, charged what it used at the end (sent after the answer: polled)
        wait_until(lambda: TPM - used - 1 <= _balance(store, bucket) <= TPM - used + 2 * (time.monotonic() - t0) + 1,
                   5, f"the bucket at {TPM} - {used} used (the unused reservation back)")
        results: list = []
        for _ in range(6):  # each reserves 50 of what is left: refused within a few
            try:
                results.append(c.complete("The capital of France is", max_tokens=50, temperature=0).usage)
            except grpc.RpcError as exc:
                results.append(exc)
                break
    err = results[-1]
    print(f"tokens per minute {TPM}: first call used {used} (reserved 50); then {len(results) - 1} admitted, "
          f"refused: {err.code().name if isinstance(err, grpc.RpcError) else None}: "
          f"{err.details() if isinstance(err, grpc.RpcError) else ''}")
    assert isinstance(err, grpc.RpcError) and len(results) <= 3, results
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "'tpm'" in err.details() and f"{TPM} tokens per minute" in err.details(), err.details()
    assert keys["tpm"] not in err.details()


def test_a_stream_left_early_is_charged_what_it_used(tpm_gateway, store):
    g, keys, prefix = tpm_gateway
    bucket = f"{prefix}tpm-cancel:tokens"
    with LLMClient(f"127.0.0.1:{g.gw.port}", security=ChannelSecurity(keys["tpm-cancel"])) as c:
        t0 = time.monotonic()
        stream = c.generate("Once upon a time, in a small village by the sea,", max_tokens=100, temperature=0,
                            ignore_eos=True)
        first = next(iter(stream))
        assert first.token_ids
        stream.cancel()
    # 100 reserved; the engine stopped after a few tokens: all but those (and the prompt) came back
    balance = wait_until(lambda: (b := _balance(store, bucket)) > TPM - 60 and b, 5,
                         "the cancelled stream's unused reservation back")
    assert balance <= TPM - 1 + 2 * (time.monotonic() - t0), balance  # the prompt and first tokens: charged


def test_llm_tokens_per_minute_is_a_429_with_retry_after_over_http(tpm_gateway):
    g, keys, _ = tpm_gateway
    base = f"http://127.0.0.1:{g.gw.openai_port}/v1"
    headers = {"authorization": f"Bearer {keys['tpm-http']}"}
    with httpx.Client(timeout=60) as http:
        model = http.get(f"{base}/models", headers=headers).json()["data"][0]["id"]
        statuses = []
        for stream in (False, True, True, True, True):  # a stream over budget: 429 before any byte
            r = http.post(f"{base}/completions", headers=headers, json={
                "model": model, "prompt": "Once upon a time", "max_tokens": 50, "temperature": 0, "stream": stream})
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert statuses[0] == 200 and statuses[-1] == 429, statuses
        body = r.json()["error"]
        assert "tokens per minute" in body["message"] and keys["tpm-http"] not in body["message"]
        assert int(r.headers["retry-after"]) >= 1 and int(r.headers["retry-after-ms"]) >= 1
        # the request rate's 429 carries Retry-After too
        rate = {"authorization": f"Bearer {keys['rate']}"}
        codes = [http.get(f"{base}/models", headers=rate) for _ in range(3)]
        assert [c.status_code for c in codes] == [200, 200, 429]
        assert "requests/s" in codes[-1].json()["error"]["message"]
        assert int(codes[-1].headers["retry-after"]) >= 90


def test_gateway_keeps_answering_when_the_store_goes_away(tpm_gateway, store):
    """Last in this module (it stops the module's Redis): calls still succeed, the metric counts."""
    g, keys, _ = tpm_gateway
    metrics_url = f"http://127.0.0.1:{g.gw.metrics_port}/metrics"

    def counted() -> float:
        text = httpx.get(metrics_url, timeout=10).text
        return float(next(ln.split()[-1] for ln in text.splitlines()
                          if ln.startswith("stackserve_rate_limit_store_fallbacks_total")))

    before = counted()
    store.stop()
    try:
        with LLMClient(f"127.0.0.1:{g.gw.port}", security=ChannelSecurity(keys["tpm-cancel"])) as c:
            assert c.complete("Hi", max_tokens=2, temperature=0).usage.completion_tokens >= 1
        with AnomalyClient(f"127.0.0.1:{g.gw.port}", security=ChannelSecurity(keys["rate"])) as c:
            # its shared bucket is empty (the HTTP test), but this replica's own still holds its burst
            assert c.score(X, model="shuttle-rf").scores.shape == (2,)
        assert counted() >= before + 2  # the LLM call's reservation and the Score call's token, decided here
    finally:
        store.start()


def test_chat_answers_draw_on_the_token_budget(trained, settings, store, shared_llm, tmp_path):
    """ChatService: each answer reserves its max_tokens and is charged every draft's prompt and
    completion; past the budget, RESOURCE_EXHAUSTED naming tokens per minute."""
    from server.client import AsyncChatClient, AsyncRetrieverClient
    from server.gateway.server import start_gateway
    from server.gen.stackserve.v1 import retriever_pb2 as rpb
    from server.placement import local_anomaly_endpoint
    from server.rag.retrieval_workload import RetrievalWorkload
    from tests.support.waiting import async_wait_until

    key, prefix, budget = new_key(), f"t-chat-{time.time_ns()}:", 600
    cfg = gateway_settings(
        settings.data_dir,
        rag={"store_dir": str(tmp_path / "rag"), "chunk_min_tokens": 5, "chunk_max_tokens": 80},
        security={"tenants": [{"name": "asker", "key_sha256": [key_digest(key)], "tokens_per_minute": budget}],
                  "limits_store": {"redis_url": store.url, "key_prefix": prefix, "timeout_s": 0.5}},
    )
    doc = rpb.Document(source="boats.md", format="md", text=(
        "# Sailing\n\nA sloop is a sailboat with one mast and two sails.\n\n"
        "## Knots\n\nThe bowline knot makes a fixed loop at the end of a rope. Sailors tie it to moor a boat.\n"))

    async def main() -> list:
        gw = await start_gateway(cfg, local_anomaly_endpoint(cfg), shared_llm, RetrievalWorkload(cfg))
        try:
            await gw.wait_ready(180)
            addr, sec = f"127.0.0.1:{gw.port}", ChannelSecurity(key)
            async with AsyncRetrieverClient(addr, security=sec) as r, AsyncChatClient(addr, security=sec) as c:
                await r.ingest([doc])

                async def serving() -> bool:
                    return await c.health() == "SERVING"

                await async_wait_until(serving, 60, "chat health SERVING", interval=0.2)
                outcomes: list = []
                for _ in range(8):
                    try:
                        msgs = [m async for m in c.ask("What does the bowline knot make?", max_tokens=40)]
                        outcomes.append((msgs[-1].outcome, _balance(store, f"{prefix}asker:tokens")))
                    except grpc.RpcError as exc:
                        outcomes.append(exc)
                        break
                return outcomes
        finally:
            await gw.stop()

    outcomes = asyncio.run(main())
    print(f"chat, {budget} tokens per minute: {outcomes[:-1]}, then {outcomes[-1]!r:.200}")
    first_outcome, first_balance = outcomes[0]
    assert first_outcome in ("answered", "extractive")
    # the prompt (instructions and sources) was charged besides the reservation's 40
    assert first_balance < budget - 40 - 20, outcomes
    err = outcomes[-1]
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, outcomes
    assert "'asker'" in err.details() and f"{budget} tokens per minute" in err.details()
