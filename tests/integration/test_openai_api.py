"""The OpenAI-compatible HTTP API over the session's real server, driven by the official ``openai``
client: the same engine, validation, metrics and access log as gRPC (server/gateway/openai_http.py)."""

from __future__ import annotations

import json
import time
import urllib.request

import httpx
import numpy as np
import openai
import pytest

from server.client import LLMClient
from tests.integration.test_llm_grpc import engine_idle, poll, scrape, value
from tests.support.llm_fixtures import LLM_TEST_CONFIG

pytestmark = pytest.mark.integration
GREEDY = {"temperature": 0, "max_tokens": 12}


@pytest.fixture(scope="module")
def client(server):
    with LLMClient(server.address) as c:
        c.wait_ready(120)
    with openai.OpenAI(base_url=server.info["openai"], api_key="unused", max_retries=0, timeout=60) as oc:
        yield oc


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id  # the LLM; the embedding model follows it


def test_models_lists_the_served_model(client, server):
    with LLMClient(server.address) as c:
        grpc_model = c.complete("Hi", max_tokens=1, temperature=0).model
    from server.protocol.openai_embeddings import EMBEDDING_MODEL

    assert [m.id for m in client.models.list().data] == [grpc_model, EMBEDDING_MODEL]  # the LLM first


def test_chat_completion_equals_the_grpc_answer(client, server, model):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    out = client.chat.completions.create(model=model, messages=messages, **GREEDY)
    with LLMClient(server.address) as c:
        want = "".join(r.text for r in c.chat([("user", messages[0]["content"])], max_tokens=12, temperature=0))
    (choice,) = out.choices
    assert choice.message.role == "assistant" and choice.message.content == want
    assert choice.finish_reason in ("stop", "length")
    u = out.usage
    assert u.completion_tokens > 0 and u.prompt_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_streamed_chat_concatenates_to_the_unary_answer_and_reports_usage(client, model):
    messages = [{"role": "user", "content": "Name three colours."}]
    unary = client.chat.completions.create(model=model, messages=messages, **GREEDY)
    chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True,
                                                 stream_options={"include_usage": True}, **GREEDY))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == unary.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content  # the role travels with the first text, after prefill
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [unary.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == unary.usage.completion_tokens


def _root(server) -> str:
    return server.info["openai"].removesuffix("/").removesuffix("/v1")


def test_tokenize_counts_what_generation_counts_and_detokenize_inverts_it(client, server, model):
    root = _root(server)
    tok = httpx.post(f"{root}/tokenize", json={"model": model, "prompt": "The sky is"}, timeout=30).json()
    out = client.completions.create(model=model, prompt="The sky is", max_tokens=1, temperature=0)
    assert tok["count"] == len(tok["tokens"]) == out.usage.prompt_tokens and tok["max_model_len"] > 0
    assert httpx.post(f"{root}/tokenize", json={"content": "The sky is"}, timeout=30).json()["tokens"] == tok["tokens"]
    messages = [{"role": "user", "content": "Name three colours."}]
    chat_tok = httpx.post(f"{root}/tokenize", json={"model": model, "messages": messages}, timeout=30).json()
    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=1, temperature=0)
    assert chat_tok["count"] == chat.usage.prompt_tokens  # the chat template applied, as generation does
    back = httpx.post(f"{root}/detokenize", json={"model": model, "tokens": tok["tokens"]}, timeout=30).json()
    assert back["prompt"] == back["content"] and back["prompt"].endswith("The sky is")
    templated = httpx.post(f"{root}/detokenize", json={"tokens": chat_tok["tokens"]}, timeout=30).json()["prompt"]
    assert "Name three colours." in templated and templated != "Name three colours."


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/tokenize", {}, "prompt"),
    ("/tokenize", {"prompt": "a", "content": "b"}, "prompt"),
    ("/tokenize", {"prompt": ""}, "prompt"),
    ("/tokenize", {"messages": []}, "messages"),
    ("/tokenize", {"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ("/detokenize", {"tokens": [1, 10**9]}, "tokens[1]"),
    ("/detokenize", {"tokens": "abc"}, "tokens"),
])
def test_tokenize_refusals_name_the_field(server, path, body, param):
    r = httpx.post(f"{_root(server)}{path}", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_completions_text_and_token_prompts_stream_and_not(client, model):
    out = client.completions.create(model=model, prompt="The sky is", **GREEDY)
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=model, prompt="The sky is", stream=True, **GREEDY))
    assert out.choices[0].text == streamed and out.usage.completion_tokens > 0
    by_ids = client.completions.create(model=model, prompt=[504, 3940, 314], max_tokens=3, temperature=0)
    assert by_ids.usage.prompt_tokens == 3


