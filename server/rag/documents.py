"""Source documents: files (.txt, .md, .rst, .html) and the default corpus, as titled sections.

The default corpus needs no download: CPython's ``pydoc_data.topics`` (the text of ``help()`` topics,
shipped with every Python). Each topic is one document whose title is the topic name. Files keep
their own structure: Markdown ``#`` headings, reStructuredText underlined headings and HTML
``<h1>`` to ``<h6>`` start sections, so a chunk's metadata can say which section it came from.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

SUPPORTED = (".txt", ".md", ".rst", ".html", ".htm")
DEFAULT_CORPUS = "pydoc"


@dataclass(slots=True)
class Section:
    title: str
    text: str


@dataclass(slots=True)
class Document:
    source: str  # a path, or "pydoc:<topic>"
    title: str
    sections: list[Section]
    tags: tuple[str, ...] = ()
    fingerprint: str = field(default="")  # sha256 of the raw text: re-ingest only what changed

    def __post_init__(self) -> None:
        if not self.fingerprint:
            raw = "\x1e".join(f"{s.title}\x1f{s.text}" for s in self.sections)
            self.fingerprint = hashlib.sha256(raw.encode()).hexdigest()


class UnsupportedFileError(ValueError):
    """A file type ingest does not read (the message names the types it does)."""


def pydoc_corpus() -> list[Document]:
    """One document per ``help()`` topic of the running Python."""
    from pydoc_data.topics import topics

    docs = []
    for name, text in sorted(topics.items()):
        sections = [s for s in _rst_sections(text) if s.text.strip()]  # "*****"-underlined headings
        sections = [Section(s.title or name, s.text) for s in sections]
        docs.append(Document(f"pydoc:{name}", name, sections, ("python-docs",)))
    return docs


FORMATS = ("txt", "md", "rst", "html")


def parse_text(source: str, text: str, fmt: str = "txt", title: str = "", tags: tuple[str, ...] = ()) -> Document:
    """A document from raw text in one of ``FORMATS`` (sections found the format's way)."""
    if fmt == "md":
        sections = _markdown_sections(text)
    elif fmt == "rst":
        sections = _rst_sections(text)
    elif fmt == "html":
        sections = _html_sections(text)
    elif fmt == "txt":
        sections = [Section("", text)]
    else:
        raise UnsupportedFileError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    sections = [s for s in sections if s.text.strip()]
    title = title or next((s.title for s in sections if s.title), Path(source).stem or source)
    return Document(source, title, sections, tags or (fmt,))


def load_file(path: Path) -> Document:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise UnsupportedFileError(f"{path}: {suffix or 'no extension'} is not one of {', '.join(SUPPORTED)}")
    fmt = "html" if suffix == ".htm" else suffix.lstrip(".")
    return parse_text(str(path), path.read_text(encoding="utf-8", errors="replace"), fmt)


def load_paths(paths: list[Path]) -> list[Document]:
    """Every supported file under each path (directories recursively, in sorted order)."""
    docs = []
    for p in paths:
        if p.is_dir():
            docs += [load_file(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in SUPPORTED]
        elif p.is_file():
            docs.append(load_file(p))
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return docs


def _markdown_sections(text: str) -> list[Section]:
    sections, title, buf = [], "", []
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            sections.append(Section(title, "\n".join(buf)))
            title, buf = m.group(1), []
        else:
            buf.append(line)
    sections.append(Section(title, "\n".join(buf)))
    return sections


def _rst_sections(text: str) -> list[Section]:
    lines = text.splitlines()
    sections, title, buf = [], "", []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        underline = re.fullmatch(r"([=\-~^\"'`#*+])\1{2,}", nxt.strip())
        if line.strip() and underline and len(nxt.strip()) >= len(line.strip()):
            sections.append(Section(title, "\n".join(buf)))
            title, buf = line.strip(), []
            i += 2
            continue
        if re.fullmatch(r"([=\-~^\"'`#*+])\1{2,}", line.strip()) and not buf:  # overline of a title
            i += 1
            continue
        buf.append(line)
        i += 1
    sections.append(Section(title, "\n".join(buf)))
    return sections


class _HTMLSections(HTMLParser):
    SKIP = {"script", "style", "nav", "header", "footer"}
    BLOCK = {"p", "div", "li", "br", "tr", "pre", "section", "article", "table", "ul", "ol", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.title = ""
        self.buf: list[str] = []
        self.heading: list[str] | None = None
        self.skip = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = []
        elif tag in self.BLOCK:
            self.buf.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) and self.heading is not None:
            self.sections.append(Section(self.title, "".join(self.buf)))
            self.title, self.buf, self.heading = " ".join("".join(self.heading).split()), [], None
        elif tag in self.BLOCK:
            self.buf.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        (self.heading if self.heading is not None else self.buf).append(data)


def _html_sections(text: str) -> list[Section]:
    parser = _HTMLSections()
    parser.feed(text)
    parser.close()
    parser.sections.append(Section(parser.title, "".join(parser.buf)))
    return [Section(s.title, re.sub(r"\n\s*\n+", "\n\n", s.text).strip()) for s in parser.sections]
