"""LLMService end to end over real gRPC: gateway → Ray Serve LLMEngine deployment → engine.

The session server (conftest.py) runs a small engine: 4 KV-cache slots, a 512-token context,
2 waiting requests. Generations are short (≤ 16 tokens) except where a request must stay
busy; those are cancelled or expire, and each test checks that the engine's slot is freed
by polling /metrics (live engine stats) with a deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from server.client import AsyncLLMClient, LLMClient, chat_request, generate_request
from server.gen.stackserve.v1 import llm_pb2 as pb
from tests.support.llm_fixtures import LLM_TEST_CONFIG
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
LONG = {"max_tokens": 400, "ignore_eos": True, "temperature": 0}  # busy until cancelled
CONTEXT = LLM_TEST_CONFIG["max_model_len"]


@pytest.fixture(scope="module")
def llm(server):
    with LLMClient(server.address) as c:
        c.wait_ready(120)
        yield c


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of the stackserve_llm_* series: {(name, sorted labels): value}."""
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name.startswith("stackserve_llm_"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def poll(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """``wait_until`` with this module's 30 s default; kept as a name because test_openai_api.py imports it."""
    return wait_until(check, timeout, what)


def engine_idle(server) -> None:
    """Running and waiting back to 0 and the KV cache empty: every slot freed."""

    def idle():
        s = scrape(server.metrics_url)
        return (value(s, "stackserve_llm_num_requests_running"), value(s, "stackserve_llm_num_requests_waiting"),
                value(s, "stackserve_llm_kv_cache_usage_ratio")) == (0, 0, 0)

    wait_until(idle, 30, "engine idle (running 0, waiting 0, KV cache 0)")


def rpc_error(fn: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value


def test_health_and_reflection_list_the_llm_service(server, llm):
    assert llm.health() == "SERVING"
    with grpc.insecure_channel(server.address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in replies[0].list_services_response.service}
        assert {"stackserve.v1.LLMService", "stackserve.v1.AnomalyService"} <= names


def test_generate_streams_text_then_finish_reason_and_usage(llm):
    responses = list(llm.generate("The capital of France is", temperature=0, max_tokens=8))
    assert len(responses) >= 2
    first, last = responses[0], responses[-1]
    assert first.model and first.timing.ttft_s > 0 and first.index == 0
    assert all(r.finish_reason == "" for r in responses[:-1])
    assert last.finish_reason in ("stop", "length")
    n = sum(len(r.token_ids) for r in responses)
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (5, n)
    assert not any(r.HasField("usage") for r in responses[:-1])
    assert last.timing.e2e_s >= first.timing.ttft_s
    index = 0
    for r in responses:  # index = position of the message's first token; one offset per token
        assert r.index == index and len(r.timing.token_offsets_s) == len(r.token_ids)
        index += len(r.token_ids)
    offsets = [t for r in responses for t in r.timing.token_offsets_s]
    assert offsets == sorted(offsets) and offsets[0] > 0
    assert "".join(r.text for r in responses).strip()


def test_chat_template_answers_paris(llm):
    responses = list(llm.chat("What is the capital of France?", temperature=0, max_tokens=16))
    text = "".join(r.text for r in responses)
    assert "Paris" in text, text
    assert responses[-1].finish_reason == "stop"
    assert responses[-1].usage.prompt_tokens > 20  # the template wrapped the question


def test_complete_equals_the_concatenated_stream(llm):
    kw = {"temperature": 0, "max_tokens": 12}
    streamed = list(llm.generate("Water boils at", **kw))
    whole = llm.complete("Water boils at", **kw)
    assert whole.text == "".join(r.text for r in streamed)
    assert list(whole.token_ids) == [t for r in streamed for t in r.token_ids]
    assert whole.finish_reason == streamed[-1].finish_reason
    assert whole.usage == streamed[-1].usage
    assert 0 < whole.timing.ttft_s <= whole.timing.e2e_s and whole.model == streamed[0].model
    ids = llm.complete([streamed[0].token_ids[0], 11], temperature=0, max_tokens=2)  # token-id prompt
    assert ids.usage.prompt_tokens == 2 and len(ids.token_ids) == ids.usage.completion_tokens


def test_same_seed_same_tokens_over_grpc(server):
    """Sampled (temperature 0.8) with a seed: identical even when the two run in one batch."""

    async def main():
        async with AsyncLLMClient(server.address) as c:
            kw = {"temperature": 0.8, "max_tokens": 10, "ignore_eos": True}
            a, b, other = await asyncio.gather(
                c.complete("Once upon a time", seed=7, **kw),
                c.complete("Once upon a time", seed=7, **kw),
                c.complete("Once upon a time", seed=8, **kw),
            )
            return a, b, other

    a, b, other = asyncio.run(main())
    assert list(a.token_ids) == list(b.token_ids) and a.text == b.text
    assert len(a.token_ids) == 10
    assert list(other.token_ids) != list(a.token_ids)  # the seed matters (10 sampled tokens)


BAD_GENERATE = [
    (pb.GenerateRequest(), "prompt"),
    (pb.GenerateRequest(prompt="a", prompt_token_ids=[1]), "prompt"),
    (generate_request("a", max_tokens=0), "sampling.max_tokens"),
    (generate_request("a", temperature=-1), "sampling.temperature"),
    (generate_request("a", temperature=float("nan")), "sampling.temperature"),
    (generate_request("a", top_k=-2), "sampling.top_k"),
    (generate_request("a", top_p=0), "sampling.top_p"),
    (generate_request("a", top_p=1.01), "sampling.top_p"),
    (generate_request("a", repetition_penalty=0), "sampling.repetition_penalty"),
    (generate_request("a", stop=[""]), "sampling.stop"),
    (generate_request("a", stop=["s"] * 9), "sampling.stop"),
    (generate_request([10**9]), "prompt_token_ids"),
    (generate_request(list(range(CONTEXT))), "prompt_token_ids"),
]


@pytest.mark.parametrize(("request_", "field"), BAD_GENERATE)
@pytest.mark.parametrize("rpc", ["Generate", "Complete"])
def test_invalid_generate_requests(llm, rpc, request_, field):
    def call():
        out = getattr(llm.stub, rpc)(request_, timeout=10)
        return list(out) if rpc == "Generate" else out

    err = rpc_error(call)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}: "), err.details()


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ChatRequest(), "messages"),
        (chat_request([("user", "hi"), ("wizard", "hi")]), "messages[1].role"),
        (chat_request("hi", top_p=3), "sampling.top_p"),
    ],
)
def test_invalid_chat_requests(llm, request_, field):
    err = rpc_error(lambda: list(llm.stub.Chat(request_, timeout=10)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}: "), err.details()


def test_unknown_model_is_not_found(llm):
    err = rpc_error(lambda: llm.complete("hi", model="no-such-model", max_tokens=2))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "model" in err.details()


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("Generate", pb.GenerateRequest(prompt="QQ").SerializeToString().replace(b"QQ", b"\xff\xfe"), "prompt"),
        ("Complete", pb.GenerateRequest(prompt="QQ").SerializeToString().replace(b"QQ", b"\xc3\x28"), "prompt"),
        ("Chat", chat_request([("user", "ok"), ("user", "QQ")]).SerializeToString().replace(b"QQ", b"\xff"),
         "messages[1].content"),
    ],
)
def test_invalid_utf8_is_invalid_argument_naming_the_field(server, method, body, field):
    """A client that sends raw bytes (protobuf Python refuses to build such a message)."""
    with grpc.insecure_channel(server.address) as ch:
        path = f"/stackserve.v1.LLMService/{method}"
        kind = ch.unary_unary if method == "Complete" else ch.unary_stream
        call = kind(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        err = rpc_error(lambda: call(body, timeout=10) if method == "Complete" else list(call(body, timeout=10)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}: ") and "UTF-8" in err.details(), err.details()


def test_prompt_over_the_context_is_invalid_argument(llm):
    """Text prompts are tokenized in the replica; its check comes back with the request's field."""
    err = rpc_error(lambda: llm.complete("hi " * CONTEXT, max_tokens=4))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("prompt: "), err.details()
    err = rpc_error(lambda: list(llm.generate("hi " * (CONTEXT // 2), max_tokens=CONTEXT // 2 + 8)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("sampling.max_tokens: "), err.details()
    err = rpc_error(lambda: list(llm.chat("hi " * CONTEXT, max_tokens=4)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("messages: "), err.details()
    # unset max_tokens is capped to what the context has left instead of rejected
    near_full = llm.complete(list(range(100, 100 + CONTEXT - 3)), temperature=0, ignore_eos=True)
    assert near_full.usage.completion_tokens == 3 and near_full.finish_reason == "length"


def test_cancel_mid_stream_frees_the_slot(server, llm):
    before = value(scrape(server.metrics_url), "stackserve_llm_requests_total", finish_reason="cancelled")
    call = llm.generate("Count to a thousand:", **LONG)
    got = [next(call), next(call)]
    assert all(r.token_ids for r in got)
    assert value(scrape(server.metrics_url), "stackserve_llm_num_requests_running") >= 1
    call.cancel()
    engine_idle(server)
    wait_until(lambda: value(scrape(server.metrics_url), "stackserve_llm_requests_total", finish_reason="cancelled")
               > before, 30, "cancelled request counted")


def test_deadline_exceeded_frees_the_slot(server, llm):
    # sampled (not greedy): speculative decoding can make greedy counting fast enough to finish 400
    # tokens inside the deadline; a seeded sample drafts far less and cannot
    call = llm.generate("Count to a thousand:", timeout=1.0, **{**LONG, "temperature": 1.0, "seed": 3})
    received = []
    err = rpc_error(lambda: received.extend(call))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert received and sum(len(r.token_ids) for r in received) < LONG["max_tokens"]
    engine_idle(server)


def test_full_waiting_queue_is_resource_exhausted(server, llm):
    """4 slots busy + 2 waiting (max_waiting): the next request is shed, not queued. The queued ones
    are batch requests (priority 1): an interactive one behind 4 long streams would be refused by
    admission (llm.admission) before it could wait; max_waiting bounds every class."""
    slots, waiting = LLM_TEST_CONFIG["max_num_seqs"], LLM_TEST_CONFIG["max_waiting"]
    calls = []
    try:
        for _ in range(slots):
            calls.append(llm.generate("Count to a thousand:", timeout=120, **LONG))
            next(calls[-1])  # its first token: it holds a slot
        calls += [llm.generate("Count to a thousand:", timeout=120, priority=1, **LONG) for _ in range(waiting)]
        wait_until(lambda: value(scrape(server.metrics_url), "stackserve_llm_num_requests_waiting") == waiting,
                   30, f"{waiting} requests waiting")
        err = rpc_error(lambda: llm.complete("One more", max_tokens=2, timeout=30, priority=1))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
        assert "queue is full" in err.details()
    finally:
        for c in calls:
            c.cancel()
    engine_idle(server)
    assert llm.complete("Recovered", max_tokens=2, temperature=0).usage.completion_tokens >= 1


def test_metrics_are_exported_after_a_request(server, llm):
    llm.complete("Hello there", temperature=0, max_tokens=4)
    s = scrape(server.metrics_url)
    model = llm.complete("Hi", max_tokens=1).model
    for name in (
        "stackserve_llm_time_to_first_token_seconds_count",
        "stackserve_llm_inter_token_latency_seconds_count",
        "stackserve_llm_e2e_request_latency_seconds_count",
        "stackserve_llm_request_queue_time_seconds_count",
        "stackserve_llm_prompt_tokens_total",
        "stackserve_llm_generation_tokens_total",
        "stackserve_llm_requests_total",
        "stackserve_llm_batch_size_count",
    ):
        assert value(s, name, model=model) > 0, name
    for name in (
        "stackserve_llm_num_requests_running",
        "stackserve_llm_num_requests_waiting",
        "stackserve_llm_kv_cache_usage_ratio",
    ):
        assert (name, (("model", model),)) in s, name
    assert value(s, "stackserve_llm_requests_total", model=model, rpc="Complete", finish_reason="length") >= 1


def test_access_log_line_has_hash_and_counts_not_the_prompt(server, llm, settings):
    secret = f"my secret prompt {uuid.uuid4().hex}"
    rid = uuid.uuid4().hex
    r = llm.complete(secret, temperature=0, max_tokens=3, request_id=rid)

    def line():
        for ln in server.log().splitlines():
            if rid in ln and '"stackserve.access"' in ln:
                return json.loads(ln[ln.index("{"):])
        return None

    entry = wait_until(line, 30, "access-log line")
    assert entry["method"] == "/stackserve.v1.LLMService/Complete" and entry["code"] == "OK"
    assert len(entry["prompt_hash"]) == 16
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (r.usage.prompt_tokens, r.usage.completion_tokens)
    assert entry["finish_reason"] == r.finish_reason
    # the answer as a hash keyed with the deployment's secret (data_dir/hash.key), never as text
    key = bytes.fromhex((settings.data_dir / "hash.key").read_text())
    assert entry["response_hash"] == hashlib.blake2b(r.text.encode(), digest_size=8, key=key).hexdigest()
    assert entry["response_hash"] != hashlib.blake2b(r.text.encode(), digest_size=8).hexdigest()
    assert secret not in server.log()



def test_list_models_and_total_tokens(llm):
    (m,) = llm.list_models()
    assert m.name and m.max_model_len == CONTEXT and m.vocab_size > 0
    assert m.max_num_seqs == LLM_TEST_CONFIG["max_num_seqs"]
    r = llm.complete("Hello", max_tokens=3, temperature=0)
    assert r.model == m.name and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stop_token_id_ends_the_answer_before_its_text(llm):
    """Sampling a stop id ends with "stop"; its id is the last of token_ids (as EOS is), its text never sent."""
    prompt = "The first five prime numbers are"
    ids = list(llm.complete(prompt, max_tokens=8, temperature=0, ignore_eos=True).token_ids)
    k = next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])
    r = llm.complete(prompt, max_tokens=8, temperature=0, ignore_eos=True, stop_token_ids=[ids[k]])
    assert r.finish_reason == "stop" and list(r.token_ids) == ids[: k + 1]
    assert r.text == llm.complete(prompt, max_tokens=k, temperature=0, ignore_eos=True).text
    with pytest.raises(grpc.RpcError) as err:
        llm.complete(prompt, max_tokens=2, stop_token_ids=[10**8])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "stop_token_ids" in err.value.details()


def test_engine_counters_reach_prometheus(server, llm):
    """Speculative decoding and prefix-cache totals, read from the engine (here a Ray replica) with
    the gauges, become counters: a prompt that quotes itself drafts, a repeated prompt hits."""
    quote = "alpha beta gamma delta, alpha beta gamma delta, alpha beta gamma delta, alpha beta"
    for _ in range(2):
        llm.complete(quote, temperature=0, max_tokens=24)
    model = llm.complete("Hi", max_tokens=1).model

    names = ("stackserve_llm_spec_decode_draft_tokens_total", "stackserve_llm_prefix_cache_queries_total",
             "stackserve_llm_prefix_cache_hits_total")

    last: dict[str, float] = {}

    def counted() -> bool:
        s = scrape(server.metrics_url)
        last.update({n: value(s, n, model=model) for n in names})
        return all(v > 0 for v in last.values())

    try:
        wait_until(counted, 30, "speculative-decoding and prefix-cache counters exported")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last values {last}") from None
    s = scrape(server.metrics_url)
    accepted = value(s, "stackserve_llm_spec_decode_accepted_tokens_total", model=model)
    assert 0 <= accepted <= value(s, "stackserve_llm_spec_decode_draft_tokens_total", model=model)
    assert ("stackserve_llm_preemptions_total", (("model", model),)) in s
