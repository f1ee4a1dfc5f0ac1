"""Read and write example files (JSONL, CSV) with errors that point at ``file:line``."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kdedge.atomic import atomic_write
from kdedge.data.labels import LabelSet
from kdedge.data.records import Example
from kdedge.errors import DataError

SUPPORTED_SUFFIXES = (".jsonl", ".csv")
_SUPPORTED_TEXT = ".jsonl (JSON Lines: one JSON object per line), .csv (header row required)"


def clip(value: object, limit: int = 60) -> str:
    """``repr`` of ``value`` cut to about ``limit`` characters, for error messages."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + "..."
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def load_examples(
    path: str | Path,
    *,
    require_labels: bool = True,
    text_field: str = "text",
    label_field: str = "label",
) -> list[Example]:
    """Load a ``.jsonl`` or ``.csv`` file of examples, validating every row.

    Each row needs a non-empty string ``text_field``; ``label_field`` is required when
    ``require_labels`` (and read when present otherwise). Optional ``weight`` (number > 0,
    default 1.0) and ``slice`` (string). ``Example.source`` is ``"path:line"``, 1-based.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"unsupported file type {path.suffix or '(no extension)'!r}; supported: "
            f"{_SUPPORTED_TEXT}. Fix: convert the file or rename it with the right extension",
            path=path,
        )
    text = read_text_file(path)
    rows = jsonl_rows(path, text) if suffix == ".jsonl" else _csv_rows(path, text, text_field)
    parse = _RowParser(path, require_labels, text_field, label_field)
    examples = [parse(line, row) for line, row in rows]
    if not examples:
        raise DataError(
            "no rows: the file has no data rows. Fix: point at the right file or add rows",
            path=path,
        )
    return examples


def load_unlabeled(paths: Iterable[str | Path], text_field: str = "text") -> list[Example]:
    """Rows of ``paths`` as unlabeled examples (any label column is ignored).

    This is how a transfer set is read: text the teacher labels and the student learns
    from, whatever its origin (augmentation, logs, another dataset).
    """
    return [
        Example(e.text, None, e.weight, e.slice, e.source)
        for path in paths
        for e in load_examples(path, require_labels=False, text_field=text_field)
    ]


def check_labels(examples: Iterable[Example], labels: LabelSet) -> None:
    """Raise :class:`DataError` at the first example whose label is not in ``labels``.

    Unlabeled examples (label None) are skipped.
    """
    examples = list(examples)
    for example in examples:
        if example.label is None or example.label in labels:
            continue
        same = sum(1 for ex in examples if ex.label == example.label)
        known = ", ".join(repr(name) for name in labels.names[:8])
        more = f" and {len(labels) - 8} more" if len(labels) > 8 else ""
        path, line = parse_source(example.source)
        raise DataError(
            f"unknown label {clip(example.label)} ({same} row(s) carry it); the training data "
            f"has {len(labels)} labels: {known}{more}. Fix: add training rows with this label "
            "and retrain, or drop these rows",
            path=path,
            line=line,
            field="label",
        )


def write_examples(path: str | Path, examples: Iterable[Example]) -> None:
    """Write ``examples`` to ``path`` as JSONL, atomically (all rows or the old file)."""
    with atomic_write(path) as handle:
        for example in examples:
            row: dict[str, Any] = {"text": example.text}
            if example.label is not None:
                row["label"] = example.label
            if example.weight != 1.0:
                row["weight"] = example.weight
            if example.slice is not None:
                row["slice"] = example.slice
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def parse_source(source: str) -> tuple[str | None, int | None]:
    """Split an ``Example.source`` of the form ``"path:line"`` into its parts."""
    path, sep, line = source.rpartition(":")
    if sep and line.isdigit():
        return path, int(line)
    return (source or None), None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file; a
    :class:`DataError` names the file and line of the first bad one."""
    path = Path(path)
    yield from jsonl_rows(path, read_text_file(path))


def read_text_file(path: Path) -> str:
    """The file as UTF-8 text; a missing or undecodable file is a one-line DataError."""
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise DataError(f"file not found{where}. Fix: check the path", path=path)
    if not path.is_file():
        raise DataError("is not a file (a directory?). Fix: point at a data file", path=path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"not valid UTF-8 (byte {data[exc.start : exc.start + 1]!r}). "
            "Fix: re-save the file as UTF-8",
            path=path,
            line=line,
        ) from None


_EXAMPLE_ROW = '{"text": "where is my order", "label": "order_status"}'


def jsonl_rows(
    path: Path,
    text: str,
    example: str = _EXAMPLE_ROW,
    describe: Callable[[object], str] = lambda row: type(row).__name__,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, object)`` per non-blank line of a JSONL text, or a :class:`DataError` at the
    first bad line: invalid JSON, JSON nested too deeply to read (json's RecursionError), or
    a value that is not an object (named by ``describe``). ``example`` is the row the fix
    shows. The one JSONL reader of kdedge's data files (examples, query groups, corpora)."""
    # split on "\n" only: str.splitlines() would also split on U+2028, valid inside JSON strings
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"not valid JSON ({exc.msg} at column {exc.colno}): {clip(raw.strip())}. "
                f"Fix: write one JSON object per line, e.g. {example}",
                path=path,
                line=number,
            ) from None
        except RecursionError:
            raise DataError(
                "JSON nested too deeply to read. Fix: write one flat JSON object per line, "
                f"e.g. {example}",
                path=path,
                line=number,
            ) from None
        except ValueError as exc:  # an integer longer than Python's 4,300-digit limit
            raise DataError(
                f"not valid JSON ({exc}). Fix: write one JSON object per line, e.g. {example}",
                path=path,
                line=number,
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                f"row is a JSON {describe(row)}, not an object: {clip(raw.strip())}. "
                f"Fix: write each row as an object, e.g. {example}",
                path=path,
                line=number,
            )
        if "\\u" in raw and not _valid_unicode(row):
            raise DataError(
                "a string holds a lone surrogate escape (\\ud800 to \\udfff without its "
                "pair), which is not valid Unicode and no tokenizer can encode. Fix: write "
                "the character itself, or drop the escape",
                path=path,
                line=number,
            )
        yield number, row


