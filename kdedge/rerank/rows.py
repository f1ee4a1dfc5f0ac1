"""Row and field checks shared by the reranking file readers: JSONL rows with file:line
errors, ids, required texts, and the messages that name a JSON value's type."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kdedge.data.io import clip, jsonl_rows, read_text_file
from kdedge.errors import DataError


def rows(path: Path, example: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, object)`` per non-blank line, with file:line errors (too deeply nested JSON
    included): :mod:`kdedge.data.io`'s JSONL reader, with this format's example row."""
    return jsonl_rows(path, read_text_file(path), example, json_type)


def optional_id(
    path: Path, line: int, row: dict[str, Any], names: Sequence[str], prefix: str = ""
) -> str | None:
    for name in names:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise DataError(
            f"must be a non-empty string (or an integer), got {json_type(value)} {clip(value)}. "
            "Fix: quote the id, or drop the field to use the default",
            path=path,
            line=line,
            field=prefix + name,
        )
    return None


def required_text(path: Path, line: int, row: dict[str, Any], name: str, prefix: str = "") -> str:
    value = row.get(name)
    if value is None:
        raise DataError(
            f"is missing (has: {keys(row)}). Fix: give it a non-empty string",
            path=path,
            line=line,
            field=prefix + name,
        )
    if not isinstance(value, str):
        raise DataError(
            f"must be a string, got {json_type(value)} {clip(value)}. Fix: quote the text",
            path=path,
            line=line,
            field=prefix + name,
        )
    if not value.strip():
        raise DataError(
            f"is empty or only whitespace ({clip(value)}). Fix: give it text or drop it",
            path=path,
            line=line,
            field=prefix + name,
        )
    return value


def json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def keys(row: dict[str, Any]) -> str:
    return clip(", ".join(row), 80) if row else "no fields"


def no_rows(path: Path) -> DataError:
    return DataError(
        "no rows: the file has no data rows. Fix: point at the right file or add rows", path=path
    )
