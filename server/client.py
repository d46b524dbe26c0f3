"""Python client for stackserve's gRPC API, sync and async.

Used by the CLI, the demo, the benchmarks and the tests, so the contract is
exercised the way users exercise it. Features go over the wire as packed float32.
``LLMClient`` / ``AsyncLLMClient`` stream text generation (LLMService).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.client_channel import ChannelSecurity, aio_channel, sync_channel
from server.gen.stackserve.v1 import anomaly_pb2 as pb
from server.gen.stackserve.v1 import anomaly_pb2_grpc as pb_grpc
from server.gen.stackserve.v1 import chat_pb2 as chat_pb
from server.gen.stackserve.v1 import chat_pb2_grpc as chat_grpc
from server.gen.stackserve.v1 import llm_pb2 as llm_pb
from server.gen.stackserve.v1 import llm_pb2_grpc as llm_grpc
from server.gen.stackserve.v1 import retriever_pb2 as rpb
from server.gen.stackserve.v1 import retriever_pb2_grpc as r_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
ANOMALY_SERVICE = "stackserve.v1.AnomalyService"
LLM_SERVICE = "stackserve.v1.LLMService"
RETRIEVER_SERVICE = "stackserve.v1.RetrieverService"
CHAT_SERVICE = "stackserve.v1.ChatService"


@dataclass(slots=True)
class Scores:
    model: str
    version: str
    threshold: float
    scores: np.ndarray
    is_anomaly: np.ndarray

    @classmethod
    def from_proto(cls, r: pb.ScoreResponse) -> Scores:
        return cls(
            r.model,
            r.model_version,
            r.threshold,
            np.asarray(r.scores, dtype=np.float64),
            np.asarray(r.is_anomaly, dtype=bool),
        )


def score_request(
    X: np.ndarray | Sequence[Sequence[float]],
    model: str = "",
    entity_keys: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
) -> pb.ScoreRequest:
    """Pack a [n_events, n_features] matrix into a ScoreRequest."""
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D [events, features] array, got shape {arr.shape}")
    return pb.ScoreRequest(
        model=model,
        num_features=arr.shape[1],
        features=arr.ravel(),
        entity_keys=list(entity_keys or []),
        feature_names=list(feature_names or []),
    )


def entity_score_request(
    entity_keys: Sequence[str], event_times_us: Sequence[int] | np.ndarray, model: str = ""
) -> pb.ScoreRequest:
    """A ScoreRequest by entity: the server reads each event's features from the feature view the
    model was trained on (``train anomaly --feature-view``), at its time (epoch microseconds)."""
    return pb.ScoreRequest(model=model, entity_keys=list(entity_keys),
                           event_times_us=[int(t) for t in event_times_us])


def wait_serving(check: Callable[[], str], timeout: float, what: str) -> None:
    """Poll a health check until SERVING, with a deadline (no fixed sleeps as synchronisation)."""
    deadline = time.monotonic() + timeout
    last: Exception | str = "not checked"
    while time.monotonic() < deadline:
        try:
            status = check()
            if status == "SERVING":
                return
            last = status
        except grpc.RpcError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{what} not SERVING after {timeout:.0f}s (last: {last})")


def _options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def _metadata(request_id: str | None) -> tuple[tuple[str, str], ...] | None:
    """``x-request-id`` (the server logs it and echoes it back), or no metadata."""
    return (("x-request-id", request_id),) if request_id else None


def _health_request(service: str) -> health_pb2.HealthCheckRequest:
    return health_pb2.HealthCheckRequest(service=service)


def _status_name(response: health_pb2.HealthCheckResponse) -> str:
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


T = TypeVar("T")
#: What a unary call returns: the value on a blocking client, an awaitable of it on an asyncio one.
Result = T | Awaitable[T]
Stream = Iterator[T] | AsyncIterator[T]


class _Client:
    """What every client has: one channel to ``address`` (message size limits both ways), the
    service's stub and the health stub on it. Subclasses name the stub and the channel kind.

    One core for both kinds: each service's methods are written once (``_AnomalyCalls`` and the
    like) and hand the stub's answer to ``_result`` (unary) or ``_stream`` (server streams), which
    the blocking client implements by returning the value and the asyncio client by awaiting it.
    """

    _stub_class: ClassVar[Callable[[Any], Any]]
    _channel_class: ClassVar[Callable[..., Any]]
    _service: ClassVar[str] = ""  # full gRPC service name, for health checks
    _ready_timeout_s: ClassVar[float] = 120.0

    def __init__(self, address: str = DEFAULT_ADDRESS, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 security: ChannelSecurity | None = None):
        """``security``: TLS and the API key; default from STACKSERVE_API_KEY / STACKSERVE_TLS_*
        (plaintext, no key, when those are unset)."""
        self.address = address
        security = security if security is not None else ChannelSecurity.from_env()
        self.channel = self._channel_class(address, _options(max_message_bytes), security)
        self.stub = self._stub_class(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    def _result(self, answer: Any, shape: Callable[[Any], T]) -> Result[T]:
        raise NotImplementedError

    def _stream(self, call: Any, shape: Callable[[Any], T]) -> Stream[T]:
        raise NotImplementedError

    def _health(self, service: str, timeout: float) -> Result[str]:
        return self._result(self.health_stub.Check(_health_request(service), timeout=timeout), _status_name)

    def health(self, timeout: float = 5.0) -> Result[str]:
        """This client's service's health status (SERVING, NOT_SERVING, ...)."""
        return self._health(self._service, timeout)


def _same(x: T) -> T:
    return x


class _SyncClient(_Client):
    """Blocking channel; ``with Client(addr) as c:`` closes it."""

    _channel_class = staticmethod(sync_channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _result(self, answer: Any, shape: Callable[[Any], T]) -> T:
        return shape(answer)

    def _stream(self, call: Any, shape: Callable[[Any], T]) -> Iterator[T]:
        return (shape(r) for r in call)

    def _wait_ready(self, service: str, timeout: float, what: str) -> None:
        wait_serving(lambda: self._health(service, timeout=2.0), timeout, what)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the service reports SERVING (polls with a deadline, no fixed sleeps)."""
        self._wait_ready(self._service, timeout or self._ready_timeout_s, self._service.rpartition(".")[2])


