"""The repository stands alone: no tracked file points at a document or folder outside it.

Design notes live under docs/design/; code and comments cite those (or say the reason
themselves), never a design document or a team folder beside the checkout, which a clone does
not have (the patterns are in ``OUTSIDE`` below).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile("|".join([r"DESIGN" r"\.md", r"\.\." r"/shared\b", r"(?<![\w/.])shared" "/"]), re.IGNORECASE)


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = []
    for name in out.decode().split("\0"):
        path = ROOT / name
        if name and path.is_file() and path.suffix not in {".png", ".npz", ".parquet", ".gguf"}:
            files.append(path)
    return files


def test_no_reference_to_files_outside_the_repository():
    this = Path(__file__).resolve()
    hits = []
    for path in _tracked_text_files():
        if path.resolve() == this:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


def test_design_notes_live_under_docs():
    stray = [
        str(p.relative_to(ROOT))
        for p in _tracked_text_files()
        if p.suffix == ".md" and p.name != "README.md" and p.relative_to(ROOT).parts[0] != "docs"
    ]
    assert not stray, f"markdown notes outside docs/: {stray}"


def test_docs_cited_in_code_exist():
    cited = set()
    for path in _tracked_text_files():
        try:
            cited.update(re.findall(r"docs/design/[\w.-]+\.md", path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert not missing, f"cited design notes that do not exist: {missing}"
