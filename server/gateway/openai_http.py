"""The OpenAI-compatible HTTP API, served by the gateway beside gRPC, on the same event loop.

``/v1/chat/completions`` and ``/v1/completions`` (JSON, or Server-Sent Events with ``stream``),
``/v1/models``, and ``/v1/embeddings`` over the retrieval embedder
(server/protocol/openai_embeddings.py) when the server runs retrieval. A chat or completion request
is translated into our gRPC message (server/protocol/openai_api.py) and runs through the model's
``LLMService`` (chosen by ``model``, server/gateway/llm_router.py) exactly as a gRPC call does: the
same validation and limits, the same engine stream, the same ``stackserve_llm_*`` metrics (``rpc``
label ``chat.completions`` / ``completions``), the same access-log line with hashes instead of
text, and the same abort in the engine when the client goes away. Errors are OpenAI-shaped
(``{"error": {"message", "type", "param", "code"}}``) with the HTTP status of the gRPC code (400,
404, 429, 503, 504); a tenant's rate or token limit's 429 carries ``Retry-After`` (and
``retry-after-ms``, which the OpenAI clients read).

Why in the gateway rather than a Ray Serve ingress: the engine runs in the gateway's process on one
machine (``llm.placement``), and a second front door in another process would put a crossing back
on every token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from server.executors import RETRIEVAL, run_in
from server.gateway.http_calls import HttpCall, open_call
from server.gateway.llm_router import LLMRouter
from server.gateway.llm_service import endpoint_error_status
from server.llm.outputs import TokenLogprob
from server.llm.serving import EngineInfo, LLMJob
from server.protocol import errors
from server.protocol.errors import ServingError
from server.protocol.llm_validation import parse_chat, parse_generate
from server.protocol.openai_api import (
    ChatCompletionRequest,
    CompletionRequest,
    chat_logprobs,
    completion_logprobs,
    error_body,
    parse_body,
)
from server.protocol.openai_embeddings import EMBEDDING_MODEL, EmbeddingRequest, embedding_response
from server.protocol.tokenize_api import DetokenizeRequest, TokenizeRequest
from server.security.access_policy import AccessPolicy
from server.security.api_keys import key_from_headers
from server.security.shared_limits import RateLimited, ceil_seconds

if TYPE_CHECKING:
    from server.rag.retrieval_workload import RetrievalWorkload

class _NoDeadline:
    """What LLMRouter asks of a gRPC context, for an HTTP request: OpenAI clients send no deadline,
    so the engine gets ``llm.default_timeout_s``; a client that disconnects cancels the stream."""

    @staticmethod
    def time_remaining() -> float | None:
        return None


def _error(err: ServingError) -> JSONResponse:
    status, body = error_body(err)
    return JSONResponse(body, status_code=status)


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class OpenAIFrontend:
    """Builds the FastAPI app over one ``LLMRouter`` (chat and completions share ``_serve``)."""

    def __init__(
        self, llm: LLMRouter, rag: RetrievalWorkload | None = None, policy: AccessPolicy | None = None
    ) -> None:
        self.llm = llm
        self.rag = rag  # /v1/embeddings uses its retriever's embedder
        self.policy = policy if policy is not None and policy.enabled else None

    def app(self) -> FastAPI:
        app = FastAPI(title="stackserve", docs_url=None, redoc_url=None, openapi_url=None)
        app.add_api_route("/v1/models", self.models, methods=["GET"])
        app.add_api_route("/v1/chat/completions", self.chat, methods=["POST"])
        app.add_api_route("/v1/completions", self.completions, methods=["POST"])
        app.add_api_route("/v1/embeddings", self.embeddings, methods=["POST"])
        app.add_api_route("/tokenize", self.tokenize, methods=["POST"])
        app.add_api_route("/detokenize", self.detokenize, methods=["POST"])
        if self.policy is not None:
            app.middleware("http")(self._authorize)
        return app

    async def _authorize(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """The gRPC side's access policy for every route: embeddings are the retriever's, the rest
        the LLM's. A refusal is an OpenAI-shaped 401/403/429, logged and counted like any call."""
        service = "retriever" if request.url.path == "/v1/embeddings" else "llm"
        try:
            tenant = await self.policy.admit(key_from_headers(request.headers.items()), service)  # type: ignore[union-attr]
        except ServingError as err:
            call, headers = open_call(request, request.url.path)
            with call.scope():
                return self._refused(call, err, headers)
        request.state.tenant = tenant.name if tenant is not None else None
        request.state.budget = tenant.token_budget() if tenant is not None else None
        return await call_next(request)

    async def models(self) -> Response:
        infos = self.llm.infos()
        if not infos:
            return _error(errors.unavailable("the LLM is still loading; retry shortly"))
        # "root" as vLLM has it (its benchmark client reads it when no model is named)
        data = [{"id": info.model, "object": "model", "created": 0, "owned_by": "stackserve", "root": info.model,
                 "max_model_len": info.max_model_len} for info in infos]  # fmt: skip
        if self.rag is not None:
            data.append({"id": EMBEDDING_MODEL, "object": "model", "created": 0, "owned_by": "stackserve"})
        return JSONResponse({"object": "list", "data": data})

    async def embeddings(self, request: Request) -> Response:
        call, headers = open_call(request, "/v1/embeddings")
        with call.scope():
            try:
                req = parse_body(EmbeddingRequest, await _json_body(request))
                if self.rag is None:
                    raise errors.not_found("model", "this server has no embedding model (rag.enabled is false)")
                retriever = self.rag.retriever
                if retriever is None:
                    raise errors.unavailable("the embedder is still loading; retry shortly")
                embedder = retriever.embedder
                texts = req.texts(embedder.dim)
                vectors = await _embed(embedder, texts)
                tokens = sum(embedder.token_counts(texts))
            except ServingError as err:
                return self._refused(call, err, headers)
            call.done(200)
        return JSONResponse(embedding_response(vectors, req.encoding_format, tokens), headers=headers)

    async def tokenize(self, request: Request) -> Response:
        """The prompt's token ids as the model runs them (vLLM's and llama-server's ``/tokenize``)."""
        async def run(req: TokenizeRequest, endpoint: Any, info: EngineInfo) -> dict[str, Any]:
            ids = await endpoint.tokenize(req.job())
            return {"tokens": ids, "count": len(ids), "max_model_len": info.max_model_len}

        return await self._on_model(request, "/tokenize", TokenizeRequest, run)

    async def detokenize(self, request: Request) -> Response:
        """The text of token ids (vLLM's ``prompt``, llama-server's ``content``)."""
        async def run(req: DetokenizeRequest, endpoint: Any, info: EngineInfo) -> dict[str, Any]:
            text = await endpoint.detokenize(list(req.tokens))
            return {"prompt": text, "content": text}

        return await self._on_model(request, "/detokenize", DetokenizeRequest, run)

    async def _on_model(self, request: Request, path: str, schema: type,
                        run: Callable[[Any, Any, EngineInfo], Awaitable[dict[str, Any]]]) -> Response:
        """A unary call on the endpoint of the body's ``model``: parsed, run, answered as JSON; the
        endpoint's exceptions become the statuses a generation would get."""
        call, headers = open_call(request, path)
        with call.scope():
            try:
                req = parse_body(schema, await _json_body(request))
                service = self.llm.for_model(req.model)
                if service.info is None:
                    raise errors.unavailable("the LLM is still loading; retry shortly")
                try:
                    body = await run(req, service.endpoint, service.info)
                except ServingError:
                    raise
                except Exception as exc:
                    raise endpoint_error_status(exc) from None
            except ServingError as err:
                return self._refused(call, err, headers)
            call.done(200)
        return JSONResponse(body, headers=headers)

    async def chat(self, request: Request) -> Response:
        return await self._serve(request, "chat/completions", ChatCompletionRequest, parse_chat)

    async def completions(self, request: Request) -> Response:
        return await self._serve(request, "completions", CompletionRequest, parse_generate)

    async def _serve(self, request: Request, path: str, schema: type, parse: Callable[[Any, EngineInfo], LLMJob],
                     ) -> Response:
        call, headers = open_call(request, f"/v1/{path}")
        completion = path == "completions"
        with call.scope():
            try:
                req = parse_body(schema, await _json_body(request))
                jobs = [self.llm.job(parse, proto) for proto in req.choice_protos()]
                if call.budget is not None:  # before the first byte: a stream over budget is a 429 too
                    await call.budget.reserve(sum(job.params.max_tokens for job in jobs))
            except ServingError as err:
                return self._refused(call, err, headers)
            rpc = path.replace("/", ".")
            if req.stream:
                return StreamingResponse(self._events(call, jobs, rpc, req, completion),
                                         media_type="text/event-stream", headers=headers)
            try:
                results = await _all(self._collect(job, rpc) for job in jobs)
            except ServingError as err:
                return self._refused(call, err, headers)
            finally:
                call.release()
            call.done(200)
        choices = []
        for i, (text, finish, _, lps) in enumerate(results):
            logprobs = None
            if jobs[i].params.logprobs:
                logprobs = completion_logprobs(lps) if completion else chat_logprobs(lps)
            choice: dict[str, Any] = {"index": i, "finish_reason": finish, "logprobs": logprobs}
            if completion:
                choice["text"] = text
            else:
                choice["message"] = {"role": "assistant", "content": text}
            choices.append(choice)
        obj, prefix = ("text_completion", "cmpl") if completion else ("chat.completion", "chatcmpl")
        model = jobs[0].model or (self.llm.info.model if self.llm.info else "")
        usage = _usage(results[0][2][0], sum(r[2][1] for r in results))
        return JSONResponse({"id": f"{prefix}-{call.request_id}", "object": obj, "created": call.created,
                             "model": model, "choices": choices, "usage": usage}, headers=headers)

    @staticmethod
    def _refused(call: HttpCall, err: ServingError, headers: dict[str, str]) -> JSONResponse:
        response = _error(err)
        call.done(response.status_code)
        response.headers.update(headers)
        if isinstance(err, RateLimited):
            response.headers["retry-after"] = str(ceil_seconds(err.retry_after_s))
            response.headers["retry-after-ms"] = str(max(1, round(err.retry_after_s * 1000)))
        return response

    async def _collect(self, job: LLMJob, rpc: str) -> tuple[str, str, tuple[int, int], list[TokenLogprob]]:
        """One choice: its text, finish reason, (prompt, completion) token counts and log-probabilities."""
        texts: list[str] = []
        logprobs: list[TokenLogprob] = []
        finish, prompt_tokens, tokens = "stop", 0, 0
        async for piece, p in self.llm.stream(job, rpc, _NoDeadline()):
            texts.append(piece.text)
            logprobs.extend(piece.logprobs or ())
            tokens = p.tokens
            if piece.finish_reason is not None:
                finish, prompt_tokens = str(piece.finish_reason), piece.prompt_tokens
        return "".join(texts), finish, (prompt_tokens, tokens), logprobs

    async def _events(self, call: HttpCall, jobs: list[LLMJob], rpc: str, req: Any,
                      completion: bool) -> AsyncIterator[bytes]:
        """SSE chunks of every choice as they come, each with its index; usage (if asked) after the
        last choice ends. An error after the first byte can only travel as an event (the status is sent)."""
        model = jobs[0].model or (self.llm.info.model if self.llm.info else "")
        obj, prefix = ("text_completion", "cmpl") if completion else ("chat.completion.chunk", "chatcmpl")
        head = {"id": f"{prefix}-{call.request_id}", "object": obj, "created": call.created, "model": model}

        offsets = [0] * len(jobs)  # completions' text_offset continues across a choice's chunks

        def chunk(index: int, text: str | None, finish: str | None, first: bool = False,
                  lps: list[TokenLogprob] | None = None) -> bytes:
            logprobs = None
            if lps is not None and jobs[index].params.logprobs:
                logprobs = completion_logprobs(lps, offsets[index]) if completion else chat_logprobs(lps)
                offsets[index] += sum(len(t) for t in logprobs["tokens"]) if completion else 0
            if completion:
                c: dict[str, Any] = {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
            else:
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
                if text:
                    delta["content"] = text
                c = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            return _sse({**head, "choices": [c]})

        status = 200
        with call.scope():
            try:
                # a chat choice's role travels with its first text, after prefill (as vLLM sends it): a
                # role chunk sent before would time the first chunk at ~0 ms for clients that measure TTFT
                opened = [completion] * len(jobs)
                prompt_tokens, tokens = 0, [0] * len(jobs)
                async for i, piece, p in _merged([self.llm.stream(job, rpc, _NoDeadline()) for job in jobs]):
                    finish = str(piece.finish_reason) if piece.finish_reason is not None else None
                    if piece.text or finish or piece.logprobs:
                        yield chunk(i, piece.text, finish, first=not opened[i], lps=piece.logprobs or [])
                        opened[i] = True
                    tokens[i] = p.tokens
                    prompt_tokens = piece.prompt_tokens or prompt_tokens
                if req.include_usage():
                    yield _sse({**head, "choices": [], "usage": _usage(prompt_tokens, sum(tokens))})
                yield b"data: [DONE]\n\n"
            except ServingError as err:
                status, body = error_body(err)
                yield _sse(body)
            finally:
                call.release()
                call.done(status)


async def _all(coros: Any) -> list[Any]:
    """Every choice's result; the first failure cancels the others (their engine requests abort)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            t.cancel()


async def _merged(streams: list[AsyncIterator[Any]]) -> AsyncIterator[tuple[Any, ...]]:
    """(choice index, *item) from several streams, as they arrive. One stream: no task, no queue.
    Leaving early (a client that went away, an error) closes every stream: their requests abort."""
    if len(streams) == 1:
        async for item in streams[0]:
            yield (0, *item)
        return
    queue: asyncio.Queue[tuple[int, Any, BaseException | None]] = asyncio.Queue()
    done = object()

    async def pump(i: int, stream: AsyncIterator[Any]) -> None:
        try:
            async for item in stream:
                await queue.put((i, item, None))
            await queue.put((i, done, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            await queue.put((i, done, exc))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        open_streams = len(streams)
        while open_streams:
            i, item, exc = await queue.get()
            if exc is not None:
                raise exc
            if item is done:
                open_streams -= 1
                continue
            yield (i, *item)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise errors.invalid("body", "is not valid JSON") from None


async def _embed(embedder: Any, texts: list[str]) -> Any:
    """The vectors without blocking the loop: a Ray-served embedder has ``aencode``; one in this
    process runs in a worker thread."""
    aencode = getattr(embedder, "aencode", None)
    if aencode is not None:
        return await aencode(texts)
    return await run_in(RETRIEVAL, embedder.encode, texts)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class _Server(uvicorn.Server):
    """uvicorn inside the gateway's loop: the process's signal handlers stay the CLI's (uvicorn would
    replace them with its own while it serves, and a SIGTERM would stop only the HTTP side)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before uvicorn starts, so port 0 resolves to a known port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio's own loop turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and accepted sockets inherit it. With proto 0 every kept-alive request waited
    # for the client's delayed ACK: 44 ms per request instead of 1.8 ms (uvloop sets it regardless)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve_openai(llm: LLMRouter, host: str, port: int, rag: RetrievalWorkload | None = None,
                 policy: AccessPolicy | None = None, tls_options: dict[str, Any] | None = None,
                 ) -> tuple[_Server, socket.socket]:
    """The server (start it with ``server.serve(sockets=[sock])``) and its bound socket.
    ``policy``: API keys as on the gRPC side; ``tls_options``: uvicorn's ssl_* arguments."""
    config = uvicorn.Config(OpenAIFrontend(llm, rag, policy).app(), log_level="warning", access_log=False,
                            lifespan="off", **(tls_options or {}))
    return _Server(config), bind(host, port)
