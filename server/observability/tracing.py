"""OpenTelemetry spans: gateway RPC → LLM deployment (replica or in-process engine) → engine stages.

Off by default (``tracing.exporter: none``): then no span is ever created, so the hot path pays one
attribute read. When on, the gateway opens a server span per RPC (attributes: method, request id,
status code); the LLM call carries the W3C trace context inside the job (it crosses Ray pickled with
it); the engine side opens ``llm.generate`` under that context and, from the timestamps the engine
already reports per request, its stages: ``engine.queue`` (waiting for a KV-cache slot),
``engine.prefill`` (prefill steps up to the first token, with the step batch sizes) and
``engine.decode`` (decode steps to the last token). Stages are recorded once the request ends, with
their real start and end times, so tracing adds nothing to the engine's step loop.

Our own ``TracerProvider`` rather than the process-global one: Ray and other libraries may set the
global provider, and tests install an in-memory exporter without touching process state.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("stackserve.tracing")

_TRACER: Any = None  # an opentelemetry Tracer when tracing is on
CURRENT_SPAN: contextvars.ContextVar[Any] = contextvars.ContextVar("stackserve_rpc_span", default=None)


def enabled() -> bool:
    return _TRACER is not None


def configure(exporter: str, otlp_endpoint: str | None = None, service_name: str = "stackserve") -> None:
    """Install the exporter named in config (``none`` | ``console`` | ``otlp``); once per process."""
    global _TRACER
    if exporter == "none":
        _TRACER = None
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise RuntimeError("tracing.exporter 'otlp' needs the otlp extra: pip install 'stackserve[otlp]'") from exc
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    else:
        raise ValueError(f"tracing.exporter must be none, console or otlp, got {exporter!r}")
    use_provider(provider)


def use_provider(provider: Any | None) -> None:
    """Trace through ``provider`` (tests: one with an in-memory exporter); None turns tracing off."""
    global _TRACER
    _TRACER = None if provider is None else provider.get_tracer("stackserve")


# ----- gateway side ------------------------------------------------------------------------------
def start_rpc_span(method: str, request_id: str) -> Any:
    """A server span for one RPC, made current for the handler (None when tracing is off)."""
    if _TRACER is None:
        return None
    from opentelemetry.trace import SpanKind

    span = _TRACER.start_span(method, kind=SpanKind.SERVER,
                              attributes={"rpc.system": "grpc", "rpc.method": method,
                                          "stackserve.request_id": request_id})
    CURRENT_SPAN.set(span)
    return span


def end_rpc_span(span: Any, code: str) -> None:
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.grpc.status_code", code)
    if code not in ("OK", "CANCELLED", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"):
        span.set_status(Status(StatusCode.ERROR, code))
    span.end()


def carrier() -> dict[str, str] | None:
    """The current RPC span's W3C trace context, to travel with a job into a deployment."""
    span = CURRENT_SPAN.get()
    if _TRACER is None or span is None:
        return None
    from opentelemetry.trace import set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    out: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(out, context=set_span_in_context(span))
    return out


# ----- engine side -------------------------------------------------------------------------------
def _ns(wall_s: float) -> int:
    return int(wall_s * 1e9)


def record_generation(trace_context: Mapping[str, str] | None, request_id: str, *, started_wall: float,
                      arrival_ts: float, scheduled_ts: float, token_ts: list[float], ended_wall: float,
                      prefill_batches: list[int], decode_batches: list[int], prompt_tokens: int,
                      finish_reason: str) -> None:
    """``llm.generate`` and its stage spans for one finished request, at their real times (wall clock)."""
    if _TRACER is None or trace_context is None:
        return
    from opentelemetry.trace import SpanKind, set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract(dict(trace_context))
    gen = _TRACER.start_span("llm.generate", context=parent, kind=SpanKind.INTERNAL, start_time=_ns(started_wall),
                             attributes={"stackserve.request_id": request_id, "llm.prompt_tokens": prompt_tokens,
                                         "llm.completion_tokens": len(token_ts), "llm.finish_reason": finish_reason})
    ctx = set_span_in_context(gen)
    first = token_ts[0] if token_ts else ended_wall
    if scheduled_ts:
        _TRACER.start_span("engine.queue", context=ctx, start_time=_ns(arrival_ts)).end(end_time=_ns(scheduled_ts))
        _TRACER.start_span("engine.prefill", context=ctx, start_time=_ns(scheduled_ts),
                           attributes={"engine.step_batch_sizes": prefill_batches[:256],
                                       "engine.steps": len(prefill_batches)}).end(end_time=_ns(first))
    if len(token_ts) > 1:
        _TRACER.start_span("engine.decode", context=ctx, start_time=_ns(first),
                           attributes={"engine.step_batch_sizes": decode_batches[:256],
                                       "engine.steps": len(decode_batches)}).end(end_time=_ns(token_ts[-1]))
    gen.end(end_time=_ns(ended_wall))
