"""Semantic chunking: sentences grouped where the topic holds, cut where it turns.

A section's text is split into units (prose sentences; a code block or an indented example stays
one unit, since cutting code mid-block makes a chunk no question can be answered from). Each unit is
embedded once, and a unit's window vector is the token-weighted sum of its own and its neighbours'
vectors (a window smooths one-line digressions). Embedding each window's text instead would cost
``2 * window + 1`` times the section's tokens, and a mean-pooled encoder's embedding of a
concatenation is close to the token-weighted mean of its parts' embeddings. The cosine distance
between neighbouring windows rises where the topic changes, and the chunker cuts at the distances
above a percentile of the section's own distances (so a uniform section is not shredded and a
varied one is not left whole). Size bounds in embedder tokens come last: a chunk below
``min_tokens`` merges into its neighbour, and a unit above ``max_tokens`` is split by lines/words.

Ingest chunks a whole corpus with ``chunk_sections``: the pieces of every section go to the encoder
in one ``embed`` call, so it sees full, length-sorted batches instead of one small batch per section.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# end of a sentence: . ! ? (optionally closing quote/bracket), whitespace, then a capital, quote or bracket
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z\"'(\[`*])")


@dataclass(frozen=True, slots=True)
class ChunkingConfig:
    min_tokens: int = 40
    max_tokens: int = 220  # under the embedder's 256 with room for the title prefix
    percentile: float = 80.0  # cut where the neighbour distance is above this percentile of the section's
    window: int = 1  # units on each side embedded with a unit


# regions kept whole, never cut into sentences: an HTML comment, a fenced code block, a run of
# role-tagged lines ("User: ...", "[assistant]: ...", "### System: ..."). Cut in half, an instruction
# hidden in one of them can slip past the chunk rail half by half.
_WHOLE = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|```.*?(?:```|\Z)"
    r"|(?:^[ \t]*(?:\[?(?:user|assistant|system|human|ai|bot|model)\]?|\#{1,4}[ \t]*(?:system|instructions?|user|"
    r"assistant|response))[ \t]*:[^\n]*(?:\n|$))+",
    re.S | re.I | re.M,
)


def split_units(text: str) -> list[str]:
    """Paragraphs → sentences; indented blocks (code, examples), list items and marked-up regions
    (HTML comments, code fences, role-tagged lines) stay whole."""
    units: list[str] = []
    at = 0
    for m in _WHOLE.finditer(text):
        units += _plain_units(text[at : m.start()])
        if m.group().strip():
            units.append(m.group().strip())
        at = m.end()
    return units + _plain_units(text[at:])


def _plain_units(text: str) -> list[str]:
    units: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        if not para.strip():
            continue
        lines = para.splitlines()
        if all(ln.startswith((" ", "\t")) for ln in lines if ln.strip()) and _looks_like_code(para):
            units.append(para.rstrip())
            continue
        flat = " ".join(ln.strip() for ln in lines if ln.strip())
        units += [s.strip() for s in _SENTENCE_END.split(flat) if s.strip()]
    return units


def _looks_like_code(block: str) -> bool:
    return bool(re.search(r"(>>>|[=(){}\[\]:]\s*$|^\s+(def|class|for|if|import|return)\b)", block, re.M))


def _split_long(unit: str, max_tokens: int, count: Callable[[list[str]], list[int]]) -> list[str]:
    """A unit over the bound, cut at line breaks, else at words, into pieces within it."""
    if count([unit])[0] <= max_tokens:
        return [unit]
    parts = unit.splitlines() if "\n" in unit else unit.split(" ")
    sep = "\n" if "\n" in unit else " "
    sizes = count(parts)
    pieces, cur, size = [], [], 0
    for part, n in zip(parts, sizes, strict=True):
        if cur and size + n > max_tokens:
            pieces.append(sep.join(cur))
            cur, size = [], 0
        cur.append(part)
        size += n
    if cur:
        pieces.append(sep.join(cur))
    # a single line still over the bound: fall back to words
    out = []
    for p in pieces:
        out += _split_long(p, max_tokens, count) if sep == "\n" and count([p])[0] > max_tokens else [p]
    return out


def breakpoints(embeddings: np.ndarray, percentile: float) -> list[int]:
    """Indices i where a chunk should start (distance between unit windows i-1 and i above the
    percentile of all neighbour distances). Empty for fewer than three units."""
    n = len(embeddings)
    if n < 3:
        return []
    dist = 1.0 - np.sum(embeddings[:-1] * embeddings[1:], axis=1)
    threshold = np.percentile(dist, percentile)
    return [i + 1 for i, d in enumerate(dist) if d > threshold]


def pieces(units: list[str], count: Callable[[list[str]], list[int]],
           cfg: ChunkingConfig = ChunkingConfig()) -> tuple[list[str], list[int]]:
    """The units with any over ``max_tokens`` split, and each piece's size in embedder tokens."""
    out = [p for u in units for p in _split_long(u, cfg.max_tokens, count)]
    return out, (count(out) if out else [])


