"""Token ids from llama.cpp's own tokenizer on our GGUF, written to tests/data/llama_cpp_token_ids.json.

The test suite holds our tokenizer to these ids (``tests/models/test_llm_model.py``) without compiling
llama.cpp in CI: this script runs ``llama-tokenize`` (built by ``bench/peers/build_llama_cpp.sh``, the
same llama.cpp the benchmarks use) once per text and records the ids with the llama.cpp version and
the GGUF's hash, so a changed model file or a new llama.cpp shows up as a stale file, not a silent pass.

    bash bench/peers/build_llama_cpp.sh && python -m bench.peers.llama_cpp_token_ids
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKENIZE = ROOT / ".peers" / "llama.cpp" / "build" / "bin" / "llama-tokenize"
BUILD_RECORD = ROOT / ".peers" / "llama.cpp" / "build" / "stackserve-build.json"
OUT = ROOT / "tests" / "data" / "llama_cpp_token_ids.json"

#: What the tokenizer must get right: plain prose, code and indentation, runs of spaces and newlines,
#: digits (SmolLM's pre-tokenizer splits them one by one), punctuation, accents, CJK, emoji, special
#: tokens written in the text (parsed as special, as the chat template relies on), and bytes that
#: only byte-fallback can encode.
TEXTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
    "def f(n):\n     12345 — ünïcödé 日本語 🙂",
    "Hello   42",
    "x = 3.14159 + 2024",
    "  leading spaces, trailing spaces   ",
    "\n\nTwo newlines, then\ttabs\t\tand a CRLF\r\n.",
    "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "Ümlaut façade naïve coöperate — “quotes” and ‘apostrophes’ … ellipsis",  # noqa: RUF001
    "中文分词测试，日本語のテキスト、한국어 문장.",  # noqa: RUF001
    "Emoji: 👩‍💻🚀✨ and flags 🇫🇷🇯🇵",
    "https://example.com/path?q=1&r=two#frag user@example.org",
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tprint(f\"{i:03d}\")",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "1,000,000.00 $19.99 50% 3rd 2nd 1st 0x1F 1e-9",
    "What's the difference between don't, can't and won't?",
    "ALL CAPS SENTENCE WITH ACRONYMS LIKE NASA, GPU AND HTTP/2.",
    "a" * 64,
    "Zero\u200bwidth space and non\u00a0breaking space",
]


def tokenize(gguf: Path, text: str) -> list[int]:
    with tempfile.NamedTemporaryFile("wb", suffix=".txt") as f:
        f.write(text.encode())
        f.flush()
        out = subprocess.run([str(TOKENIZE), "-m", str(gguf), "-f", f.name, "--ids", "--no-bos", "--no-escape",
                              "--log-disable"], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if not TOKENIZE.exists():
        print(f"{TOKENIZE} is missing: run bash bench/peers/build_llama_cpp.sh first", file=sys.stderr)
        return 2
    from server.llm.gguf_weights import default_gguf_path

    gguf = default_gguf_path()
    record = json.loads(BUILD_RECORD.read_text()) if BUILD_RECORD.exists() else {}
    data = {
        "generator": "bench/peers/llama_cpp_token_ids.py",
        "llama_cpp": record.get("source", "unknown"),
        "gguf": gguf.name,
        "gguf_sha256": hashlib.sha256(gguf.read_bytes()).hexdigest(),
        "options": "--no-bos, special tokens parsed",
        "cases": [{"text": t, "ids": tokenize(gguf, t)} for t in TEXTS],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cases = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in data.pop("cases"))  # a case per line
    head = json.dumps(data, ensure_ascii=False, indent=1)[:-2]
    args.out.write_text(f'{head},\n "cases": [\n{cases}\n ]\n}}\n')
    print(f"wrote {len(TEXTS)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