class _AsyncClient(_Client):
    """asyncio channel; ``async with Client(addr) as c:`` closes it."""

    _channel_class = staticmethod(aio_channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _result(self, answer: Awaitable[Any], shape: Callable[[Any], T]) -> T:
        return shape(await answer)

    async def _stream(self, call: AsyncIterator[Any], shape: Callable[[Any], T]) -> AsyncIterator[T]:
        async for r in call:
            yield shape(r)


class _AnomalyCalls(_Client):
    """AnomalyService, for ``AnomalyClient`` and ``AsyncAnomalyClient``."""

    _stub_class = pb_grpc.AnomalyServiceStub
    _service = ANOMALY_SERVICE

    def score(
        self,
        X: np.ndarray,
        model: str = "",
        entity_keys: Sequence[str] | None = None,
        timeout: float | None = 30.0,
        request_id: str | None = None,
    ) -> Result[Scores]:
        call = self.stub.Score(score_request(X, model, entity_keys), timeout=timeout, metadata=_metadata(request_id))
        return self._result(call, Scores.from_proto)

    def score_entities(
        self,
        entity_keys: Sequence[str],
        event_times_us: Sequence[int] | np.ndarray,
        model: str = "",
        timeout: float | None = 30.0,
        request_id: str | None = None,
    ) -> Result[Scores]:
        """Score events by entity key and event time (epoch microseconds) instead of feature values:
        the server looks the features up in the model's feature view (one lookup per request)."""
        call = self.stub.Score(entity_score_request(entity_keys, event_times_us, model), timeout=timeout,
                               metadata=_metadata(request_id))
        return self._result(call, Scores.from_proto)

    def score_request(self, request: pb.ScoreRequest, timeout: float | None = 30.0) -> Result[pb.ScoreResponse]:
        """A prepared request, the raw response (load generators build requests once)."""
        return self._result(self.stub.Score(request, timeout=timeout), _same)

    def score_stream(
        self, batches: Iterable[tuple[np.ndarray, Sequence[str] | None]], model: str = "", timeout: float | None = None
    ) -> Stream[Scores]:
        """Send (matrix, entity_keys) batches in order; yields one Scores per batch, in order."""
        requests = (score_request(X, model, keys) for X, keys in batches)
        return self._stream(self.stub.ScoreStream(requests, timeout=timeout), Scores.from_proto)

    def list_models(self, timeout: float = 10.0) -> Result[list[pb.ModelInfo]]:
        return self._result(self.stub.ListModels(pb.ListModelsRequest(), timeout=timeout), lambda r: list(r.models))

    def rollout(self, timeout: float = 10.0) -> Result[pb.RolloutStatus]:
        """The server's challenger rollout: state, per-arm numbers, reason."""
        return self._result(self.stub.GetRollout(pb.GetRolloutRequest(), timeout=timeout), _same)

    def health(self, service: str = "", timeout: float = 5.0) -> Result[str]:
        """The server's overall health (``service`` empty) or one service's."""
        return self._health(service, timeout)


class AnomalyClient(_AnomalyCalls, _SyncClient):
    """Blocking client. ``with AnomalyClient(addr) as c: c.score(X)``."""

    def wait_ready(self, timeout: float = 120.0, service: str = ANOMALY_SERVICE) -> None:
        """Block until health reports SERVING (polls with a deadline, no fixed sleeps)."""
        self._wait_ready(service, timeout, "server")


class AsyncAnomalyClient(_AnomalyCalls, _AsyncClient):
    """asyncio client: ``async with AsyncAnomalyClient(addr) as c: await c.score(X)``."""


# ----- LLM ------------------------------------------------------------------------
SAMPLING_KEYS = frozenset(
    ("max_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop", "ignore_eos",
     "presence_penalty", "frequency_penalty", "min_p", "stop_token_ids", "response_format", "json_schema",
     "priority", "logprobs", "top_logprobs")
)
Messages = str | Sequence[Mapping[str, str] | tuple[str, str] | llm_pb.ChatMessage]


def sampling_options(**sampling: Any) -> llm_pb.SamplingOptions:
    """SamplingOptions from keyword arguments; a None value leaves the field unset (server default)."""
    unknown = set(sampling) - SAMPLING_KEYS
    if unknown:
        raise TypeError(f"unknown sampling option(s) {sorted(unknown)}; choose from {sorted(SAMPLING_KEYS)}")
    opts = llm_pb.SamplingOptions()
    for key, value in sampling.items():
        if value is None:
            continue
        if key == "stop":
            opts.stop.extend([value] if isinstance(value, str) else value)
        elif key == "stop_token_ids":
            opts.stop_token_ids.extend(int(t) for t in value)
        else:
            setattr(opts, key, value)
    return opts


def generate_request(prompt: str | Sequence[int], model: str = "", **sampling: Any) -> llm_pb.GenerateRequest:
    """A text prompt, or a sequence of token ids."""
    req = llm_pb.GenerateRequest(model=model, sampling=sampling_options(**sampling))
    if isinstance(prompt, str):
        req.prompt = prompt
    else:
        req.prompt_token_ids.extend(int(t) for t in prompt)
    return req


def chat_request(messages: Messages, model: str = "", **sampling: Any) -> llm_pb.ChatRequest:
    """``messages``: a string (one user message), dicts with role/content, or (role, content) pairs."""
    if isinstance(messages, str):
        messages = [("user", messages)]
    out = []
    for m in messages:
        if isinstance(m, llm_pb.ChatMessage):
            out.append(m)
        elif isinstance(m, Mapping):
            out.append(llm_pb.ChatMessage(role=m["role"], content=m["content"]))
        else:
            role, content = m
            out.append(llm_pb.ChatMessage(role=role, content=content))
    return llm_pb.ChatRequest(messages=out, model=model, sampling=sampling_options(**sampling))


class _LLMCalls(_Client):
    """LLMService, for ``LLMClient`` and ``AsyncLLMClient``. Streams are the gRPC calls themselves:
    iterate them (``for`` / ``async for``); ``cancel()`` on one (or dropping it) cancels the call,
    which aborts generation on the server."""

    _stub_class = llm_grpc.LLMServiceStub
    _service = LLM_SERVICE
    _ready_timeout_s = 300.0

    def generate(
        self,
        prompt: str | Sequence[int],
        model: str = "",
        timeout: float | None = None,
        request_id: str | None = None,
        **sampling: Any,
    ) -> Any:
        """The streaming call (a response iterator, or a ``grpc.aio.UnaryStreamCall``)."""
        return self.stub.Generate(
            generate_request(prompt, model, **sampling), timeout=timeout, metadata=_metadata(request_id)
        )

    def chat(
        self,
        messages: Messages,
        model: str = "",
        timeout: float | None = None,
        request_id: str | None = None,
        **sampling: Any,
    ) -> Any:
        """The streaming call, as ``generate``; the server applies the model's chat template."""
        return self.stub.Chat(
            chat_request(messages, model, **sampling), timeout=timeout, metadata=_metadata(request_id)
        )

    def complete(
        self,
        prompt: str | Sequence[int],
        model: str = "",
        timeout: float | None = None,
        request_id: str | None = None,
        **sampling: Any,
    ) -> Result[llm_pb.CompleteResponse]:
        call = self.stub.Complete(generate_request(prompt, model, **sampling), timeout=timeout,
                                  metadata=_metadata(request_id))
        return self._result(call, _same)

    def list_models(self, timeout: float = 10.0) -> Result[list[llm_pb.LLMModel]]:
        call = self.stub.ListModels(llm_pb.ListLLMModelsRequest(), timeout=timeout)
        return self._result(call, lambda r: list(r.models))


class LLMClient(_LLMCalls, _SyncClient):
    """Blocking LLM client. ``for r in c.generate("Hi", max_tokens=16): print(r.text, end="")``."""


class AsyncLLMClient(_LLMCalls, _AsyncClient):
    """asyncio LLM client: ``async for r in c.generate("Hi", max_tokens=16): ...``."""


def search_request(query: str, k: int = 5, equals: Mapping[str, str] | None = None,
                   any_of: Mapping[str, Sequence[str]] | None = None,
                   ranges: Mapping[str, tuple[float | None, float | None]] | None = None) -> rpb.SearchRequest:
    """A SearchRequest; ``ranges`` maps a number field to (gte, lte), None for an open end."""
    f = rpb.ChunkFilter(equals=dict(equals or {}),
                        any_of={k_: rpb.StringList(values=list(v)) for k_, v in (any_of or {}).items()})
    for name, (lo, hi) in (ranges or {}).items():
        r = f.range[name]
        if lo is not None:
            r.gte = lo
        if hi is not None:
            r.lte = hi
    return rpb.SearchRequest(query=query, k=k, filter=f)


class _RetrieverCalls(_Client):
    """RetrieverService, for ``RetrieverClient`` and ``AsyncRetrieverClient``: ``search`` and a
    streamed ``ingest``."""

    _stub_class = r_grpc.RetrieverServiceStub
    _service = RETRIEVER_SERVICE

    def search(
        self, query: str, k: int = 5, timeout: float | None = 30.0, **filters: Any
    ) -> Result[rpb.SearchResponse]:
        return self._result(self.stub.Search(search_request(query, k, **filters), timeout=timeout), _same)

    def ingest(self, documents: Iterable[rpb.Document], timeout: float | None = 600.0) -> Result[rpb.IngestReport]:
        return self._result(self.stub.Ingest(iter(documents), timeout=timeout), _same)


class RetrieverClient(_RetrieverCalls, _SyncClient):
    """Blocking client for RetrieverService."""


class AsyncRetrieverClient(_RetrieverCalls, _AsyncClient):
    """asyncio client for RetrieverService."""


def ask_request(question: str, k: int = 0, max_tokens: int = 0, **filters: Any) -> chat_pb.AskRequest:
    f = search_request("", **filters).filter
    return chat_pb.AskRequest(question=question, k=k, max_tokens=max_tokens, filter=f)


class _ChatCalls(_Client):
    """ChatService, for ``ChatClient`` and ``AsyncChatClient``: ``ask`` streams draft pieces, then
    the final message (iterate the call with ``for`` / ``async for``)."""

    _stub_class = chat_grpc.ChatServiceStub
    _service = CHAT_SERVICE
    _ready_timeout_s = 300.0

    def ask(self, question: str, k: int = 0, max_tokens: int = 0, timeout: float | None = 120.0,
            **filters: Any) -> Stream[chat_pb.AskResponse]:
        return self.stub.Ask(ask_request(question, k, max_tokens, **filters), timeout=timeout)


class ChatClient(_ChatCalls, _SyncClient):
    """Blocking client for ChatService."""


class AsyncChatClient(_ChatCalls, _AsyncClient):
    """asyncio client for ChatService."""
