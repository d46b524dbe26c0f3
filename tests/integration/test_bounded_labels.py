"""A scanner probing URLs and method names must not grow the metrics: with API keys on, every
refused request is counted and logged, so a label taken from the request's path would make one
Prometheus series per probe. A real gateway in this process, 10,000 random HTTP paths and 10,000
random gRPC methods, the series counted from the registry Prometheus scrapes."""

from __future__ import annotations

import json
import os
import random
import string
import time

import grpc
import httpx
import pytest
from prometheus_client import REGISTRY

from server.config import load_settings
from server.gateway.http_calls import OTHER_ROUTE, ROUTES
from server.gateway.openai_http import OpenAIFrontend
from server.observability.logs import ACCESS
from server.security.api_keys import key_digest, new_key
from tests.support.in_process_gateway import Gateway
from tests.support.llm_fixtures import LLM_TEST_CONFIG

pytestmark = pytest.mark.integration
PROBES = int(os.environ.get("STACKSERVE_LABEL_PROBES", "10000"))


def _series(metric: str) -> set[tuple]:
    return {
        tuple(sorted(s.labels.items()))
        for family in REGISTRY.collect()
        if family.name == metric.removesuffix("_total")
        for s in family.samples
        if s.name == metric
    }


def _random_path(rng: random.Random) -> str:
    parts = ["".join(rng.choices(string.ascii_letters + string.digits + "-_.%", k=rng.randint(1, 12)))
             for _ in range(rng.randint(1, 4))]
    return "/" + "/".join(parts)


@pytest.fixture(scope="module")
def keyed(trained, settings, tmp_path_factory, shared_llm):
    key = new_key()
    log = tmp_path_factory.mktemp("logs") / "access.log"
    cfg = load_settings(
        None, data_dir=str(settings.data_dir),
        gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
        llm=LLM_TEST_CONFIG, rag={"enabled": False},
        security={"tenants": [{"name": "alpha", "key_sha256": [key_digest(key)]}], "access_log_file": str(log)},
    )
    g = Gateway(cfg, shared_llm)
    yield g, key, log
    g.close()


def test_the_label_set_is_the_served_routes():
    """``ROUTES`` is what the label may take: it must name every route the app serves."""
    app = OpenAIFrontend(llm=None).app()  # type: ignore[arg-type]
    served = {r.path for r in app.routes}
    assert served == ROUTES


def test_probed_http_paths_add_no_series(keyed):
    g, key, log = keyed
    rng = random.Random(7)
    with httpx.Client(base_url=f"http://127.0.0.1:{g.gw.openai_port}", timeout=10) as http:
        for _ in range(20):  # the refusal's series exists before we count
            http.post(_random_path(rng))
        before = _series("stackserve_http_requests_total")
        codes = set()
        t0 = time.perf_counter()
        for i in range(PROBES):
            headers = {"authorization": f"Bearer {key}"} if i % 2 else {}
            codes.add(http.request("POST" if i % 3 else "GET", _random_path(rng), headers=headers).status_code)
        print(f"{PROBES} HTTP probes in {time.perf_counter() - t0:.1f} s")
    after = _series("stackserve_http_requests_total")
    assert after == before, f"{len(after - before)} new series, e.g. {sorted(after - before)[:3]}"
    assert {dict(s)["path"] for s in after} <= ROUTES | {OTHER_ROUTE}
    assert codes <= {401, 404, 405}, codes
    ACCESS.sync()
    paths = {json.loads(line)["method"] for line in log.read_text().splitlines() if line.strip()}
    assert all(p.split(" ", 1)[1] in ROUTES | {OTHER_ROUTE} for p in paths if " " in p), paths


def test_probed_grpc_methods_add_no_series(keyed):
    g, key, _ = keyed
    rng = random.Random(11)
    metrics = ("stackserve_grpc_requests_total",)
    with grpc.insecure_channel(f"127.0.0.1:{g.gw.port}") as channel:
        def probe() -> grpc.StatusCode:
            method = f"/{_random_path(rng)[1:].replace('/', '.')}/{rng.choice(string.ascii_letters)}x"
            call = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
            try:
                call(b"", metadata=(("authorization", f"Bearer {key}"),), timeout=10)
            except grpc.RpcError as err:
                return err.code()
            raise AssertionError(f"{method} answered")

        for _ in range(20):
            probe()
        before = {m: _series(m) for m in metrics}
        codes = {probe() for _ in range(PROBES)}
    assert codes == {grpc.StatusCode.UNIMPLEMENTED}
    for m in metrics:
        assert _series(m) == before[m], m
