"""LLM request validation in the gateway, without Ray or a model: every rejection names its field."""

from __future__ import annotations

import json
import math

import grpc
import pytest

from server.client import chat_request, generate_request, sampling_options
from server.gateway.llm_service import endpoint_error_status
from server.gateway.ray_errors import ReplicaBusyError, ReplicaLostError, from_ray
from server.gen.stackserve.v1 import llm_pb2 as pb
from server.llm.errors import ContextLengthError, EngineStoppedError, WaitingQueueFullError
from server.llm.serving import EngineInfo, Piece, StepTracker
from server.observability.logs import ACCESS, access_log
from server.protocol.errors import ServingError
from server.protocol.llm_validation import parse_chat, parse_generate
from server.protocol.registration import DecodeFailure, _safe_deserializer, bad_utf8_field

INFO = EngineInfo(
    model="tiny", backend="torch-fp32", max_model_len=64, vocab_size=100, max_token_bytes=4, default_max_tokens=16
)


def reject(parse, req) -> ServingError:
    with pytest.raises(ServingError) as err:
        parse(req, INFO)
    return err.value


def test_valid_generate_defaults_and_overrides():
    job = parse_generate(generate_request("Hello"), INFO)
    assert (job.kind, job.prompt, job.prompt_token_ids, job.max_tokens_set) == ("generate", "Hello", None, False)
    p = job.params
    assert (p.max_tokens, p.temperature, p.top_k, p.top_p, p.repetition_penalty, p.seed, p.stop, p.ignore_eos) == (
        16, 1.0, 0, 1.0, 1.0, None, (), False
    )
    job = parse_generate(
        generate_request([1, 2, 3], model="tiny", max_tokens=8, temperature=0, top_k=5, top_p=0.5,
                         repetition_penalty=1.1, seed=7, stop=["\n", "END"], ignore_eos=True),
        INFO,
    )
    p = job.params
    assert job.prompt_token_ids == (1, 2, 3) and job.max_tokens_set and job.prompt_field == "prompt_token_ids"
    assert (p.max_tokens, p.temperature, p.top_k, p.top_p, p.seed, p.stop, p.ignore_eos) == (
        8, 0.0, 5, 0.5, 7, ("\n", "END"), True
    )
    assert math.isclose(p.repetition_penalty, 1.1, rel_tol=1e-6)
    assert p.greedy


def test_valid_chat():
    job = parse_chat(chat_request([("system", "Be brief."), {"role": "user", "content": "Hi"}]), INFO)
    assert job.kind == "chat" and job.messages == (("system", "Be brief."), ("user", "Hi"))
    assert job.prompt_field == "messages"
    assert parse_chat(chat_request("Hi", temperature=0), INFO).params.greedy


