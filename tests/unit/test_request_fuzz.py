"""Request parsing fuzzed: random bodies and mutated valid ones, through the gateway's deserializer
and each service's parser. The only allowed outcomes are a parsed request or a ``ServingError`` with a
client-facing code and a bounded message; anything else (an exception the gateway would turn into
INTERNAL) is a finding. Bounded in time: a few hundred examples per parser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.anomaly.catalog import CatalogEntry
from server.anomaly.model import StreamSpec
from server.client import chat_request, generate_request, score_request
from server.gen.stackserve.v1 import anomaly_pb2, chat_pb2, llm_pb2, retriever_pb2
from server.llm.serving import EngineInfo
from server.protocol.anomaly_validation import parse_score_request
from server.protocol.chat_validation import parse_ask
from server.protocol.errors import MAX_DETAILS_CHARS, ServingError
from server.protocol.llm_validation import parse_chat, parse_generate
from server.protocol.registration import _safe_deserializer
from server.protocol.retriever_validation import parse_document, parse_search
from tests.support.hypothesis_profiles import examples

NAMES = tuple(f"f{i}" for i in range(3))
CATALOG = {
    "plain": CatalogEntry("plain", "1", "random_forest", NAMES, 3, None, 0.5),
    "stream": CatalogEntry("stream", "2", "random_forest", NAMES, 15, StreamSpec(8, 0.2), 0.5),
}
INFO = EngineInfo(model="tiny", backend="torch-fp32", max_model_len=64, vocab_size=100, max_token_bytes=4,
                  default_max_tokens=16)
CLIENT_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE}

# (message class, a valid body to mutate, the parser as the gateway calls it)
PARSERS: dict[str, tuple[type, bytes, Callable[[Any], Any]]] = {
    "Score": (anomaly_pb2.ScoreRequest,
              score_request(np.ones((2, 3), np.float32), "stream", ["a", "b"]).SerializeToString(),
              lambda r: parse_score_request(r, CATALOG, "plain", "stream")),
    "Generate": (llm_pb2.GenerateRequest,
                 generate_request("hello", max_tokens=4, temperature=0.5, stop=["x"]).SerializeToString(),
                 lambda r: parse_generate(r, INFO)),
    "Chat": (llm_pb2.ChatRequest, chat_request([("system", "be brief"), ("user", "hi")]).SerializeToString(),
             lambda r: parse_chat(r, INFO)),
    "Search": (retriever_pb2.SearchRequest, retriever_pb2.SearchRequest(query="for loop", k=3).SerializeToString(),
               parse_search),
    "Ingest": (retriever_pb2.Document, retriever_pb2.Document(source="a.md", text="# A\nbody").SerializeToString(),
               lambda r: parse_document(r, 0)),
    "Ask": (chat_pb2.AskRequest, chat_pb2.AskRequest(question="what is a for loop?").SerializeToString(), parse_ask),
}


@st.composite
def bodies(draw: st.DrawFn, valid: bytes) -> bytes:
    """Random bytes, or the valid body with bytes flipped, cut, inserted or repeated."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "cut", "insert", "repeat")))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=12))
        else:
            data += data[i:]
    return bytes(data)


@pytest.mark.parametrize("rpc", sorted(PARSERS))
def test_fuzzed_bodies_parse_or_get_a_client_status(rpc):
    cls, valid, parse = PARSERS[rpc]
    deserialize = _safe_deserializer(cls, max_bytes=4096)

    @given(bodies(valid))
    @settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    def check(body: bytes) -> None:
        try:
            parse(deserialize(body))
        except ServingError as err:
            assert err.code in CLIENT_CODES, (body, err.code, err.details)
            assert 0 < len(err.details) <= MAX_DETAILS_CHARS + 40

    check()
