"""What the LLM features cost or save, each against the plain path in the same process and run.

* prefix caching: time to first token of a prompt whose 1,024-token prefix is stored, against the
  same prompt cold (prefix cache off), interleaved rounds, medians; target >= 5x; outputs compared.
* structured output: single-stream decode tokens/s with a JSON Schema enforced, against free text
  of the same length (``ignore_eos``), i.e. what the grammar mask costs per token.

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
    engines = {n: LLMEngine(LLMConfig(backend=backend, max_model_len=2048, prefix_cache_entries=n)).start()
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

    engine = LLMEngine(LLMConfig(backend=backend, max_model_len=1024)).start()
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
    table = markdown_table(["feature", "baseline", "with the feature", "ratio", "notes"], [
        [f"prefix caching, {PREFIX_TOKENS}-token prefix: TTFT", f"{pc['cold_ttft_ms']:.1f} ms (cold)",
         f"{pc['cached_ttft_ms']:.1f} ms", f"{pc['speedup']:.1f}x faster",
         "identical outputs" if pc["identical_outputs"] else "OUTPUTS DIFFER"],
        ["structured output (JSON Schema): decode", f"{so['free_tok_s']:.0f} tok/s (free text)",
         f"{so['json_schema_tok_s']:.0f} tok/s", f"{so['ratio']:.2f}x",
         f"+{so['per_token_overhead_ms']:.2f} ms per token"],
    ])
    print(machine_line())
    print(f"backend {args.backend}, median of {args.rounds} interleaved rounds\n")
    print(table)
    write_json("llm_features", {"backend": args.backend, "prefix_caching": pc, "structured_output": so})
    write_text("llm_features.md", f"{machine_line()}\n\n{table}\n")
    return 0 if pc["identical_outputs"] else 1


if __name__ == "__main__":
    sys.exit(main())