@pytest.mark.parametrize(
    ("req", "field", "needle"),
    [
        (pb.GenerateRequest(), "prompt", "is empty"),
        (pb.GenerateRequest(prompt="a", prompt_token_ids=[1]), "prompt", "not both"),
        (generate_request("a", max_tokens=0), "sampling.max_tokens", "positive"),
        (generate_request("a", max_tokens=-3), "sampling.max_tokens", "positive"),
        (generate_request("a", max_tokens=64), "sampling.max_tokens", "no room"),
        (generate_request("a", temperature=-0.1), "sampling.temperature", ">= 0"),
        (generate_request("a", temperature=float("nan")), "sampling.temperature", "NaN"),
        (generate_request("a", temperature=float("inf")), "sampling.temperature", ">= 0"),
        (generate_request("a", top_k=-1), "sampling.top_k", ">= 0"),
        (generate_request("a", top_p=0.0), "sampling.top_p", "(0, 1]"),
        (generate_request("a", top_p=1.5), "sampling.top_p", "(0, 1]"),
        (generate_request("a", top_p=float("nan")), "sampling.top_p", "NaN"),
        (generate_request("a", repetition_penalty=0.0), "sampling.repetition_penalty", "> 0"),
        (generate_request("a", seed=2**63), "sampling.seed", "2**63"),
        (generate_request("a", stop=[""]), "sampling.stop", "empty"),
        (generate_request("a", stop=[str(i) for i in range(9)]), "sampling.stop", "at most 8"),
        (generate_request("a", stop=["x" * 65]), "sampling.stop", "at most 64"),
        (generate_request([1, 100]), "prompt_token_ids", "outside the vocabulary"),
        (generate_request([-1]), "prompt_token_ids", "outside the vocabulary"),
        (generate_request(list(range(64))), "prompt_token_ids", "context holds 64"),
        (generate_request(list(range(60)), max_tokens=8), "sampling.max_tokens", "at most 4"),
        (generate_request("x" * (64 * 4 + 1)), "prompt", "cannot fit"),
        (generate_request("a", logprobs=True, top_logprobs=21), "sampling.top_logprobs", "[0, 20]"),
        (generate_request("a", logprobs=True, top_logprobs=-1), "sampling.top_logprobs", "[0, 20]"),
        (generate_request("a", top_logprobs=3), "sampling.top_logprobs", "needs logprobs"),
    ],
)
def test_generate_rejections_name_the_field(req, field, needle):
    err = reject(parse_generate, req)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.field == field, err.details
    assert needle in err.reason, err.reason
    assert err.details.startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("req", "field", "needle"),
    [
        (pb.ChatRequest(), "messages", "is empty"),
        (chat_request([("user", "")]), "messages", "content is empty"),
        (chat_request([("user", "hi"), ("robot", "beep")]), "messages[1].role", "got 'robot'"),
        (chat_request([("", "hi")]), "messages[0].role", "must be one of"),
        (chat_request([("user", "x")] * 257), "messages", "at most 256"),
        (chat_request("hi", top_p=2.0), "sampling.top_p", "(0, 1]"),
        (chat_request("x" * 300), "messages", "cannot fit"),
    ],
)
def test_chat_rejections_name_the_field(req, field, needle):
    err = reject(parse_chat, req)
    assert (err.code, err.field) == (grpc.StatusCode.INVALID_ARGUMENT, field), err.details
    assert needle in err.reason


def test_unknown_model_is_not_found_and_the_served_name_is_accepted():
    err = reject(parse_generate, generate_request("a", model="gpt-9"))
    assert (err.code, err.field) == (grpc.StatusCode.NOT_FOUND, "model")
    assert "'tiny'" in err.reason
    assert reject(parse_chat, chat_request("a", model="gpt-9")).code == grpc.StatusCode.NOT_FOUND
    assert parse_generate(generate_request("a", model="tiny"), INFO).prompt == "a"


def _with_bad_bytes(message, marker: bytes, replacement: bytes = b"\xff\xfe") -> bytes:
    data = message.SerializeToString()
    assert data.count(marker) == 1
    return data.replace(marker, replacement)


@pytest.mark.parametrize(
    ("cls", "body", "field"),
    [
        (pb.GenerateRequest, _with_bad_bytes(generate_request("QQ"), b"QQ"), "prompt"),
        (pb.GenerateRequest, _with_bad_bytes(generate_request("a", stop=["x", "QQ"]), b"QQ"), "sampling.stop[1]"),
        (pb.GenerateRequest, _with_bad_bytes(generate_request("a", model="QQ"), b"QQ"), "model"),
        (pb.ChatRequest, _with_bad_bytes(chat_request([("user", "a"), ("user", "QQ")]), b"QQ"), "messages[1].content"),
        (pb.ChatRequest, _with_bad_bytes(chat_request([("QQ", "a")]), b"QQ", b"\xc3\x28"), "messages[0].role"),
    ],
)
def test_invalid_utf8_is_invalid_argument_naming_the_field(cls, body, field):
    """protobuf rejects the body as a whole; the gateway says which string field was bad."""
    decoded = _safe_deserializer(cls)(body)
    assert isinstance(decoded, DecodeFailure) and "UTF-8" in decoded.reason
    assert bad_utf8_field(cls.DESCRIPTOR, body) == field
    parse = parse_generate if cls is pb.GenerateRequest else parse_chat
    err = reject(parse, decoded)
    assert (err.code, err.field) == (grpc.StatusCode.INVALID_ARGUMENT, field)
    assert "UTF-8" in err.reason


