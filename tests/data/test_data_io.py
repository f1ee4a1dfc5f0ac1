"""Loading, validating and writing example files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdedge.data import Example, LabelSet, check_labels, load_examples, write_examples
from kdedge.errors import DataError


def write_jsonl(path: Path, rows: list[object]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load_error(path: Path, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        load_examples(path, **kwargs)
    return info.value


# --- JSONL ------------------------------------------------------------------------------


def test_jsonl_reads_rows_optional_fields_and_sources(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"text": "where is my order", "label": "order_status"},
            "",
            "   ",
            {"text": "refund please", "label": "refund", "weight": 2.5, "slice": "vip", "id": 7},
        ],
    )
    examples = load_examples(path)
    assert examples == [
        Example("where is my order", "order_status", 1.0, None, f"{path}:1"),
        Example("refund please", "refund", 2.5, "vip", f"{path}:4"),
    ]


def test_jsonl_custom_field_names(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"utterance": "hi", "intent": "greet"}])
    [example] = load_examples(path, text_field="utterance", label_field="intent")
    assert (example.text, example.label) == ("hi", "greet")


def test_unlabeled_rows_allowed_and_present_labels_kept(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "u.jsonl", [{"text": "a"}, {"text": "b", "label": "x"}])
    examples = load_examples(path, require_labels=False)
    assert [ex.label for ex in examples] == [None, "x"]


def test_unicode_line_separator_inside_json_string_is_not_a_line_break(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a\u2028b", "label": "x"}\n{"text": "c", "label": "y"}\n')
    examples = load_examples(path)
    assert [ex.source for ex in examples] == [f"{path}:1", f"{path}:2"]


@pytest.mark.parametrize(
    ("line", "field", "needles"),
    [
        ('{"text": "a", "label": }', None, ["not valid JSON", "Expecting value"]),
        ('["a", "b"]', None, ["not an object", "list"]),
        ('{"label": "x", "other": 1}', "text", ["is missing", "label, other"]),
        ('{"text": null, "label": "x"}', "text", ["is missing"]),
        ('{"text": "   ", "label": "x"}', "text", ["is empty"]),
        ('{"text": 42, "label": "x"}', "text", ["must be a string", "int 42"]),
        ('{"text": "a"}', "label", ["is missing", "unlabeled data"]),
        ('{"text": "a", "label": ""}', "label", ["is missing or empty"]),
        ('{"text": "a", "label": 3}', "label", ["must be a string", "int 3", '"3"']),
        ('{"text": "a", "label": "x", "weight": 0}', "weight", ["positive number", "got 0"]),
        ('{"text": "a", "label": "x", "weight": -1.5}', "weight", ["positive number"]),
        ('{"text": "a", "label": "x", "weight": "2"}', "weight", ["positive number", "'2'"]),
        ('{"text": "a", "label": "x", "weight": true}', "weight", ["positive number"]),
        ('{"text": "a", "label": "x", "weight": NaN}', "weight", ["positive number"]),
        ('{"text": "a", "label": "x", "slice": 5}', "slice", ["must be a string"]),
    ],
)
def test_jsonl_row_errors_name_file_line_and_field(
    tmp_path: Path, line: str, field: str | None, needles: list[str]
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine", "label": "x"}, "", line])
    error = load_error(path)
    message = str(error)
    assert f"{path}:3" in message
    assert (error.path, error.line, error.field) == (str(path), 3, field)
    if field is not None:
        assert f"field '{field}'" in message
    for needle in needles:
        assert needle in message
    assert "Fix:" in message


def test_long_offending_value_is_truncated(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", ['{"text": "' + "x" * 500 + '", "label": 1'])
    message = str(load_error(path))
    assert "..." in message
    assert len(message) < 400


def test_label_type_is_checked_even_when_labels_are_optional(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "u.jsonl", [{"text": "a", "label": ["x"]}])
    assert load_error(path, require_labels=False).field == "label"


# --- CSV --------------------------------------------------------------------------------


def test_csv_reads_rows_with_physical_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "text,label,weight,slice\n"
        '"hello, world",greet,,\n'
        "\n"
        '"two\nlines",multi,0.5,web\n'
        "last,greet,2,\n",
        encoding="utf-8",
    )
    examples = load_examples(path)
    assert [(ex.text, ex.label, ex.weight, ex.slice, ex.source) for ex in examples] == [
        ("hello, world", "greet", 1.0, None, f"{path}:2"),
        ("two\nlines", "multi", 0.5, "web", f"{path}:4"),
        ("last", "greet", 2.0, None, f"{path}:6"),
    ]


def test_csv_with_utf8_bom_and_no_label_column_when_unlabeled(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("\ufefftext\ncafé\n", encoding="utf-8")
    assert load_examples(path, require_labels=False) == [Example("café", source=f"{path}:2")]


@pytest.mark.parametrize(
    ("content", "line", "field", "needles"),
    [
        ("sentence,label\nhi,greet\n", 1, "text", ["no 'text' column", "sentence, label"]),
        ("text,label\nhi,greet\na,b,c\n", 3, None, ["3 cells", "header (line 1) has 2"]),
        ("text,label\nhi,greet\nonly\n", 3, None, ["1 cells"]),
        ("text,label\nhi,greet\nhello,\n", 3, "label", ["is missing", "unlabeled data"]),
        ("text,label\n,greet\n", 2, "text", ["is missing"]),
        ("text,label,weight\nhi,greet,heavy\n", 2, "weight", ["positive number", "'heavy'"]),
        ("text,label,weight\nhi,greet,-2\n", 2, "weight", ["positive number"]),
        ("text,label,weight\nhi,greet,inf\n", 2, "weight", ["positive number"]),
    ],
)
def test_csv_errors_name_file_line_and_field(
    tmp_path: Path, content: str, line: int, field: str | None, needles: list[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    error = load_error(path)
    assert f"{path}:{line}" in str(error)
    assert (error.line, error.field) == (line, field)
    for needle in needles:
        assert needle in str(error)


# --- file-level errors ------------------------------------------------------------------


def test_unsupported_extension_lists_supported_types(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    path.write_text("x")
    message = str(load_error(path))
    assert "'.parquet'" in message
    assert ".jsonl" in message
    assert ".csv" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    error = load_error(path)
    assert "file not found" in str(error)
    assert str(path) in str(error)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    path = tmp_path / "dir.jsonl"
    path.mkdir()
    assert "not a file" in str(load_error(path))


@pytest.mark.parametrize(
    ("name", "content"),
    [("e.jsonl", ""), ("b.jsonl", "\n  \n\n"), ("e.csv", ""), ("h.csv", "text,label\n\n")],
)
def test_empty_files_have_no_rows(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    error = load_error(path)
    assert "no rows" in str(error)
    assert error.path == str(path)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "x"}\n{"text": "caf\xe9", "label": "x"}\n')
    error = load_error(path)
    assert f"{path}:2" in str(error)
    assert "UTF-8" in str(error)


# --- check_labels -----------------------------------------------------------------------


def test_check_labels_accepts_known_and_unlabeled_rows() -> None:
    labels = LabelSet(("a", "b"))
    check_labels([Example("x", "a"), Example("y"), Example("z", "b")], labels)


def test_check_labels_points_at_first_unknown_row() -> None:
    labels = LabelSet.from_labels(f"label{i}" for i in range(20))
    rows = [
        Example("x", "label3", source="data/test.jsonl:4"),
        Example("y", "refund", source="data/test.jsonl:9"),
        Example("z", "refund", source="data/test.jsonl:12"),
    ]
    with pytest.raises(DataError) as info:
        check_labels(rows, labels)
    error = info.value
    assert (error.path, error.line, error.field) == ("data/test.jsonl", 9, "label")
    message = str(error)
    assert "data/test.jsonl:9" in message
    assert "'refund'" in message
    assert "2 row(s)" in message
    assert "'label0'" in message
    assert "and 12 more" in message
    assert "retrain" in message
    assert "drop" in message


def test_check_labels_without_source() -> None:
    with pytest.raises(DataError) as info:
        check_labels([Example("x", "b")], LabelSet(("a",)))
    assert (info.value.path, info.value.line) == (None, None)


# --- write_examples ---------------------------------------------------------------------


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    rows = [
        Example("héllo", "greet"),
        Example("x", "y", weight=3.0, slice="s"),
        Example("unlabeled"),
    ]
    path = tmp_path / "sub" / "out.jsonl"
    write_examples(path, rows)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"text": "héllo", "label": "greet"},
        {"text": "x", "label": "y", "weight": 3.0, "slice": "s"},
        {"text": "unlabeled"},
    ]
    loaded = load_examples(path, require_labels=False)
    assert [(e.text, e.label, e.weight, e.slice) for e in loaded] == [
        (e.text, e.label, e.weight, e.slice) for e in rows
    ]


def test_failed_write_leaves_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")

    def rows():
        yield Example("a", "b")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_examples(path, rows())
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_atomic_files_and_folders_get_the_usual_permissions(tmp_path) -> None:
    import os

    from kdedge.atomic import atomic_dir, atomic_write_text

    mask = os.umask(0)
    os.umask(mask)
    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d") as staging:
        (staging / "f").write_text("y")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's 0700


# --- issue #19: input that used to give a traceback or be accepted silently -------------------


def test_deeply_nested_json_is_a_data_error_at_its_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "ok", "label": "a"}, "[" * 100_000])
    error = load_error(path)  # was: RecursionError
    assert error.line == 2 and "nested too deeply" in str(error)


def test_a_lone_surrogate_escape_is_a_data_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", ['{"text": "\\ud800 hi", "label": "a"}'])
    error = load_error(path)  # was: accepted, then a TypeError in the tokenizer
    assert error.line == 1 and "lone surrogate" in str(error)
    pair = write_jsonl(tmp_path / "p.jsonl", ['{"text": "\\ud83d\\ude00 hi", "label": "a"}'])
    assert load_examples(pair)[0].text == "\U0001f600 hi"  # a proper pair is fine


def _stale(parent: Path, name: str, owner: str, age_s: float) -> Path:
    import os
    import time

    folder = parent / f".{name}.{owner}.abcd1234.tmp"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "half.onnx").write_bytes(b"x")
    old = time.time() - age_s
    for p in (folder / "sub" / "half.onnx", folder / "sub", folder):
        os.utime(p, (old, old))
    return folder


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has it (until the pid is reused)


def test_atomic_dir_sweeps_what_killed_writers_left_and_nothing_else(tmp_path) -> None:
    import os

    from kdedge.atomic import _host, atomic_dir

    host = _host()
    dead = _stale(tmp_path, "bundle", f"{host}-{_dead_pid()}", 3600)
    fresh_dead = _stale(tmp_path, "bundle", f"{host}-{_dead_pid()}", 10)  # may still be written
    live = _stale(tmp_path, "bundle", f"{host}-{os.getppid()}", 3600)  # a live process's
    mine = _stale(tmp_path, "bundle", f"{host}-{os.getpid()}", 3600)  # another thread's
    remote = _stale(tmp_path, "bundle", f"{'0' * 8 if host != '0' * 8 else '1' * 8}-1", 3600)
    legacy_old = _stale(tmp_path, "x", "y", 7200).rename(tmp_path / ".bundle.zz99yy88.tmp")
    other_target = _stale(tmp_path, "bundle.v2", f"{host}-{_dead_pid()}", 3600)
    with atomic_dir(tmp_path / "bundle") as staging:
        assert staging.name.startswith(f".bundle.{host}-{os.getpid()}.")
        (staging / "manifest.json").write_text("{}")
    assert not dead.exists() and not legacy_old.exists()
    for kept in (fresh_dead, live, mine, remote, other_target):
        assert kept.exists(), kept.name
    assert (tmp_path / "bundle" / "manifest.json").is_file()
