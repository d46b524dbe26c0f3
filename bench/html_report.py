"""One index.html per harness run: every table and plot of the run on a page that opens offline.

The plots are referenced by relative path, so the run's folder can be copied or attached to a CI
job as a whole and still render; no script, font or stylesheet is fetched from anywhere. Every
piece of text goes through ``html.escape``: model names, error kinds and CPU strings come from
outside this code.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.meta { color: #555; font-size: 0.9em; }
"""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Section:
    title: str
    tables: list[Table] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  #: file names relative to index.html
    notes: list[str] = field(default_factory=list)


def table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in t.rows)
    caption = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section_html(s: Section) -> str:
    parts = [f"<h2>{html.escape(s.title)}</h2>"]
    parts += [f"<p>{html.escape(n)}</p>" for n in s.notes]
    parts += [table_html(t) for t in s.tables]
    parts += [f'<img src="{html.escape(name, quote=True)}" alt="{html.escape(name, quote=True)}">' for name in s.images]
    return "\n".join(parts)


def page_html(title: str, meta: Sequence[str], sections: Sequence[Section]) -> str:
    meta_html = "".join(f'<p class="meta">{html.escape(m)}</p>' for m in meta)
    body = "\n".join(section_html(s) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>{meta_html}\n{body}\n</body></html>\n"
    )


def write_index(out_dir: Path, title: str, meta: Sequence[str], sections: Sequence[Section]) -> Path:
    path = out_dir / "index.html"
    path.write_text(page_html(title, meta, sections), encoding="utf-8")
    return path
