"""One OpenAI-API HTTP request's bookkeeping: its request id, the access-log fields and token
budget its handlers see (contextvars, as on the gRPC side), the log line and the counter, with the
path as a bounded label (a served route or ``other``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from fastapi import Request

from server.gateway.request_context import ACCESS_FIELDS, MAX_REQUEST_ID_LEN, REQUEST_ID, new_request_id
from server.observability.logs import access_log
from server.observability.metrics import HTTP_REQUESTS
from server.security.shared_limits import TOKEN_BUDGET, TokenBudget

#: The routes this API serves: the only values the path takes as a metric label or log field.
ROUTES = frozenset({"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize",
                    "/detokenize"})
OTHER_ROUTE = "other"


def route_label(path: str) -> str:
    """A refused request to a path we do not serve (a scanner probing URLs) is counted as ``other``:
    one series per probed URL would grow Prometheus' memory without bound."""
    return path if path in ROUTES else OTHER_ROUTE


class HttpCall:
    """One HTTP request's bookkeeping: request id, access-log fields, the log line and the counter."""

    budget: TokenBudget | None = None  # the tenant's LLM token budget, claimed by this call's generations

    def __init__(self, path: str, request_id: str, tenant: str | None = None) -> None:
        self.path = route_label(path)
        self.request_id = request_id
        self.tenant = tenant
        self.started = time.perf_counter()
        self.created = int(time.time())

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        # a dict, not None: the tasks of n > 1 choices copy this context and must fill the same fields
        tokens = REQUEST_ID.set(self.request_id), ACCESS_FIELDS.set({"tenant": self.tenant} if self.tenant else {})
        budget = TOKEN_BUDGET.set(self.budget)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):
                REQUEST_ID.reset(tokens[0])
            with contextlib.suppress(ValueError):
                ACCESS_FIELDS.reset(tokens[1])
            with contextlib.suppress(ValueError):
                TOKEN_BUDGET.reset(budget)

    def release(self) -> None:
        """The call is over: the tokens it reserved and did not use go back to the tenant's budget."""
        if self.budget is not None:
            self.budget.release()

    def done(self, status: int) -> None:
        HTTP_REQUESTS.labels(self.path, str(status)).inc()
        access_log(f"POST {self.path}", str(status), self.started, self.request_id, ACCESS_FIELDS.get())


def open_call(request: Request, path: str) -> tuple[HttpCall, dict[str, str]]:
    """The call's record (the client's x-request-id when sane, else a new one) and the response
    headers that echo its id."""
    rid = request.headers.get("x-request-id", "")
    tenant = getattr(request.state, "tenant", None)  # set by the access policy, when on
    call = HttpCall(path, rid if 0 < len(rid) <= MAX_REQUEST_ID_LEN else new_request_id(), tenant)
    call.budget = getattr(request.state, "budget", None)
    return call, {"x-request-id": call.request_id}
