"""RetrieverService over a real gRPC server on 127.0.0.1 (in this process, no Ray): streamed ingest,
search with filters, field-level errors, and an ingest that fails whole leaves the store as it was."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from server.client import AsyncRetrieverClient
from server.config import load_settings
from server.gateway.server import start_gateway
from server.gen.stackserve.v1 import retriever_pb2 as rpb
from server.placement import local_anomaly_endpoint
from server.rag.retrieval_workload import RetrievalWorkload

pytestmark = pytest.mark.integration

DOCS = [
    rpb.Document(source="garden.md", format="md", tags=["home"], text=(
        "# Gardening\n\nTomatoes need full sun and deep watering. Prune the suckers every week in summer.\n\n"
        "## Pests\n\nAphids gather under leaves; spray them with soapy water. Mail grower@farm.example for help.\n")),
    rpb.Document(source="boats.html", format="html", tags=["sea"], text=(
        "<h1>Sailing</h1><p>A sloop has one mast. Reef the mainsail when the wind rises above twenty knots.</p>"
        "<h2>Knots</h2><p>The bowline makes a fixed loop at the end of a line.</p>")),
    rpb.Document(source="notes.txt", text="The kettle whistles at one hundred degrees. Card 4111 1111 1111 1111."),
]


def test_ingest_search_filters_and_errors(trained, settings, tmp_path):
    cfg = load_settings(None, data_dir=str(settings.data_dir), gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
                        rag={"store_dir": str(tmp_path / "rag"), "chunk_min_tokens": 5, "chunk_max_tokens": 60})

    async def main():
        gw = await start_gateway(cfg, local_anomaly_endpoint(cfg), None, RetrievalWorkload(cfg))
        try:
            await gw.wait_ready(120)
            async with AsyncRetrieverClient(f"127.0.0.1:{gw.port}") as c:
                assert await c.health() == "SERVING"
                with pytest.raises(grpc.aio.AioRpcError) as empty:
                    await c.search("knots")
                assert empty.value.code() == grpc.StatusCode.FAILED_PRECONDITION

                report = await c.ingest(DOCS)
                assert (report.documents, report.new) == (3, 3)
                assert dict(report.pii_redacted) == {"email": 1, "card": 1} and report.index == "flat"

                r = await c.search("which knot makes a fixed loop?", k=2)
                assert r.hits[0].chunk.source == "boats.html" and "bowline" in r.hits[0].chunk.text
                assert r.hits[0].score > r.hits[-1].score or len(r.hits) == 1
                assert r.embed_ms > 0 and r.search_ms >= 0
                home = await c.search("which knot makes a fixed loop?", k=5, equals={"tag": "home"})
                assert home.hits and {h.chunk.source for h in home.hits} == {"garden.md"}
                both = await c.search("water", k=5, any_of={"source": ["notes.txt", "garden.md"]})
                assert {h.chunk.source for h in both.hits} <= {"notes.txt", "garden.md"}
                none = await c.search("water", k=5, ranges={"ingested_at": (None, 1.0)})
                assert list(none.hits) == []
                texts = " ".join(h.chunk.text for h in (await c.search("help card", k=10)).hits)
                assert "grower@farm.example" not in texts and "4111" not in texts

                for kwargs, field in (({"equals": {"author": "me"}}, "filter.equals"), ({"k": 500}, "k")):
                    with pytest.raises(grpc.aio.AioRpcError) as bad:
                        await c.search("x", **kwargs)
                    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in bad.value.details()
                with pytest.raises(grpc.aio.AioRpcError) as bad:
                    await c.search("   ")
                assert "query" in bad.value.details()

                before = (await c.search("kettle", k=1)).hits[0].chunk.text
                broken = [rpb.Document(source="new.txt", text="Fresh text about owls."),
                          rpb.Document(source="bad.doc", text="x", format="docx")]
                with pytest.raises(grpc.aio.AioRpcError) as bad:
                    await c.ingest(broken)
                assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "documents[1].format" in bad.value.details()
                owls = await c.search("owls", k=5)
                assert all(h.chunk.source != "new.txt" for h in owls.hits)  # nothing of the failed ingest
                assert (await c.search("kettle", k=1)).hits[0].chunk.text == before
                with pytest.raises(grpc.aio.AioRpcError) as dup:
                    await c.ingest([DOCS[2], DOCS[2]])
                assert "appears twice" in dup.value.details()
        finally:
            await gw.stop()

    asyncio.run(main())


def test_on_ray_ingest_and_search_embed_in_the_embedder_deployment(server):
    """The session server runs on Ray: its gateway holds no embedding model, so chunking (token
    counts aside), ingestion and every search embed through the Embedder deployment's batches."""
    from server.client import RetrieverClient

    tag = "ray-embedder-test"
    docs = [rpb.Document(source="ray-embedder/owls.md", format="md", tags=[tag], text=(
                "# Owls\n\nOwls hunt at night. Their soft feathers make their flight silent.\n")),
            rpb.Document(source="ray-embedder/bees.md", format="md", tags=[tag], text=(
                "# Bees\n\nBees make honey from nectar and dance to show where the flowers are.\n"))]
    with RetrieverClient(server.address) as c:
        report = c.ingest(docs)
        assert report.chunks_embedded >= 2
        r = c.search("why is an owl's flight silent?", k=2, equals={"tag": tag})
        assert r.hits[0].chunk.source == "ray-embedder/owls.md"
        assert r.embed_ms > 0
        # concurrent searches share the deployment's batches and each still gets its own answer
        from concurrent.futures import ThreadPoolExecutor

        questions = ["which insect makes honey?", "what hunts at night?"] * 4
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda q: c.search(q, k=1, equals={"tag": tag}), questions))
        assert [x.hits[0].chunk.source for x in results] == ["ray-embedder/bees.md", "ray-embedder/owls.md"] * 4
    assert "Embedder application failed" not in server.log()
