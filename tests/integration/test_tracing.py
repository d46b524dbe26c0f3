"""OpenTelemetry: one Generate call over a real gRPC server (engine in-process) leaves a span tree
gateway RPC → llm.generate → engine.queue / engine.prefill / engine.decode, in time order, carrying
the client's x-request-id, which also comes back in the trailing metadata."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server.client import LLMClient
from server.config import load_settings
from server.gateway.server import start_gateway
from server.observability import tracing
from server.placement import local_anomaly_endpoint
from tests.support.llm_fixtures import LLM_TEST_CONFIG

pytestmark = pytest.mark.integration


def test_one_request_has_the_span_tree_and_the_request_id(trained, settings, shared_llm):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    cfg = load_settings(None, data_dir=str(settings.data_dir), gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
                        llm=LLM_TEST_CONFIG, rag={"enabled": False})

    async def main():
        gw = await start_gateway(cfg, local_anomaly_endpoint(cfg), shared_llm, None)
        tracing.use_provider(provider)
        try:
            await gw.wait_ready(180)

            def call():
                with LLMClient(f"127.0.0.1:{gw.port}") as c:
                    stream = c.generate("Name three colours:", max_tokens=6, ignore_eos=True,
                                        request_id="trace-me-42")
                    pieces = list(stream)
                    return pieces, dict(stream.trailing_metadata())

            return await asyncio.to_thread(call)
        finally:
            tracing.use_provider(None)
            await gw.stop()

    pieces, trailing = asyncio.run(main())
    assert trailing["x-request-id"] == "trace-me-42"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    rpc = spans["/stackserve.v1.LLMService/Generate"]
    gen, queue, prefill, decode = (spans[n] for n in ("llm.generate", "engine.queue", "engine.prefill",
                                                       "engine.decode"))
    assert rpc.attributes["stackserve.request_id"] == "trace-me-42"
    assert rpc.attributes["rpc.grpc.status_code"] == "OK"
    assert gen.parent.span_id == rpc.context.span_id and gen.context.trace_id == rpc.context.trace_id
    assert {s.parent.span_id for s in (queue, prefill, decode)} == {gen.context.span_id}
    assert queue.end_time <= prefill.start_time + 1_000 and prefill.end_time <= decode.start_time + 1_000
    assert rpc.start_time <= gen.start_time and decode.end_time <= gen.end_time <= rpc.end_time
    assert gen.attributes["llm.completion_tokens"] == 6 and gen.attributes["llm.finish_reason"] == "length"
    assert decode.attributes["engine.steps"] >= 1 and prefill.attributes["engine.steps"] >= 1
    assert sum(len(p.token_ids) for p in pieces) == 6
