"""The packaged models (``llm.model``, ``llm.also_serve``) and loading any served architecture.

Its own module because it joins the two architectures' loaders (server/llm/gguf_weights.py for
Llama, server/llm/gemma3.py for Gemma 3), which must not import each other.
"""

from __future__ import annotations

from pathlib import Path

from server.llm.gemma3 import Gemma3Weights, default_gemma3_path, load_gemma3
from server.llm.gguf_weights import LlamaWeights, _field, default_gguf_path, load_weights, open_reader

#: The models whose GGUF ships inside an installed package, default first.
MODELS = ("smollm2-135m", "gemma3-270m")
ModelWeights = LlamaWeights | Gemma3Weights


def model_gguf_path(name: str) -> Path:
    """The GGUF of a packaged model: ``smollm2-135m`` (Llama, Q4_1) or ``gemma3-270m`` (Q4_K_M)."""
    if name == "smollm2-135m":
        return default_gguf_path()
    if name == "gemma3-270m":
        return default_gemma3_path()
    raise ValueError(f"unknown model {name!r}; packaged models: {', '.join(MODELS)}")


def gguf_architecture(path: str | Path) -> str:
    return str(_field(open_reader(str(path)), "general.architecture"))


def load_model_weights(path: str | Path | None = None) -> ModelWeights:
    """The weights of any architecture we serve, by the file's ``general.architecture``:
    ``LlamaWeights`` (llama) or ``Gemma3Weights`` (gemma3)."""
    path = Path(path) if path else default_gguf_path()
    if not path.exists():
        raise FileNotFoundError(f"GGUF file {path} does not exist")
    if gguf_architecture(path) == "gemma3":
        return load_gemma3(path)
    return load_weights(path)
