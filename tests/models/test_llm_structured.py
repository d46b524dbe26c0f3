"""Structured output: whatever the schema and the sampling, the output parses and validates.

The property test draws JSON Schemas (objects of strings, bounded integers, booleans, enums, short
arrays, nested objects) and samples from the real model at temperature 1 with a fresh seed per
example: an unconstrained 135M model almost never writes valid JSON for a made-up schema, so a
pass here is the grammar's doing.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.llm.engine import LLMEngine
from server.llm.errors import LLMRequestError
from server.llm.params import SamplingParams
from server.llm.structured import check_format
from tests.support.hypothesis_profiles import examples
from tests.support.llm_fixtures import engine_config, weights

PROMPT = "Fill in this record as JSON:"


@pytest.fixture(scope="module")
def engine():
    eng = LLMEngine(engine_config(backend="cpu-int4" if _int4() else "torch-fp32", max_model_len=512),
                    weights=weights()).start()
    yield eng
    eng.shutdown()


def _int4() -> bool:
    try:
        from kernels import llm_step  # type: ignore[attr-defined]

        return bool(llm_step.available())
    except ImportError:
        return False


def _run(engine, params: SamplingParams) -> tuple[str, str]:
    chunks = engine.generate_blocking(PROMPT, params, timeout_s=120)
    return "".join(c.text for c in chunks), str(chunks[-1].finish_reason)


leaf = st.one_of(
    st.just({"type": "boolean"}),
    st.integers(-50, 50).flatmap(lambda lo: st.integers(lo, lo + 100).map(
        lambda hi: {"type": "integer", "minimum": lo, "maximum": hi})),
    st.integers(1, 8).map(lambda n: {"type": "string", "maxLength": n}),
    st.lists(st.text("abcxyz", min_size=1, max_size=5), min_size=1, max_size=4, unique=True).map(
        lambda vs: {"enum": vs}),
)
names = st.text("abcdefghij", min_size=1, max_size=6)


def objects(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.dictionaries(names, children, min_size=1, max_size=3).map(
        lambda props: {"type": "object", "properties": props, "required": sorted(props),
                       "additionalProperties": False})


def _top_level_object(schema: dict) -> dict:
    """Response formats describe objects (OpenAI's rule): a leaf or array becomes one property."""
    if schema.get("type") == "object":
        return schema
    return {"type": "object", "properties": {"value": schema}, "required": ["value"], "additionalProperties": False}


schemas = st.recursive(
    leaf, lambda inner: st.one_of(objects(inner), inner.map(lambda s: {"type": "array", "items": s, "maxItems": 3})),
    max_leaves=5,
).map(_top_level_object)


@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=schemas, seed=st.integers(0, 2**31))
def test_sampled_output_always_parses_and_validates(engine, schema, seed):
    params = SamplingParams(max_tokens=300, temperature=1.0, seed=seed, response_format="json_schema",
                            json_schema=json.dumps(schema))
    text, finish = _run(engine, params)
    assert finish == "stop", f"cut by max_tokens: {text!r}"
    jsonschema.validate(json.loads(text), schema)


def test_json_object_mode_writes_compact_json(engine):
    """Any object is allowed, so a small model may nest or repeat until max_tokens: the guarantee is
    that a finished answer parses and that the layout is compact (no runaway whitespace)."""
    for temperature in (0.0, 1.0):
        text, finish = _run(engine, SamplingParams(max_tokens=120, temperature=temperature, seed=1,
                                                   response_format="json_object"))
        assert text.startswith("{") and "\n" not in text and "  " not in text
        if finish == "stop":
            assert isinstance(json.loads(text), dict)


def test_the_mask_leaves_only_grammar_tokens(engine):
    """At the start of a JSON object only tokens that can begin one survive, whatever the logits."""
    m = engine.structured.matcher("json_object", "")
    logits = torch.zeros(engine.model_config.vocab_size)
    allowed = torch.isfinite(m.mask(logits)).nonzero().flatten().tolist()
    assert allowed and all(engine.tokenizer.decode([t]).lstrip().startswith("{") for t in allowed)
    assert torch.equal(logits, torch.zeros_like(logits))  # the batch's logits are not touched


@pytest.mark.parametrize(("fmt", "schema", "words"), [
    ("yaml", "", "must be one of"),
    ("json_schema", "", "needs a schema"),
    ("json_schema", "{not json", "not valid JSON"),
    ("json_schema", "[1, 2]", "JSON object"),
    ("json_schema", '{"type": "nonsense"}', "cannot be enforced"),
    ("", '{"type": "object"}', "not 'json_schema'"),
])
def test_bad_formats_are_refused_at_the_door(fmt, schema, words):
    assert words in (check_format(fmt, schema) or "")
    with pytest.raises(LLMRequestError) as err:
        SamplingParams(response_format=fmt, json_schema=schema).validate()
    assert err.value.field == "response_format"


def test_ignore_eos_cannot_combine_with_a_format():
    with pytest.raises(LLMRequestError) as err:
        SamplingParams(response_format="json_object", ignore_eos=True).validate()
    assert err.value.field == "ignore_eos"
