"""Input rails: jailbreak and harmful-request detection on the user's message, injection detection
on retrieved documents (an instruction hidden in a source is an attack on the model, too).

Two detectors per rail, both local:
- rules, a fast path (regular expressions for phrasings attacks rely on: "ignore previous
  instructions", "act as ... with no restrictions", ...): a match refuses without embedding
  anything; their precision and recall are reported apart from the learned path
  (``models/risk_heads_report.json``, the ``rules`` column);
- the learned heads (``classifier.py``: ``harmful``, ``jailbreak``; ``injection`` for chunks),
  trained on many attack families and judged on families they never saw (``train.py``).
An allowlist (regular expressions from config) clears a known false positive before any detector runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from server.guardrails.classifier import RiskClassifier
from server.guardrails.verdict import Action, Verdict
from server.rag.pii import redact

MAX_WINDOWS = 24  # sentence windows embedded per message: bounds the rail's latency on huge prompts

INJECTION_RULES: list[tuple[str, re.Pattern]] = [(code, re.compile(p, re.I | re.S)) for code, p in (
    ("ignore_instructions", r"\b(ignore|disregard|forget|override|bypass)\b.{0,60}\b(previous|prior|above|earlier|"
                            r"all|any|your|the)\b.{0,40}\b(instructions?|rules|prompts?|directions|guidelines|"
                            r"programming|polic(y|ies)|restrictions)"),
    ("reveal_prompt", r"\b(reveal|print|show|repeat|output|leak|translate)\b.{0,40}\b(system prompt|hidden "
                      r"(instructions|prompt)|initial (instructions|prompt)|your (instructions|prompt|rules))"),
    ("persona_unrestricted", r"\b(act|pretend|role-?play|behave|respond|answer)\b.{0,40}\b(as|like|to be|you are|"
                             r"you're)\b.{0,60}"
                             r"\b(unrestricted|unfiltered|uncensored|jailbroken|evil|no (rules|limits|restrictions|"
                             r"filters|ethics))"),
    ("no_restrictions", r"\b(without|free (of|from)|no longer (bound|restricted) by)\b.{0,20}\b(any )?"
                        r"(restrictions|filters|censorship|guidelines|content polic(y|ies)|ethical)"),
    ("known_jailbreak", r"\b(do anything now|developer mode|jailbreak|jailbroken|DUDE mode|evil confidant|"
                        r"opposite mode|god mode)\b|\b(DAN|STAN|DUDE|AIM)\b(?= (mode|prompt|persona|can|will|is|has|"
                        r"stands))"),
    ("void_instructions", r"\b(your|all|the|any) (previous|prior|earlier|original|initial) (instructions|directions|"
                          r"prompt|rules|guidelines)\b"),
    ("addresses_the_model", r"\b(assistant|AI|language model|LLM|chatbot)\b[,:]?.{0,40}\b(must|should|shall|will now|"
                            r"now)\b.{0,30}\b(ignore|disregard|output|reveal|print|leak|obey|follow only)\b"),
    ("stay_in_character", r"\bstay in character\b|\bbreak(ing)? character\b"),
    ("persona_switch", r"\b(you (will|are going to|must|shall) (now )?|from now on,? (you )?)(take on|assume|adopt|"
                       r"play|act as|be|become)\b.{0,15}\b(the )?(role|persona|character) of\b"
                       r"|\bANTI-?DAN\b"),
    ("two_responses", r"\b(two|2) (different )?(responses|answers)\b.{0,80}\b(normal|classic|standard)\b"),
)]

# documents only (a user may well paste a transcript into a question): a source that speaks as the
# assistant or the system is writing the model's lines for it
CHUNK_RULES: list[tuple[str, re.Pattern]] = [(code, re.compile(p, re.I | re.M)) for code, p in (
    ("role_transcript", r"^[ \t>]*(\[(assistant|system)\]|assistant|ai)[ \t]*:|^[ \t>]*<\|?(im_start|system|"
                        r"assistant)\|?>|^[ \t>]*#{1,4}[ \t]*(system|instructions?|assistant)\b"),
    ("addressed_to_the_model", r"\b(note|message|instructions?) (to|for) (the )?(ai|assistant|model|llm|chatbot|"
                               r"language model)\b|\b(ai|assistant|model|llm|chatbot)s? (reading|summari[sz]ing|"
                               r"processing) this\b"),
)]

HARMFUL_RULES: list[tuple[str, re.Pattern]] = [(code, re.compile(p, re.I | re.S)) for code, p in (
    ("weapons", r"\b(make|build|assemble|synthesi[sz]e|create|produce|cook|manufacture)\b.{0,40}\b(bombs?|"
                r"explosives?|pipe ?bomb|napalm|thermite|nerve agent|sarin|ricin|anthrax|ghost gun|untraceable "
                r"(gun|firearm)|chemical weapon|bioweapon)"),
    ("drugs", r"\b(make|synthesi[sz]e|cook|produce|manufacture)\b.{0,30}\b(meth(amphetamine)?|fentanyl|heroin|"
              r"cocaine|crack|lsd|mdma)\b"),
    ("malware", r"\b(write|create|code|build|develop|generate)\b.{0,40}\b(ransomware|malware|keylogger|computer "
                r"virus|trojan|worm|rootkit|botnet|spyware|credential stealer|phishing (email|page|site|kit))"),
    ("violence", r"\b(poison|kill|murder|hurt|harm|kidnap|torture|stab|strangle)\b.{0,30}\b(someone|a person|"
                 r"people|my (wife|husband|neighbou?r|boss|ex|mother|father|child|kid)|him|her|a child|children|"
                 r"a kid)\b"),
    ("crime", r"\b(launder (money|cash)|money laundering|counterfeit (money|bills|currency)|card skimmer|"
              r"steal (a car|credit cards?|identit(y|ies)|passwords)|hack into (someone|my|a|their|his|her))"),
    ("abuse", r"\b(groom|lure|sexuali[sz]e)\b.{0,30}\b(minor|child|children|kid|teen)"),
    ("stalking", r"\b(stalk|track|spy on)\b.{0,30}\b(my ex|someone|without (them|her|him) (knowing|noticing))"),
)]


def sentence_windows(text: str, size: int = 2, limit: int = MAX_WINDOWS) -> list[str]:
    """Overlapping windows of ``size`` sentences (the whole text when short); at most ``limit``,
    spread over the text so the end of a long prompt is looked at as much as its start."""
    sentences = [s for s in re.split(r"(?<=[.!?:;\n])\s+", text.strip()) if s.strip()]
    if len(sentences) <= size:
        return [text.strip()] if text.strip() else []
    windows = [" ".join(sentences[i : i + size]) for i in range(len(sentences) - size + 1)]
    if len(windows) > limit:
        picks = np.linspace(0, len(windows) - 1, limit).round().astype(int)
        windows = [windows[i] for i in sorted(set(picks))]
    return windows


@dataclass(frozen=True, slots=True)
class InputRailConfig:
    shadow: bool = False
    allowlist: tuple[str, ...] = ()  # regular expressions; a matching message skips the injection/harm rails


class InputRails:
    def __init__(self, embed: Callable[[list[str]], np.ndarray], cfg: InputRailConfig = InputRailConfig(),
                 classifier: RiskClassifier | None = None) -> None:
        self.embed = embed
        self.cfg = cfg
        self.classifier = classifier or RiskClassifier.load(embed)
        self._allow = [re.compile(p, re.I) for p in cfg.allowlist]

    def _verdict(self, rail: str, action: Action, reason: str, score: float, t0: float) -> Verdict:
        shadow = self.cfg.shadow and action is not Action.ALLOW
        return Verdict(rail, action, reason, score, time.perf_counter() - t0, shadow)

    def check_message(self, text: str) -> tuple[str, list[Verdict]]:
        """(the message with PII redacted, verdicts of the pii, injection and harmful rails)."""
        t0 = time.perf_counter()
        red = redact(text)
        verdicts = [Verdict("pii", Action.REDACT if red.total else Action.ALLOW,
                            ",".join(sorted(red.counts)) or "none", float(red.total), time.perf_counter() - t0)]
        t1 = time.perf_counter()
        if any(p.search(text) for p in self._allow):
            verdicts += [self._verdict(r, Action.ALLOW, "allowlisted", 0.0, t1) for r in ("injection", "harmful")]
            return red.text, verdicts
        rules = {rail: next((code for code, p in table if p.search(text)), None)
                 for rail, table in (("injection", INJECTION_RULES), ("harmful", HARMFUL_RULES))}
        if any(rules.values()):  # refused on a rule: embedding the message would only add latency
            for rail, rule in rules.items():
                action, reason = (Action.BLOCK, f"rule:{rule}") if rule else (Action.ALLOW, "skipped")
                verdicts.append(self._verdict(rail, action, reason, 0.0, t1))
            return red.text, verdicts
        scores = self.classifier.scores([text], ("jailbreak", "harmful"))
        for rail, head in (("injection", "jailbreak"), ("harmful", "harmful")):
            p = float(scores[head][0])
            if p >= self.classifier.heads[head].threshold:
                verdicts.append(self._verdict(rail, Action.BLOCK, f"learned:{head}", p, t1))
            else:
                verdicts.append(self._verdict(rail, Action.ALLOW, "clean", p, t1))
        return red.text, verdicts

    def check_chunks(self, texts: list[str]) -> list[Verdict]:
        """One verdict per retrieved chunk: DROP when it carries instructions aimed at the model.
        Each chunk is looked at in sentence windows (one planted sentence in a page of
        documentation would vanish in the meaning of the whole chunk) and whole (an instruction
        spread over a few lines); everything goes to the embedder in one call."""
        t0 = time.perf_counter()
        out = []
        windows = [[t, *sentence_windows(t, size=2, limit=12)] for t in texts]
        flat = [w for ws in windows for w in ws]
        probs = self.classifier.scores(flat, ("injection",))["injection"] if flat else np.zeros(0)
        threshold = self.classifier.heads["injection"].threshold
        start = 0
        for text, ws in zip(texts, windows, strict=True):
            p = float(probs[start : start + len(ws)].max()) if ws else 0.0
            start += len(ws)
            rule = next((code for code, pat in (*INJECTION_RULES, *CHUNK_RULES) if pat.search(text)), None)
            if rule is not None or p >= threshold:
                out.append(self._verdict("injection", Action.DROP, f"rule:{rule}" if rule else "learned:injection",
                                         p, t0))
            else:
                out.append(self._verdict("injection", Action.ALLOW, "clean", p, t0))
        return out
