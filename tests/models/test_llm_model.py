"""Our PyTorch forward and tokenizer against transformers on the same GGUF (logits within 1e-3, same greedy output)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from server.llm.backends import fp32_linear
from server.llm.kv_cache import PagedKVCache
from server.llm.llama import LlamaModel, PrefillSegment, StepBatch
from tests.support.llm_fixtures import PROMPTS, hf_model, tokenizer, weights

LLAMA_CPP_IDS = Path(__file__).resolve().parents[1] / "data" / "llama_cpp_token_ids.json"


@pytest.fixture(scope="module")
def model() -> LlamaModel:
    return LlamaModel(weights(), fp32_linear)


def new_cache(slots: int = 2, max_len: int = 256) -> PagedKVCache:
    c = weights().config
    return PagedKVCache.with_slots(c.n_layers, slots, c.n_kv_heads, max_len, c.head_dim)


def prefill(model, cache, ids, slot, start=0, all_rows=True):
    n = len(ids)
    rows = torch.arange(n) if all_rows else torch.tensor([n - 1])
    batch = StepBatch(
        torch.tensor(ids), torch.arange(start, start + n), torch.empty(0, dtype=torch.long), [],
        [PrefillSegment(slot, start, n, 0)], rows,
    )
    return model.forward(batch, cache)


def decode(model, cache, pairs):
    """pairs: (slot, token, position) per decoding sequence."""
    batch = StepBatch(
        torch.tensor([t for _, t, _ in pairs]),
        torch.tensor([p for _, _, p in pairs]),
        torch.tensor([s for s, _, _ in pairs]),
        [p + 1 for _, _, p in pairs],
        [],
        torch.arange(len(pairs)),
    )
    return model.forward(batch, cache)


@pytest.mark.slow
@pytest.mark.parametrize("prompt", PROMPTS)
def test_tokenizer_matches_transformers(prompt):
    """transformers' GGUF converter drops SmolLM's digit splitting, so compare digit-free text."""
    transformers = pytest.importorskip("transformers")
    path = weights().path
    ref = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for text in (prompt, prompt + " — ünïcödé 日本語 🙂 <|im_end|>"):
        assert tokenizer().encode(text) == ref.encode(text, add_special_tokens=False)
        assert tokenizer().decode(tokenizer().encode(text), skip_special=False) == text


def test_digits_are_split_one_by_one_like_llama_cpp():
    # ids from llama.cpp's tokenizer ("smollm" pre-tokenizer) on the same GGUF
    assert tokenizer().encode("Hello   42") == [19556, 333, 36, 34]
    assert tokenizer().encode("x = 3.14159 + 2024")[:10] == [104, 446, 216, 35, 30, 33, 36, 33, 37, 41]


def test_tokenizer_matches_llama_cpp_ids_recorded_from_it():
    """llama.cpp's own ids for 20 hard texts, recorded by bench/peers/llama_cpp_token_ids.py (llama.cpp
    compiles for minutes, so CI reads the record); a GGUF other than the one recorded is a stale record."""
    record = json.loads(LLAMA_CPP_IDS.read_text())
    assert record["gguf_sha256"] == hashlib.sha256(weights().path.read_bytes()).hexdigest(), (
        "tests/data/llama_cpp_token_ids.json was recorded on another GGUF: "
        "rerun python -m bench.peers.llama_cpp_token_ids")
    assert len(record["cases"]) >= 20
    for case in record["cases"]:
        assert tokenizer().encode(case["text"]) == case["ids"], case["text"]


@pytest.mark.slow
def test_chat_template_matches_transformers():
    transformers = pytest.importorskip("transformers")
    path = weights().path
    ref = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    ours = tokenizer().apply_chat_template(msgs)
    assert ours == ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


@pytest.mark.slow
@pytest.mark.parametrize("prompt", PROMPTS)
def test_fp32_logits_match_transformers(model, prompt):
    ids = tokenizer().encode(prompt)
    ours = prefill(model, new_cache(), ids, 0)
    with torch.no_grad():
        ref = hf_model()(torch.tensor([ids])).logits[0]
    assert (ours - ref).abs().max().item() <= 1e-3


@pytest.mark.slow
def test_greedy_64_tokens_identical_to_transformers(model):
    ids = tokenizer().encode("Here is a long story about a robot who learns to paint:")
    cache = new_cache()
    logits = prefill(model, cache, ids, 0, all_rows=False)
    out, pos = [], len(ids)
    for _ in range(64):
        tok = int(logits[-1].argmax())
        out.append(tok)
        logits = decode(model, cache, [(0, tok, pos)])
        pos += 1
    with torch.no_grad():
        ref = hf_model().generate(
            torch.tensor([ids]), max_new_tokens=64, do_sample=False, eos_token_id=None, pad_token_id=0
        )[0, len(ids) :].tolist()
    assert out == ref


def test_chunked_prefill_and_batched_decode_match_one_shot(model):
    """Chunks at any boundary, and decoding beside another sequence, give the same logits."""
    ids = tokenizer().encode(PROMPTS[2])
    whole = prefill(model, new_cache(), ids, 0)
    cache = new_cache()
    parts = []
    for start in range(0, len(ids), 5):
        parts.append(prefill(model, cache, ids[start : start + 5], 1, start=start))
    assert (torch.cat(parts) - whole).abs().max().item() <= 1e-4

    other = tokenizer().encode(PROMPTS[0])
    prefill(model, cache, other, 0)
    nxt = int(whole[-1].argmax())
    both = decode(model, cache, [(0, 7, len(other)), (1, nxt, len(ids))])
    solo_cache = new_cache()
    prefill(model, solo_cache, ids, 1)
    solo = decode(model, solo_cache, [(1, nxt, len(ids))])
    assert (both[1] - solo[0]).abs().max().item() <= 1e-4
