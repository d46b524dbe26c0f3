"""Metadata filters for search: equality, in-set and numeric/date ranges over chunk metadata.

A filter becomes a boolean mask over chunk ids (numpy, vectorised per field), which the vector
index turns into a FAISS ``IDSelectorBitmap`` or an exact search over the allowed ids; for the
PostgreSQL store it becomes a parameterised SQL condition (``sql_where``) with the same meaning.
Fields are a closed set, so a typo is an error naming the field instead of a filter that silently
matches nothing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

TextField = Literal["source", "title", "section", "tag"]
NumberField = Literal["ingested_at"]


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gte: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.gte is not None and self.lte is not None and self.gte > self.lte:
            raise ValueError(f"empty range: gte {self.gte} > lte {self.lte}")
        return self


class ChunkFilter(BaseModel):
    """All conditions must hold (AND); ``tag`` matches when the chunk carries that tag."""

    model_config = ConfigDict(extra="forbid")

    equals: dict[TextField, str] = Field(default_factory=dict)
    any_of: dict[TextField, list[str]] = Field(default_factory=dict)
    range: dict[NumberField, Range] = Field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.equals or self.any_of or self.range)


class MetadataColumns:
    """Chunk metadata as columns, for vectorised filtering (rebuilt when the store changes)."""

    def __init__(self, source: list[str], title: list[str], section: list[str], tags: list[tuple[str, ...]],
                 ingested_at: list[float]) -> None:
        self.n = len(source)
        self.text = {
            "source": np.asarray(source, dtype=object),
            "title": np.asarray(title, dtype=object),
            "section": np.asarray(section, dtype=object),
        }
        self.tags = tags
        self.numbers = {"ingested_at": np.asarray(ingested_at, dtype=np.float64)}

    def _in(self, field: str, values: set[str]) -> np.ndarray:
        if field == "tag":
            return np.fromiter((bool(values.intersection(t)) for t in self.tags), dtype=bool, count=self.n)
        col = self.text[field]
        return np.fromiter((v in values for v in col), dtype=bool, count=self.n)

    def mask(self, f: ChunkFilter | None) -> np.ndarray | None:
        """Allowed ids as a mask, or None when the filter allows everything."""
        if f is None or f.empty:
            return None
        keep = np.ones(self.n, dtype=bool)
        for field, value in f.equals.items():
            keep &= self._in(field, {value})
        for field, values in f.any_of.items():
            keep &= self._in(field, set(values))
        for field, r in f.range.items():
            col = self.numbers[field]
            if r.gte is not None:
                keep &= col >= r.gte
            if r.lte is not None:
                keep &= col <= r.lte
        return keep


# The only column names that reach SQL text: fixed here, keyed by the closed set of filter fields.
_SQL_TEXT_COLUMNS = {"source": "source", "title": "title", "section": "section"}
_SQL_NUMBER_COLUMNS = {"ingested_at": "ingested_at"}


def sql_where(f: ChunkFilter | None) -> tuple[str, list[object]]:
    """The filter as a SQL condition over the chunks table (``tags`` a ``text[]`` column) and its
    parameters (``%s`` placeholders, psycopg style): values are never part of the SQL text.
    ``TRUE`` when the filter allows everything; same meaning as ``MetadataColumns.mask``."""
    if f is None or f.empty:
        return "TRUE", []
    clauses: list[str] = []
    params: list[object] = []
    for field, value in f.equals.items():
        if field == "tag":
            clauses.append("tags @> ARRAY[%s]::text[]")  # containment: the GIN index on tags serves it
        else:
            clauses.append(f"{_SQL_TEXT_COLUMNS[field]} = %s")
        params.append(value)
    for field, values in f.any_of.items():
        if field == "tag":
            clauses.append("tags && %s::text[]")
        else:
            clauses.append(f"{_SQL_TEXT_COLUMNS[field]} = ANY(%s::text[])")
        params.append(list(values))
    for field, r in f.range.items():
        column = _SQL_NUMBER_COLUMNS[field]
        if r.gte is not None:
            clauses.append(f"{column} >= %s")
            params.append(float(r.gte))
        if r.lte is not None:
            clauses.append(f"{column} <= %s")
            params.append(float(r.lte))
    return " AND ".join(f"({c})" for c in clauses) or "TRUE", params
