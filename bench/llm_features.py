"""What the LLM features cost or save, each against the plain path in the same process and run.

* prefix caching: time to first token of a prompt whose 1,024-token prefix is stored, against the
  same prompt cold (prefix cache off), interleaved rounds, medians; target >= 5x; outputs compared.
* structured output: single-stream decode tokens/s with a JSON Schema enforced, against free text
  of the same length (``ignore_eos``), i.e. what the grammar mask costs per token.
* speculative decoding (n-gram prompt lookup): single-stream greedy decode tokens/s (first token
  and prefill excluded) with it on and off, on prompts whose answer quotes their context (code
  edit, verbatim repeat, extraction from a passage) and on free-text prompts; outputs compared.
* AMX: prefill tokens/s of a 256-token chunk with the AMX tiles and with the VNNI kernels only
  (where the CPU has AMX).

    python -m bench.llm_features [--rounds N] [--backend cpu-int4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from rich.console import Console

from bench.report import machine_line, markdown_table, write_json, write_text

console = Console(stderr=True)
PREFIX_TOKENS = 1024
SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 40}, "tags": {"type": "array", "items": {"type": "string",
                                                                                  "maxLength": 16}},
    "score": {"type": "integer", "minimum": 0, "maximum": 1000}}, "required": ["name", "tags", "score"]}


def _ttft(engine, prompt: str, params) -> tuple[float, str]:
    chunks = engine.generate_blocking(prompt, params)
    return chunks[0].token_ts[0] - chunks[0].arrival_ts, "".join(c.text for c in chunks)


def prefix_caching(backend: str, rounds: int) -> dict:
    from server.config import LLMConfig
    from server.llm.engine import LLMEngine
    from server.llm.params import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=8)
    engines = {n: LLMEngine(LLMConfig(backend=backend, max_model_len=2048, prefix_cache_entries=n,
                                      speculative_tokens=0)).start()
               for n in (0, 4)}
    try:
        words = " ".join(f"Record {i}: value {i * 7 % 13}." for i in range(400))
        ids = engines[0].encode_prompt(words)[:PREFIX_TOKENS]
        prefix = engines[0].tokenizer.decode(ids)
        questions = [f" Question {r}: what is the value of record {r}?" for r in range(rounds)]
        _ttft(engines[4], prefix + " warm-up", params)  # stores the prefix
        cold, warm, same = [], [], True
        for q in questions:  # interleaved, so a slow phase of the machine hits both
            t_cold, a = _ttft(engines[0], prefix + q, params)
            t_warm, b = _ttft(engines[4], prefix + q, params)
            cold.append(t_cold)
            warm.append(t_warm)
            same &= a == b
    finally:
        for e in engines.values():
            e.shutdown()
    c, w = statistics.median(cold), statistics.median(warm)
    return {"prefix_tokens": PREFIX_TOKENS, "cold_ttft_ms": c * 1e3, "cached_ttft_ms": w * 1e3, "speedup": c / w,
            "identical_outputs": same, "cold_runs_ms": [x * 1e3 for x in cold],
            "cached_runs_ms": [x * 1e3 for x in warm]}


def structured_cost(backend: str, rounds: int) -> dict:
    from server.config import LLMConfig
    from server.llm.engine import LLMEngine
    from server.llm.params import SamplingParams

    engine = LLMEngine(LLMConfig(backend=backend, max_model_len=1024, speculative_tokens=0)).start()
    try:
        prompt = engine.chat_prompt([{"role": "user", "content": "Describe a fictional user as JSON."}])
        constrained = SamplingParams(temperature=1.0, seed=0, max_tokens=256, response_format="json_schema",
                                     json_schema=json.dumps(SCHEMA))
        engine.generate_blocking(prompt, constrained)  # warm-up: builds the grammar tokenizer
        free_rates, json_rates = [], []
        for r in range(rounds):
            chunks = engine.generate_blocking(prompt, SamplingParams(**{**_kw(constrained), "seed": r}))
            n = len(chunks)
            json_rates.append(_decode_rate(chunks))
            free = engine.generate_blocking(prompt, SamplingParams(temperature=1.0, seed=r, max_tokens=n,
                                                                   ignore_eos=True))
            free_rates.append(_decode_rate(free))
    finally:
        engine.shutdown()
    f, j = statistics.median(free_rates), statistics.median(json_rates)
    return {"free_tok_s": f, "json_schema_tok_s": j, "ratio": j / f, "per_token_overhead_ms": 1e3 / j - 1e3 / f}


CODE = """def load_config(path):
    with open(path) as f:
        data = json.load(f)
    if "name" not in data:
        raise ValueError("config needs a name")
    size = int(data.get("size", 0))
    return Config(name=data["name"], size=size, tags=list(data.get("tags", [])))
