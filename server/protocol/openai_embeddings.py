"""OpenAI's ``/v1/embeddings`` over the retrieval embedder (all-MiniLM-L6-v2, 384-d, unit vectors).

The vectors are the ones retrieval searches with, so a client can embed its own texts for the
same space (its own index, deduplication, clustering). Inputs are strings only: token-id inputs
are in some other model's vocabulary, and guessing would give wrong vectors silently. The
``openai`` Python client asks for ``encoding_format="base64"`` by default (little-endian float32,
as OpenAI sends); ``float`` gives JSON lists. ``dimensions`` other than the model's 384 is refused:
cutting a vector would change what it means.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from server.protocol.errors import clip, invalid, not_found

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
MAX_INPUTS = 256  # texts per request: one request is one batch of the embedder
MAX_INPUT_CHARS = 32_768  # per text; the model reads its first 256 tokens (as sentence-transformers)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = ""
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None

    def texts(self, dim: int) -> list[str]:
        """The texts to embed, or INVALID_ARGUMENT / NOT_FOUND naming the field."""
        if self.model and self.model != EMBEDDING_MODEL:
            raise not_found("model", f"unknown embedding model {clip(self.model)!r}; serving [{EMBEDDING_MODEL!r}]")
        if self.dimensions is not None and self.dimensions != dim:
            raise invalid("dimensions", f"this model's vectors have {dim} dimensions, got {self.dimensions}")
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts:
            raise invalid("input", "is empty")
        if len(texts) > MAX_INPUTS:
            raise invalid("input", f"at most {MAX_INPUTS} texts per request, got {len(texts)}")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise invalid("input", "token-id inputs are not supported (they would be another model's ids): "
                              "send text")
            if not t:
                raise invalid(f"input[{i}]", "is empty")
            if len(t) > MAX_INPUT_CHARS:
                raise invalid(f"input[{i}]", f"{len(t)} characters; at most {MAX_INPUT_CHARS}")
        return list(texts)  # type: ignore[arg-type]


def embedding_response(vectors: np.ndarray, encoding: str, prompt_tokens: int) -> dict[str, Any]:
    data = []
    for i, v in enumerate(np.asarray(vectors, dtype="<f4")):
        emb: Any = base64.b64encode(v.tobytes()).decode() if encoding == "base64" else v.tolist()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": EMBEDDING_MODEL,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
