"""Reranking data in the corpus layout: a document file, queries with labels, and the
relevance judgements they imply (StackFAQ: a document is relevant to a query of its thread;
BEIR's corpus rows read the same way). Errors name ``file:line`` and the field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kdedge.data.io import clip
from kdedge.errors import DataError
from kdedge.rerank.rows import json_type, keys, no_rows, optional_id, required_text, rows

__all__ = ["read_corpus", "read_doc_labels", "read_queries", "relevance_from_labels"]


def read_corpus(path: str | Path) -> dict[str, str]:
    """``{doc_id: passage text}`` from a JSONL corpus, in file order.

    Each row needs an id, ``doc_id`` (or BEIR's ``_id``), and a text, one of:

    * ``text``, with an optional ``title`` put before it as ``"title\\ntext"`` (BEIR);
    * ``question`` and ``answer`` (StackFAQ / FAQ layouts), joined as ``"question\\nanswer"``.

    Ids must be unique and texts non-empty; errors name ``file:line`` and the field.
    """
    path = Path(path)
    corpus: dict[str, str] = {}
    first_line: dict[str, int] = {}
    example = '{"doc_id": "d1", "text": "..."}'
    for line, row in rows(path, example):
        doc_id = _doc_id(path, line, row)
        if doc_id in corpus:
            raise DataError(
                f"duplicate doc_id {clip(doc_id)} (first on line {first_line[doc_id]}). "
                "Fix: give every document its own id",
                path=path,
                line=line,
                field="doc_id",
            )
        first_line[doc_id] = line
        corpus[doc_id] = _doc_text(path, line, row)
    if not corpus:
        raise no_rows(path)
    return corpus


def read_doc_labels(path: str | Path, field: str = "thread_id") -> dict[str, str]:
    """``{doc_id: label}`` from the ``field`` column of a JSONL corpus (StackFAQ: the thread).

    Rows without the field are left out; a present value must be a non-empty string.
    """
    path = Path(path)
    labels: dict[str, str] = {}
    for line, row in rows(path, '{"doc_id": "d1", "thread_id": "t1", "text": "..."}'):
        doc_id = _doc_id(path, line, row)
        value = row.get(field)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"must be a non-empty string, got {clip(value)}. Fix: quote the label",
                path=path,
                line=line,
                field=field,
            )
        labels[doc_id] = value.strip()
    return labels


def read_queries(
    path: str | Path, *, text_field: str = "text", label_field: str = "label"
) -> list[tuple[str, str, str | None]]:
    """``(query_id, text, label)`` for each row of a JSONL query file, in file order.

    ``query_id`` comes from a ``query_id`` (or ``_id`` / ``id``) field when present, else
    ``"<file stem>:<line>"`` (e.g. ``"test:12"``), so ids from different splits never clash.
    ``label`` (optional, a string; None when absent) is what :func:`relevance_from_labels`
    matches against document labels, e.g. StackFAQ's thread id.
    """
    path = Path(path)
    queries: list[tuple[str, str, str | None]] = []
    first_line: dict[str, int] = {}
    for line, row in rows(path, f'{{"{text_field}": "...", "{label_field}": "..."}}'):
        query_id = optional_id(path, line, row, ("query_id", "_id", "id"))
        if query_id is None:
            query_id = f"{path.stem}:{line}"
        if query_id in first_line:
            raise DataError(
                f"duplicate query id {clip(query_id)} (first on line {first_line[query_id]}). "
                "Fix: give every query its own id",
                path=path,
                line=line,
                field="query_id",
            )
        first_line[query_id] = line
        text = required_text(path, line, row, text_field)
        label = row.get(label_field)
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise DataError(
                f"must be a non-empty string, got {clip(label)}. Fix: quote it or drop the field",
                path=path,
                line=line,
                field=label_field,
            )
        queries.append((query_id, text, label.strip() if isinstance(label, str) else None))
    if not queries:
        raise no_rows(path)
    return queries


def relevance_from_labels(
    queries: Sequence[tuple[str, str, str | None]],
    doc_labels: Mapping[str, str],
    *,
    relevance: float = 1.0,
) -> dict[str, dict[str, float]]:
    """Binary judgements: a document is relevant to a query iff its label equals the query's.

    StackFAQ: ``doc.thread_id == query.label``. Returns ``{query_id: {doc_id: relevance}}``
    with an entry (possibly empty) for every query; unlabeled queries get ``{}``.
    """
    by_label: dict[str, list[str]] = {}
    for doc_id, label in doc_labels.items():
        by_label.setdefault(label, []).append(doc_id)
    return {
        query_id: dict.fromkeys(by_label.get(label, []) if label is not None else [], relevance)
        for query_id, _text, label in queries
    }


def _doc_id(path: Path, line: int, row: dict[str, Any]) -> str:
    doc_id = optional_id(path, line, row, ("doc_id", "_id"))
    if doc_id is None:
        raise DataError(
            f"is missing (row has: {keys(row)}). Fix: give every document an id",
            path=path,
            line=line,
            field="doc_id",
        )
    return doc_id


def _doc_text(path: Path, line: int, row: dict[str, Any]) -> str:
    if "text" in row or not ("question" in row or "answer" in row):
        text = required_text(path, line, row, "text")
        title = row.get("title")
        if title is not None and not isinstance(title, str):
            raise DataError(
                f"must be a string, got {json_type(title)} {clip(title)}",
                path=path,
                line=line,
                field="title",
            )
        return f"{title.strip()}\n{text}" if title and title.strip() else text
    question = required_text(path, line, row, "question")
    answer = required_text(path, line, row, "answer")
    return f"{question}\n{answer}"