def test_chat_logprobs_stream_and_not(client, model):
    kw = {"model": model, "messages": [{"role": "user", "content": "Name a color."}], "max_tokens": 6,
          "temperature": 0, "logprobs": True, "top_logprobs": 3}
    out = client.chat.completions.create(**kw)
    content = out.choices[0].logprobs.content
    assert len(content) == out.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)  # greedy: the top token
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token
    streamed = [e for c in client.chat.completions.create(stream=True, **kw)
                if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in content]
    plain = client.chat.completions.create(**{k: v for k, v in kw.items() if k not in ("logprobs", "top_logprobs")})
    assert plain.choices[0].logprobs is None


def test_completion_logprobs_shape(client, model):
    out = client.completions.create(model=model, prompt="The sky is", max_tokens=5, temperature=0, logprobs=2)
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == out.usage.completion_tokens
    pairs = zip(lp.top_logprobs, lp.token_logprobs, strict=True)
    assert all(len(top) <= 2 and max(top.values()) == pytest.approx(v) for top, v in pairs)
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=model, prompt="x", max_tokens=2, logprobs=True)  # a count, not a bool
    assert err.value.body["param"] == "logprobs"


def test_same_seed_same_sample(client, model):
    kw = {"model": model, "prompt": "Once upon a time", "max_tokens": 10, "temperature": 1.0, "seed": 7}
    assert client.completions.create(**kw).choices[0].text == client.completions.create(**kw).choices[0].text


@pytest.mark.parametrize(("kwargs", "param", "status"), [
    ({"top_p": 1.5}, "top_p", 400),
    ({"temperature": -1}, "temperature", 400),
    ({"max_tokens": LLM_TEST_CONFIG["max_model_len"] + 10}, "max_tokens", 400),
    ({"n": 9}, "n", 400),
    ({"presence_penalty": 2.5}, "presence_penalty", 400),
    ({"extra_body": {"min_p": 1.5}}, "min_p", 400),
    ({"extra_body": {"stop_token_ids": [10**9]}}, "stop_token_ids", 400),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", 400),
    ({"top_logprobs": 2}, "top_logprobs", 400),  # without logprobs: true
    ({"response_format": {"type": "yaml"}}, "response_format.type", 400),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools", 400),
    ({"model": "no-such-model"}, "model", 404),
    ({"messages": []}, "messages", 400),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", 400),
])
def test_bad_requests_get_openai_shaped_errors_naming_the_field(client, model, kwargs, param, status):
    args = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **kwargs}
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(**args)
    assert err.value.status_code == status
    body = err.value.body
    assert body["param"] == param and body["message"].startswith(param) and body["type"]


def test_malformed_json_is_a_400_not_a_500(server):
    req = urllib.request.Request(f"{server.info['openai']}/chat/completions", data=b"{not json",
                                 headers={"content-type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400
    assert json.loads(err.value.read())["error"]["param"] == "body"


def test_client_disconnect_mid_stream_aborts_in_the_engine(server, model):
    """Leaving an SSE stream early frees the KV slot, as a cancelled gRPC stream does."""
    before = value(scrape(server.metrics_url), "stackserve_llm_requests_total", finish_reason="cancelled",
                   rpc="chat.completions")
    body = {"model": model, "messages": [{"role": "user", "content": "Count to a thousand:"}], "stream": True,
            "max_tokens": 400, "temperature": 0, "ignore_eos": True}
    with httpx.Client(timeout=60) as http, http.stream("POST", f"{server.info['openai']}/chat/completions",
                                                        json=body) as resp:
        assert resp.status_code == 200 and resp.headers["x-request-id"]
        lines = resp.iter_lines()
        got = [line for line, _ in zip(lines, range(6), strict=False) if line.startswith("data: ")]
        assert len(got) >= 2
    engine_idle(server)
    poll(lambda: value(scrape(server.metrics_url), "stackserve_llm_requests_total", finish_reason="cancelled",
                       rpc="chat.completions") > before, what="the abandoned stream counted as cancelled")


def test_http_requests_are_counted_and_logged_with_hashes_not_text(client, server, model):
    secret = f"zebra-{time.time_ns()}"
    rid = f"oa-{time.time_ns()}"
    out = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": secret}], max_tokens=2, temperature=0,
        extra_headers={"x-request-id": rid})
    assert out.headers["x-request-id"] == rid
    body = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    assert 'stackserve_http_requests_total{path="/v1/chat/completions",status="200"}' in body

    def line():
        for ln in server.log().splitlines():
            if rid in ln and '"stackserve.access"' in ln:
                return json.loads(ln[ln.index("{"):])
        return None

    entry = poll(line, what="an access-log line for the HTTP call")
    assert entry["method"] == "POST /v1/chat/completions" and entry["code"] == "200"
    assert len(entry["prompt_hash"]) == 16 and entry["completion_tokens"] == out.parse().usage.completion_tokens
    assert secret not in server.log()


def test_penalties_and_stop_token_ids_reach_the_engine(client, server, model):
    """A frequency penalty changes a greedy answer; min_p 0 changes nothing (stop ids: test_llm_grpc.py).
    Alone in the engine: a batch of several sequences takes other kernels, whose summation order may
    flip a near-tie token (a CI run failed here once, after the previous tests' streams)."""
    engine_idle(server)
    kw = {"model": model, "prompt": "1, 2, 3, 4, 5,", "max_tokens": 16, "temperature": 0}
    plain = client.completions.create(**kw)
    penalized = client.completions.create(frequency_penalty=2.0, **kw)
    assert plain.choices[0].text != penalized.choices[0].text
    ids = client.completions.create(**kw, extra_body={"min_p": 0.0})  # accepted, no-op
    assert ids.choices[0].text == plain.choices[0].text


def test_response_format_json_schema_is_enforced(client, model):
    import jsonschema

    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                               "population": {"type": "integer", "minimum": 0, "maximum": 99999999}},
              "required": ["city", "population"], "additionalProperties": False}
    out = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "The largest city in France, as JSON."}], max_tokens=120,
        temperature=0, response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}})
    assert out.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(out.choices[0].message.content), schema)
    mode = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Any JSON."}],
                                          max_tokens=60, temperature=0, response_format={"type": "json_object"})
    text = mode.choices[0].message.content  # any object: the model may still be writing at max_tokens
    assert text.startswith("{") and (mode.choices[0].finish_reason == "length" or isinstance(json.loads(text), dict))
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], max_tokens=8,
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "x", "schema": {"type": "nope"}}})
    assert err.value.body["param"] == "response_format"