"""
PASSAGE = ("The Shuttle dataset has 49,097 rows and 9 numeric features. About 7% of the rows are anomalies. "
           "Each row describes one reading of the radiator subsystem of a space shuttle, and the label says "
           "whether the reading came from a normal or an abnormal state.")
QUOTING = [
    "Rename the function load_config to read_config and print the whole code:\n" + CODE,
    "Repeat the following passage word for word:\n" + PASSAGE,
    "Add a docstring to this function and print the whole function:\n" + CODE,
]
FREE = ["Write a short story about a lighthouse keeper.", "Explain how a bicycle works.",
        "Give three tips for learning a new language."]


def speculative(backend: str, rounds: int) -> dict:
    from server.config import LLMConfig
    from server.llm.engine import LLMEngine
    from server.llm.params import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=128)
    off = LLMEngine(LLMConfig(backend=backend, speculative_tokens=0, prefix_cache_entries=0)).start()
    on = LLMEngine(LLMConfig(backend=backend, prefix_cache_entries=0), weights=off.weights).start()
    out: dict = {"speculative_tokens": on.config.speculative_tokens}
    try:
        for kind, prompts in (("quoting", QUOTING), ("free_text", FREE)):
            rates: dict[str, list[float]] = {"off": [], "on": []}
            same = True
            d0, a0 = on.spec_drafted, on.spec_accepted
            for _ in range(rounds):
                for text in prompts:  # interleaved: a slow phase of the machine hits both
                    prompt = off.chat_prompt([{"role": "user", "content": text}])
                    a = off.generate_blocking(prompt, params)
                    b = on.generate_blocking(prompt, params)
                    rates["off"].append(_decode_rate(a))
                    rates["on"].append(_decode_rate(b))
                    same &= [t for c in a for t in c.token_ids] == [t for c in b for t in c.token_ids]
            f, s = statistics.median(rates["off"]), statistics.median(rates["on"])
            drafted, accepted = on.spec_drafted - d0, on.spec_accepted - a0
            out[kind] = {"off_tok_s": f, "on_tok_s": s, "speedup": s / f, "identical_outputs": same,
                         "acceptance": accepted / drafted if drafted else 0.0, "drafted": drafted}
    finally:
        on.shutdown()
        off.shutdown()
    return out


def amx_prefill(backend: str, rounds: int, tokens: int = 256) -> dict | None:
    import time

    import torch

    from kernels import llm_step
    from server.config import LLMConfig
    from server.llm.engine import LLMEngine
    from server.llm.llama import PrefillSegment, StepBatch

    if backend != "cpu-int4" or not llm_step.has_amx():
        return None
    engine = LLMEngine(LLMConfig(backend=backend, max_model_len=1024, prefix_cache_entries=0))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, engine.model_config.vocab_size, (tokens,), generator=g)
    batch = StepBatch(ids, torch.arange(tokens), torch.empty(0, dtype=torch.long), [],
                      [PrefillSegment(0, 0, tokens, 0)], torch.tensor([tokens - 1]))
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for use in (True, False):
            with llm_step.force_no_amx(not use):
                t0 = time.perf_counter()
                engine.forward(batch, engine.cache)
                rates[use].append(tokens / (time.perf_counter() - t0))
    a, v = statistics.median(rates[True]), statistics.median(rates[False])
    return {"tokens": tokens, "amx_tok_s": a, "vnni_tok_s": v, "speedup": a / v}


def _kw(params) -> dict:
    return {k: getattr(params, k) for k in params.__dataclass_fields__}


def _decode_rate(chunks) -> float:
    ts = [t for c in chunks for t in c.token_ts]
    return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", default="cpu-int4")
    args = ap.parse_args()
    console.print("prefix caching ...")
    pc = prefix_caching(args.backend, args.rounds)
    console.print("structured output ...")
    so = structured_cost(args.backend, args.rounds)
    console.print("speculative decoding ...")
    sp = speculative(args.backend, max(1, args.rounds // 2))
    console.print("AMX prefill ...")
    amx = amx_prefill(args.backend, args.rounds)
    table = markdown_table(["feature", "baseline", "with the feature", "ratio", "notes"], feature_rows(pc, so, sp, amx))
    print(machine_line())
    print(f"backend {args.backend}, median of {args.rounds} interleaved rounds\n")
    print(table)
    write_json("llm_features", {"backend": args.backend, "prefix_caching": pc, "structured_output": so,
                                "speculative": sp, "amx_prefill": amx})
    write_text("llm_features.md", f"{machine_line()}\n\n{table}\n")
    same = pc["identical_outputs"] and sp["quoting"]["identical_outputs"] and sp["free_text"]["identical_outputs"]
    return 0 if same else 1


def feature_rows(pc: dict, so: dict, sp: dict, amx: dict | None) -> list[list[str]]:
    """Table rows of the features' measurements (also printed by bench/llm_bench.py)."""
    rows = [
        [f"prefix caching, {PREFIX_TOKENS}-token prefix: TTFT", f"{pc['cold_ttft_ms']:.1f} ms (cold)",
         f"{pc['cached_ttft_ms']:.1f} ms", f"{pc['speedup']:.1f}x faster",
         "identical outputs" if pc["identical_outputs"] else "OUTPUTS DIFFER"],
        ["structured output (JSON Schema): decode", f"{so['free_tok_s']:.0f} tok/s (free text)",
         f"{so['json_schema_tok_s']:.0f} tok/s", f"{so['ratio']:.2f}x",
         f"+{so['per_token_overhead_ms']:.2f} ms per token"],
    ]
    for kind, label in (("quoting", "answers quoting their context"), ("free_text", "free text")):
        r = sp[kind]
        rows.append([f"speculative decoding (n-gram, k <= {sp['speculative_tokens']}), {label}: greedy decode",
                     f"{r['off_tok_s']:.0f} tok/s (off)", f"{r['on_tok_s']:.0f} tok/s", f"{r['speedup']:.2f}x",
                     f"{r['acceptance']:.0%} of {r['drafted']} draft tokens accepted; "
                     + ("identical outputs" if r["identical_outputs"] else "OUTPUTS DIFFER")])
    if amx:
        rows.append([f"AMX tiles: prefill of {amx['tokens']} tokens", f"{amx['vnni_tok_s']:.0f} tok/s (VNNI only)",
                     f"{amx['amx_tok_s']:.0f} tok/s", f"{amx['speedup']:.2f}x", "bit-identical logits"])
    return rows


if __name__ == "__main__":
    sys.exit(main())
