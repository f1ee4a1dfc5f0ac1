"""Reranking data: a query with its candidate passages, read and written with file:line errors.

Numpy and the standard library only (no torch), so the runtime can read these files too.

Group files (``read_groups`` / ``write_groups``) are JSON Lines, one query per line::

    {"query_id": "q1", "query": "how do I undo a commit",
     "candidates": [{"doc_id": "d7", "text": "git reset --soft HEAD~1 ...", "relevance": 1},
                    {"doc_id": "d2", "text": "To rename a branch ...", "relevance": 0}]}

* ``query_id`` is optional (default ``"<file stem>:<line>"``) and must be unique in the file;
* ``doc_id`` is optional (default the candidate's position, ``"0"``, ``"1"``, ...) and must be
  unique within its query;
* ``relevance`` is optional (default 0 = not relevant) and must be a finite number >= 0:
  binary (0/1) or graded (e.g. 0..3, as TREC);
* ``text`` must be non-empty. A passage longer than the model's maximum input length is
  *not* an error here: the tokenizer truncates the (query, passage) pair when it is scored.

The other common layout, a corpus plus queries with labels (StackFAQ, or BEIR's corpus), is
read by :mod:`kdedge.rerank.corpus`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdedge.atomic import atomic_write
from kdedge.data.io import clip
from kdedge.errors import DataError
from kdedge.rerank.rows import json_type, no_rows, optional_id, required_text, rows

__all__ = [
    "MAX_CANDIDATES",
    "Candidate",
    "QueryGroup",
    "read_groups",
    "write_groups",
]

MAX_CANDIDATES = 1000
"""Default cap on candidates per query in a group file (a guard against a runaway list)."""

_EXAMPLE_ROW = (
    '{"query_id": "q1", "query": "...", "candidates": '
    '[{"doc_id": "d1", "text": "...", "relevance": 1}]}'
)


@dataclass(frozen=True)
class Candidate:
    """One passage to rank for a query. ``relevance`` 0 means not relevant."""

    doc_id: str
    text: str
    relevance: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.doc_id, str) or not self.doc_id:
            raise ValueError(f"Candidate.doc_id must be a non-empty string, got {self.doc_id!r}")
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"Candidate {self.doc_id!r}: text must be a non-empty string")
        relevance = _number(self.relevance)
        if relevance is None or relevance < 0:
            raise ValueError(
                f"Candidate {self.doc_id!r}: relevance must be a finite number >= 0, "
                f"got {self.relevance!r}"
            )
        object.__setattr__(self, "relevance", relevance)


@dataclass(frozen=True)
class QueryGroup:
    """A query and its candidate passages, in first-stage (e.g. BM25) order.

    ``candidates`` may be given as any sequence; it is stored as a tuple. ``source`` is
    ``"path:line"`` for groups read from a file (not part of equality).
    """

    query_id: str
    query: str
    candidates: tuple[Candidate, ...]
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        if not isinstance(self.query_id, str) or not self.query_id:
            raise ValueError(f"QueryGroup.query_id must be a non-empty string: {self.query_id!r}")
        if not isinstance(self.query, str) or not self.query.strip():
            raise ValueError(f"query {self.query_id!r}: query text must be a non-empty string")
        if not self.candidates:
            raise ValueError(f"query {self.query_id!r} has no candidates")
        seen: set[str] = set()
        for candidate in self.candidates:
            if not isinstance(candidate, Candidate):
                raise ValueError(
                    f"query {self.query_id!r}: candidates must be Candidate objects, "
                    f"got {type(candidate).__name__}"
                )
            if candidate.doc_id in seen:
                raise ValueError(f"query {self.query_id!r}: duplicate doc_id {candidate.doc_id!r}")
            seen.add(candidate.doc_id)

    def __len__(self) -> int:
        return len(self.candidates)

    def relevances(self) -> np.ndarray:
        """Relevance of each candidate, in list order (float64)."""
        return np.array([c.relevance for c in self.candidates], dtype=np.float64)

    @property
    def doc_ids(self) -> tuple[str, ...]:
        return tuple(c.doc_id for c in self.candidates)

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(c.text for c in self.candidates)

    @property
    def positives(self) -> tuple[Candidate, ...]:
        """Candidates with relevance > 0."""
        return tuple(c for c in self.candidates if c.relevance > 0)

    @property
    def negatives(self) -> tuple[Candidate, ...]:
        """Candidates with relevance 0."""
        return tuple(c for c in self.candidates if c.relevance == 0)

    def pairs(self) -> list[tuple[str, str]]:
        """``(query, passage)`` for each candidate: what a cross-encoder scores."""
        return [(self.query, c.text) for c in self.candidates]


# --------------------------------------------------------------------------- reading


def read_groups(path: str | Path, *, max_candidates: int = MAX_CANDIDATES) -> list[QueryGroup]:
    """Read a group file (format in the module docstring), validating every row.

    Raises :class:`DataError` with ``file:line`` (and the field) for: a missing file, bytes
    that are not UTF-8, malformed or too deeply nested JSON, a row that is not an object, a
    missing or empty ``query``, no ``candidates``, a candidate without text, a relevance that
    is not a finite number >= 0, a duplicate ``query_id`` or (within a query) ``doc_id``,
    more than ``max_candidates`` candidates, and a file with no rows.
    """
    if isinstance(max_candidates, bool) or not isinstance(max_candidates, int):
        raise ValueError(f"max_candidates must be an integer, got {max_candidates!r}")
    if max_candidates < 1:
        raise ValueError(f"max_candidates must be >= 1, got {max_candidates}")
    path = Path(path)
    groups: list[QueryGroup] = []
    first_line: dict[str, int] = {}
    for line, row in rows(path, _EXAMPLE_ROW):
        group = _parse_group(path, line, row, max_candidates)
        if group.query_id in first_line:
            raise DataError(
                f"duplicate query_id {clip(group.query_id)} (first on line "
                f"{first_line[group.query_id]}). Fix: give every query its own id",
                path=path,
                line=line,
                field="query_id",
            )
        first_line[group.query_id] = line
        groups.append(group)
    if not groups:
        raise no_rows(path)
    return groups


def write_groups(path: str | Path, groups: Sequence[QueryGroup]) -> Path:
    """Write ``groups`` as a group file, atomically (a temp file, then one rename).

    A reader sees the old file or the complete new one, never half of it. Raises
    :class:`ValueError` for an empty list or a duplicate ``query_id``, which
    :func:`read_groups` would reject.
    """
    path = Path(path)
    if not groups:
        raise ValueError("no query groups to write (read_groups rejects an empty file)")
    seen: set[str] = set()
    for group in groups:
        if group.query_id in seen:
            raise ValueError(f"duplicate query_id {group.query_id!r}: query ids must be unique")
        seen.add(group.query_id)
    with atomic_write(path) as handle:
        for group in groups:
            row = {
                "query_id": group.query_id,
                "query": group.query,
                "candidates": [
                    {"doc_id": c.doc_id, "text": c.text, "relevance": _compact(c.relevance)}
                    for c in group.candidates
                ],
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# --------------------------------------------------------------------------- helpers


def _parse_group(path: Path, line: int, row: dict[str, Any], max_candidates: int) -> QueryGroup:
    query_id = optional_id(path, line, row, ("query_id",))
    if query_id is None:
        query_id = f"{path.stem}:{line}"
    query = required_text(path, line, row, "query")
    raw = row.get("candidates")
    if raw is None or (isinstance(raw, list) and not raw):
        raise DataError(
            f"query {clip(query_id)} has no candidates. Fix: give each query a non-empty "
            'list "candidates" of {"doc_id", "text", "relevance"} objects, or drop the line',
            path=path,
            line=line,
            field="candidates",
        )
    if not isinstance(raw, list):
        raise DataError(
            f"must be a list of candidate objects, got {json_type(raw)} {clip(raw)}",
            path=path,
            line=line,
            field="candidates",
        )
    if len(raw) > max_candidates:
        raise DataError(
            f"query {clip(query_id)} has {len(raw)} candidates, more than {max_candidates}; "
            "split the list or pass --max-candidates",
            path=path,
            line=line,
            field="candidates",
        )
    candidates: list[Candidate] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(raw):
        where = f"candidates[{index}]"
        if not isinstance(item, dict):
            raise DataError(
                f"must be an object like "
                f'{{"doc_id": "d1", "text": "...", "relevance": 1}}, got {json_type(item)} '
                f"{clip(item)}",
                path=path,
                line=line,
                field=where,
            )
        doc_id = optional_id(path, line, item, ("doc_id",), prefix=f"{where}.")
        if doc_id is None:
            doc_id = str(index)
        if doc_id in first_index:
            raise DataError(
                f"duplicate doc_id {clip(doc_id)} in query {clip(query_id)} (first at "
                f"candidates[{first_index[doc_id]}]). Fix: list each passage once per query",
                path=path,
                line=line,
                field=f"{where}.doc_id",
            )
        first_index[doc_id] = index
        text = required_text(path, line, item, "text", prefix=f"{where}.")
        relevance = _relevance(path, line, item, f"{where}.relevance")
        candidates.append(Candidate(doc_id, text, relevance))
    return QueryGroup(query_id, query, tuple(candidates), source=f"{path}:{line}")


def _relevance(path: Path, line: int, item: dict[str, Any], where: str) -> float:
    value = item.get("relevance")
    if value is None:
        return 0.0
    number = _number(value)
    if number is None or number < 0:
        raise DataError(
            f"must be a finite number >= 0 (0 = not relevant; binary 0/1 or graded 0..3), "
            f"got {json_type(value)} {clip(value)}. Fix: use a number such as 0, 1 or 2, or "
            "drop the field for 0",
            path=path,
            line=line,
            field=where,
        )
    return number


def _number(value: object) -> float | None:
    """``value`` as a finite float, or None if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _compact(value: float) -> float | int:
    """Whole relevances as integers in files (``1``, not ``1.0``)."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value