def test_n_choices_stream_and_not_with_seeds(client, model):
    """n choices: index 0..n-1; with a seed, choice i samples with seed + i (reproducible, and the
    streamed choices, merged by index, equal the unary ones); usage counts every choice's tokens."""
    kw = {"model": model, "messages": [{"role": "user", "content": "Name an animal."}], "max_tokens": 8,
          "temperature": 1.0, "seed": 11, "n": 3}
    out = client.chat.completions.create(**kw)
    assert [c.index for c in out.choices] == [0, 1, 2]
    texts = [c.message.content for c in out.choices]
    assert texts == [c.message.content for c in client.chat.completions.create(**kw).choices]
    streamed = ["", "", ""]
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    for c in chunks:
        for ch in c.choices:
            streamed[ch.index] += ch.delta.content or ""
    assert streamed == texts
    assert chunks[-1].usage.completion_tokens == out.usage.completion_tokens
    one = client.chat.completions.create(**{**kw, "n": 1, "seed": 12})  # choice 1's seed on its own
    assert one.choices[0].message.content == texts[1]


def test_embeddings_are_the_retrievers_vectors(client, server):
    """/v1/embeddings returns the retrieval embedder's unit vectors, float and base64 alike."""
    from server.protocol.openai_embeddings import EMBEDDING_MODEL

    texts = ["How do I rotate the API keys?", "Rotating credentials", "A recipe for pancakes"]
    out = client.embeddings.create(model=EMBEDDING_MODEL, input=texts)  # the client asks for base64
    vecs = np.array([d.embedding for d in out.data], dtype=np.float32)
    assert vecs.shape == (3, 384) and [d.index for d in out.data] == [0, 1, 2]
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]  # related texts are closer
    as_float = client.embeddings.create(model=EMBEDDING_MODEL, input=texts[0], encoding_format="float")
    assert np.allclose(as_float.data[0].embedding, vecs[0], atol=1e-6)
    assert out.usage.prompt_tokens > 0 and out.usage.total_tokens == out.usage.prompt_tokens
    assert EMBEDDING_MODEL in {m.id for m in client.models.list().data}


@pytest.mark.parametrize(("kwargs", "param", "status"), [
    ({"input": []}, "input", 400),
    ({"input": [""]}, "input[0]", 400),
    ({"input": [[1, 2, 3]]}, "input", 400),
    ({"input": "x", "dimensions": 128}, "dimensions", 400),
    ({"input": "x", "model": "text-embedding-3-small"}, "model", 404),
])
def test_embedding_errors_name_the_field(client, kwargs, param, status):
    from server.protocol.openai_embeddings import EMBEDDING_MODEL

    with pytest.raises(openai.APIStatusError) as err:
        client.embeddings.create(**{"model": EMBEDDING_MODEL, **kwargs})
    assert err.value.status_code == status and err.value.body["param"] == param