def _valid_unicode(row: dict[str, Any]) -> bool:
    """Whether every string in ``row`` encodes as UTF-8 (JSON's \\u escapes can carry
    lone surrogates; raw UTF-8 bytes cannot)."""
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    except RecursionError:  # parsed, but too deep to re-encode: its strings are not checked
        return True
    return True


def _csv_rows(path: Path, text: str, text_field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    header_line = 1
    end = 0  # physical line where the previous record ended
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # blank line
            if header is None:
                header, header_line = [cell.strip() for cell in record], start
                if text_field not in header:
                    raise DataError(
                        f"the CSV header has no {text_field!r} column (columns: "
                        f"{clip(', '.join(header), 80)}). Fix: add a header row naming the "
                        f"text column {text_field!r}, or choose the text column by name",
                        path=path,
                        line=start,
                        field=text_field,
                    )
                continue
            if len(record) != len(header):
                raise DataError(
                    f"row has {len(record)} cells but the header (line {header_line}) has "
                    f"{len(header)}: {clip(','.join(record))}. Fix: quote cells that contain "
                    'commas or quotes ("a, b"), and give every row the same columns',
                    path=path,
                    line=start,
                )
            # an empty cell means the optional value is absent
            yield start, {key: cell for key, cell in zip(header, record, strict=True) if cell != ""}
    except csv.Error as exc:
        raise DataError(
            f"malformed CSV ({exc}). Fix: check quoting on this line",
            path=path,
            line=reader.line_num,
        ) from None


class _RowParser:
    """Turn one raw row (a dict) into an :class:`Example`, or raise at ``path:line``."""

    def __init__(self, path: Path, require_labels: bool, text_field: str, label_field: str) -> None:
        self.path = path
        self.csv = path.suffix.lower() == ".csv"
        self.require_labels = require_labels
        self.text_field = text_field
        self.label_field = label_field

    def error(self, line: int, field: str, message: str) -> DataError:
        return DataError(message, path=self.path, line=line, field=field)

    def __call__(self, line: int, row: dict[str, Any]) -> Example:
        return Example(
            text=self.text(line, row),
            label=self.label(line, row),
            weight=self.weight(line, row),
            slice=self.slice(line, row),
            source=f"{self.path}:{line}",
        )

    def text(self, line: int, row: dict[str, Any]) -> str:
        field = self.text_field
        if field not in row or row[field] is None:
            raise self.error(
                line,
                field,
                f"is missing (row has: {_keys(row)}). Fix: every row needs a non-empty string "
                f"{field!r}",
            )
        value = row[field]
        if not isinstance(value, str):
            raise self.error(
                line,
                field,
                f"must be a string, got {type(value).__name__} {clip(value)}. Fix: quote the text",
            )
        if not value.strip():
            raise self.error(
                line, field, f"is empty ({clip(value)}). Fix: give the row text or drop it"
            )
        return value

    def label(self, line: int, row: dict[str, Any]) -> str | None:
        field = self.label_field
        value = row.get(field)
        if value is not None and not isinstance(value, str):
            raise self.error(
                line,
                field,
                f"must be a string, got {type(value).__name__} {clip(value)}. "
                f'Fix: quote it, e.g. "{value}"',
            )
        label = value.strip() if isinstance(value, str) else ""
        if label:
            return label
        if self.require_labels:
            raise self.error(
                line,
                field,
                f"is missing or empty (row has: {_keys(row)}). Fix: give every row a label, "
                "or, if this file is unlabeled data, pass it as unlabeled data instead",
            )
        return None

    def weight(self, line: int, row: dict[str, Any]) -> float:
        value = row.get("weight")
        if value is None:
            return 1.0
        number: float | None = None
        if isinstance(value, str) and self.csv:
            try:
                number = float(value)
            except ValueError:
                number = None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer too large for a float
                number = None
        if number is None or not math.isfinite(number) or number <= 0:
            raise self.error(
                line,
                "weight",
                f"must be a positive number, got {clip(value)}. "
                "Fix: use a number > 0 (1.0 is the default) or drop the field",
            )
        return number

    def slice(self, line: int, row: dict[str, Any]) -> str | None:
        value = row.get("slice")
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(
                line,
                "slice",
                f"must be a string, got {type(value).__name__} {clip(value)}. "
                "Fix: quote it or drop the field",
            )
        return value.strip() or None


def _keys(row: dict[str, Any]) -> str:
    names: Sequence[str] = list(row)
    return clip(", ".join(names), 80) if names else "no fields"
