"""Input rails: prompt injection / jailbreak and harmful-request detection, on the user's message and
on retrieved documents (an instruction hidden in a source is an attack on the model, too).

Two detectors per rail, both local: rules (regular expressions for the phrasings attacks rely on:
"ignore previous instructions", "developer mode", "do anything now", ...) and meaning (the message's
sentence windows embedded with the retrieval embedder and compared with exemplar attacks in
``patterns/*.txt``; a window closer than the threshold to any exemplar flags the message). Windows
keep a long prompt from hiding its attack behind benign text. An allowlist (regular expressions from
config) clears a known false positive before any detector runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.guardrails.verdict import Action, Verdict
from server.rag.pii import redact

PATTERNS = Path(__file__).with_name("patterns")
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


def _exemplars(name: str) -> list[str]:
    lines = (PATTERNS / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


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
    injection_threshold: float = 0.62  # cosine to the nearest attack exemplar
    harmful_threshold: float = 0.60
    chunk_threshold: float = 0.62  # retrieved chunks: injection only
    shadow: bool = False
    allowlist: tuple[str, ...] = ()  # regular expressions; a matching message skips the injection/harm rails


class InputRails:
    def __init__(self, embed: Callable[[list[str]], np.ndarray], cfg: InputRailConfig = InputRailConfig()) -> None:
        self.embed = embed
        self.cfg = cfg
        self.attacks = embed(_exemplars("attacks.txt"))
        self.harmful = embed(_exemplars("harmful.txt"))
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
        windows = sentence_windows(text)
        emb = self.embed(windows) if windows else np.zeros((0, self.attacks.shape[1]), np.float32)
        for rail, bank, threshold in (("injection", self.attacks, self.cfg.injection_threshold),
                                      ("harmful", self.harmful, self.cfg.harmful_threshold)):
            sim = float((emb @ bank.T).max()) if len(emb) else 0.0
            if sim >= threshold:
                verdicts.append(self._verdict(rail, Action.BLOCK, "similar", sim, t1))
            else:
                verdicts.append(self._verdict(rail, Action.ALLOW, "clean", sim, t1))
        return red.text, verdicts

    def check_chunks(self, texts: list[str]) -> list[Verdict]:
        """One verdict per retrieved chunk: DROP when it carries instructions aimed at the model.
        Each chunk is looked at in sentence windows (one planted sentence in a page of
        documentation would vanish in the embedding of the whole chunk); all windows of all
        chunks go through the embedder in one call."""
        t0 = time.perf_counter()
        out = []
        windows = [sentence_windows(t, size=1, limit=12) or [t] for t in texts]
        flat = [w for ws in windows for w in ws]
        sims = (self.embed(flat) @ self.attacks.T).max(axis=1) if flat else np.zeros(0)
        start = 0
        for text, ws in zip(texts, windows, strict=True):
            sim = float(sims[start : start + len(ws)].max()) if ws else 0.0
            start += len(ws)
            rule = next((code for code, p in INJECTION_RULES if p.search(text)), None)
            if rule is not None or sim >= self.cfg.chunk_threshold:
                out.append(self._verdict("injection", Action.DROP, f"rule:{rule}" if rule else "similar", sim, t0))
            else:
                out.append(self._verdict("injection", Action.ALLOW, "clean", sim, t0))
        return out