def test_garbage_and_unknown_fields():
    err = reject(parse_generate, _safe_deserializer(pb.GenerateRequest)(b"\x0a\xff\xff\xff"))
    assert (err.code, err.field) == (grpc.StatusCode.INVALID_ARGUMENT, "request")
    unknown = pb.GenerateRequest.FromString(generate_request("a").SerializeToString() + b"\xf8\x06\x01")
    err = reject(parse_generate, unknown)
    assert err.field == "request" and "unknown field number(s) [111]" in err.reason


def test_sampling_options_client_helper():
    opts = sampling_options(max_tokens=4, temperature=None, stop="END")
    assert opts.HasField("max_tokens") and not opts.HasField("temperature") and list(opts.stop) == ["END"]
    with pytest.raises(TypeError, match="unknown sampling option"):
        sampling_options(max_new_tokens=4)


def _ray_wrapped(exc: BaseException) -> BaseException:
    """What a replica's exception looks like at the gateway: Ray's own wrapper, twice over."""
    from ray.exceptions import RayTaskError

    inner = RayTaskError("generate", "traceback", exc).as_instanceof_cause()
    return RayTaskError("generate", "traceback", inner)


def _back_pressure() -> BaseException:
    from ray.serve.exceptions import BackPressureError

    return BackPressureError(num_queued_requests=8, max_queued_requests=8)


def _actor_died() -> BaseException:
    from ray.exceptions import ActorDiedError

    return ActorDiedError()


@pytest.mark.parametrize(
    ("make", "code", "field"),
    [
        (lambda: _ray_wrapped(ContextLengthError("prompt", "600 tokens")), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
        (lambda: _ray_wrapped(WaitingQueueFullError("full")), grpc.StatusCode.RESOURCE_EXHAUSTED, None),
        (lambda: WaitingQueueFullError("full"), grpc.StatusCode.RESOURCE_EXHAUSTED, None),
        (lambda: _ray_wrapped(EngineStoppedError("stopped")), grpc.StatusCode.UNAVAILABLE, None),
        (_back_pressure, grpc.StatusCode.RESOURCE_EXHAUSTED, None),
        (_actor_died, grpc.StatusCode.UNAVAILABLE, None),
        (lambda: RuntimeError("replica died"), grpc.StatusCode.UNAVAILABLE, None),
    ],
)
def test_ray_errors_cross_as_types_and_map_to_status_codes(make, code, field):
    """The Ray endpoint translates (from_ray); the service maps types, never names in strings."""
    exc = from_ray(make())
    assert not type(exc).__module__.startswith("ray"), type(exc)
    err = endpoint_error_status(exc)
    assert (err.code, err.field) == (code, field)


def test_ray_refusals_become_ours():
    assert isinstance(from_ray(_back_pressure()), ReplicaBusyError)
    assert isinstance(from_ray(_actor_died()), ReplicaLostError)
    original = ValueError("x")
    assert from_ray(_ray_wrapped(original)) is original


def test_step_tracker_reports_each_step_once():
    steps = StepTracker(keep=2)
    a, b, c = object(), object(), object()
    assert [steps.first_time(x) for x in (a, a, b, a, b, c)] == [True, False, True, False, False, True]
    piece = Piece("t", [1], [0.0], None, 1, 1, 0.0, 0.0, [2], 1, 0, 0.1)
    assert piece.step_batch_sizes == [2]


def test_access_log_carries_llm_fields_without_text(capsys):
    ACCESS.sync()
    access_log("/stackserve.v1.LLMService/Generate", "OK", 0.0, "rid-1",
               {"prompt_hash": "abcd", "prompt_tokens": 3, "completion_tokens": 5, "finish_reason": "stop"})
    ACCESS.sync()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["request_id"] == "rid-1" and line["prompt_hash"] == "abcd"
    assert (line["prompt_tokens"], line["completion_tokens"], line["finish_reason"]) == (3, 5, "stop")
