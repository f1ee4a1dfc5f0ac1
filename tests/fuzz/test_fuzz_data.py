"""Data files: any bytes a user can point `kdedge prepare` (or `kdedge rerank ...`) at end in
a list of valid rows or a one-line DataError naming the file, never another exception."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from kdedge.data.io import load_examples
from kdedge.errors import DataError
from kdedge.rerank.data import read_groups
from tests.fuzz.conftest import LONG_INT, deep, json_values, texts


def _write(suffix: str, data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="kdedge-fuzz-"))
    path = folder / f"data{suffix}"
    path.write_bytes(data)
    return path


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _examples_or_data_error(path: Path, require_labels: bool) -> None:
    try:
        rows = load_examples(path, require_labels=require_labels)
    except DataError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc).strip()
        return
    assert rows
    for row in rows:
        assert isinstance(row.text, str) and row.text.strip() and _encodable(row.text)
        assert row.label is None or (isinstance(row.label, str) and _encodable(row.label))
        assert row.weight > 0


rows = st.lists(
    st.dictionaries(
        st.sampled_from(["text", "label", "weight", "slice", "x"]), json_values, max_size=5
    ),
    max_size=5,
)


@given(rows, st.booleans())
@example([{"text": "\ud800 hi", "label": "a"}], True)
@example([{"text": "ok", "label": ["nested"]}], True)
def test_jsonl_rows_of_any_shape(rows, require_labels):
    lines = "\n".join(json.dumps(r) for r in rows)
    _examples_or_data_error(_write(".jsonl", lines.encode()), require_labels)


@given(st.binary(max_size=300), st.sampled_from([".jsonl", ".csv"]), st.booleans())
@example(deep(100_000).encode(), ".jsonl", True)
@example(b'{"text": ' + deep(50_000, '{"a":', "}").encode() + b"}", ".jsonl", True)
@example(b"\xff\xfe text,label\n", ".csv", True)
@example(b'text,label\n"unterminated,a\n', ".csv", True)
@example(b"text,label\nx\x00y,a\n", ".csv", True)
@example(b'{"text": "a", "label": "b", "weight": ' + LONG_INT.encode() + b"}", ".jsonl", True)
@example(b'{"text": "a", "label": "b", "weight": 1' + b"0" * 400 + b"}", ".jsonl", True)
def test_any_bytes(data, suffix, require_labels):
    _examples_or_data_error(_write(suffix, data), require_labels)


@given(st.lists(texts, max_size=4), st.lists(texts, max_size=4))
def test_csv_cells_of_any_text(cells_a, cells_b):
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    for a, b in zip(cells_a, cells_b, strict=False):
        writer.writerow([a, b])
    try:
        data = out.getvalue().encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be in a UTF-8 file at all
        data = out.getvalue().encode("utf-8", "surrogatepass")
    _examples_or_data_error(_write(".csv", data), True)


group = st.fixed_dictionaries(
    {
        "query": json_values,
        "candidates": st.lists(
            st.dictionaries(
                st.sampled_from(["doc_id", "text", "relevance"]), json_values, max_size=3
            ),
            max_size=3,
        ),
    },
    optional={"query_id": json_values},
)


@given(st.lists(group, max_size=4))
@example([{"query": "q", "candidates": [{"text": "\udfff"}]}])
@example([{"query": "q", "candidates": [{"text": "t", "relevance": float("nan")}]}])
def test_query_groups_of_any_shape(groups):
    path = _write(".jsonl", "\n".join(json.dumps(g) for g in groups).encode())
    try:
        parsed = read_groups(path)
    except DataError as exc:
        assert str(exc).startswith(str(path))
        return
    for g in parsed:
        assert _encodable(g.query) and all(_encodable(c.text) for c in g.candidates)


@given(st.binary(max_size=300))
@example(deep(100_000).encode())
@example(b'{"query": "q", "candidates": [{"text": "t", "relevance": ' + LONG_INT.encode() + b"}]}")
def test_query_groups_of_any_bytes(data):
    with contextlib.suppress(DataError):
        read_groups(_write(".jsonl", data))