def window_vectors(vectors: np.ndarray, sizes: list[int], window: int) -> np.ndarray:
    """Unit vectors [n, d] → unit-norm window vectors: each the token-weighted sum of the units within
    ``window`` places of it. NaN-free for zero rows (a zero window stays zero)."""
    n = len(vectors)
    if n == 0:
        return np.zeros_like(vectors, dtype=np.float32)
    weighted = vectors.astype(np.float64) * np.asarray(sizes, dtype=np.float64)[:, None]
    summed = weighted.copy()
    for shift in range(1, min(window, n - 1) + 1):  # shifted adds, not prefix sums: no cancellation
        summed[shift:] += weighted[:-shift]
        summed[:-shift] += weighted[shift:]
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return (summed / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def group(parts: list[str], sizes: list[int], vectors: np.ndarray | None,
          cfg: ChunkingConfig = ChunkingConfig()) -> list[str]:
    """Pieces of one section (with their sizes and per-piece vectors) → chunk texts: cut at the
    semantic breakpoints of the window vectors, within the size bounds. ``vectors`` may be None for
    two pieces or fewer (no breakpoints are computed there)."""
    if not parts:
        return []
    cuts: set[int] = set()
    if len(parts) > 2 and vectors is not None:
        cuts = set(breakpoints(window_vectors(vectors, sizes, cfg.window), cfg.percentile))
    groups: list[list[int]] = [[]]
    size = 0
    for i, n in enumerate(sizes):
        if groups[-1] and (size + n > cfg.max_tokens or (i in cuts and size >= cfg.min_tokens)):
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += n
    # a trailing group below the minimum joins the previous one when the two fit
    if len(groups) > 1 and sum(sizes[i] for i in groups[-1]) < cfg.min_tokens:
        merged = groups[-2] + groups[-1]
        if sum(sizes[i] for i in merged) <= cfg.max_tokens:
            groups[-2:] = [merged]
    return ["\n".join(parts[i] for i in g) if any("\n" in parts[i] for i in g)
            else " ".join(parts[i] for i in g) for g in groups]


def chunk_units(
    units: list[str],
    embed: Callable[[list[str]], np.ndarray],
    count: Callable[[list[str]], list[int]],
    cfg: ChunkingConfig = ChunkingConfig(),
) -> list[str]:
    """Group one section's ``units`` into chunks: semantic cuts, then the size bounds."""
    parts, sizes = pieces(units, count, cfg)
    return group(parts, sizes, embed(parts) if len(parts) > 2 else None, cfg)


def chunk_sections(
    sections: list[list[str]],
    embed: Callable[[list[str]], np.ndarray],
    count: Callable[[list[str]], list[int]],
    cfg: ChunkingConfig = ChunkingConfig(),
) -> list[list[str]]:
    """``chunk_units`` for many sections at once (the same cuts), with one ``embed`` call for all."""
    split = [pieces(units, count, cfg) for units in sections]
    wanted = [p for parts, _ in split if len(parts) > 2 for p in parts]
    vectors = embed(wanted) if wanted else None
    out, at = [], 0
    for parts, sizes in split:
        rows = None
        if len(parts) > 2:
            rows, at = vectors[at : at + len(parts)], at + len(parts)
        out.append(group(parts, sizes, rows, cfg))
    return out
