"""Query-group files: round trip, and every malformed row named by file:line and field."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kdedge.errors import DataError
from kdedge.rerank.corpus import read_corpus, read_doc_labels, read_queries, relevance_from_labels
from kdedge.rerank.data import MAX_CANDIDATES, Candidate, QueryGroup, read_groups, write_groups

GOOD = {
    "query_id": "q1",
    "query": "how do I undo a commit",
    "candidates": [
        {"doc_id": "d1", "text": "git reset --soft HEAD~1", "relevance": 2},
        {"doc_id": "d2", "text": "rename a branch with git branch -m", "relevance": 0},
        {"doc_id": "d3", "text": "git revert makes a new commit", "relevance": 1},
    ],
}


def write_lines(path: Path, lines: list[str | dict]) -> Path:
    text = "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


def with_candidates(*candidates, **fields) -> dict:
    return {"query_id": "q2", "query": "second query", "candidates": list(candidates), **fields}


def test_read_groups_parses_fields_and_helpers(tmp_path):
    path = write_lines(tmp_path / "g.jsonl", [GOOD])
    (group,) = read_groups(path)
    assert group.query_id == "q1" and group.query == "how do I undo a commit"
    assert group.doc_ids == ("d1", "d2", "d3")
    assert list(group.relevances()) == [2.0, 0.0, 1.0]
    assert group.relevances().dtype == np.float64
    assert [c.doc_id for c in group.positives] == ["d1", "d3"]
    assert [c.doc_id for c in group.negatives] == ["d2"]
    assert group.pairs()[0] == ("how do I undo a commit", "git reset --soft HEAD~1")
    assert len(group) == 3
    assert group.source == f"{path}:1"


def test_optional_ids_and_relevance_get_defaults(tmp_path):
    path = write_lines(
        tmp_path / "train.jsonl",
        ["", {"query": "q", "candidates": [{"text": "a"}, {"text": "b", "relevance": 1}]}],
    )
    (group,) = read_groups(path)
    assert group.query_id == "train:2"  # blank line 1 is skipped, numbering is physical
    assert group.doc_ids == ("0", "1")
    assert list(group.relevances()) == [0.0, 1.0]


def test_round_trip_write_then_read(tmp_path):
    groups = [
        QueryGroup("q1", "first", (Candidate("a", "alpha ✓", 1), Candidate("b", "beta", 0.5))),
        QueryGroup("q2", "second\u2028line", [Candidate("c", 'with "quotes"\nand newline')]),
    ]
    path = write_groups(tmp_path / "sub" / "out.jsonl", groups)
    assert path == tmp_path / "sub" / "out.jsonl"
    back = read_groups(path)
    assert back == groups
    assert isinstance(back[1].candidates, tuple)
    first = json.loads(path.read_text(encoding="utf-8").split("\n")[0])
    assert first["candidates"][0]["relevance"] == 1  # whole numbers stay integers
    assert first["candidates"][1]["relevance"] == 0.5
    assert [p.name for p in path.parent.iterdir()] == ["out.jsonl"]  # no temp file left


def test_write_is_atomic_on_failure(tmp_path):
    path = write_groups(tmp_path / "g.jsonl", [QueryGroup("q", "x", (Candidate("d", "t"),))])
    before = path.read_bytes()

    class Exploding:  # fails half-way through the write
        query_id = query = "z"

        @property
        def candidates(self):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_groups(path, [QueryGroup("q", "x", (Candidate("d", "new"),)), Exploding()])
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["g.jsonl"]


def test_write_rejects_what_read_would_reject(tmp_path):
    g = QueryGroup("q", "x", (Candidate("d", "t"),))
    with pytest.raises(ValueError, match="no query groups"):
        write_groups(tmp_path / "a.jsonl", [])
    with pytest.raises(ValueError, match="duplicate query_id 'q'"):
        write_groups(tmp_path / "a.jsonl", [g, g])
    assert not (tmp_path / "a.jsonl").exists()


# every error path: (second line, fragment of message, field)
BAD_ROWS = [
    ('{"query": "x", candidates: []}', "not valid JSON", None),
    ('["query", "x"]', "JSON array, not an object", None),
    ('"just a string"', "JSON string, not an object", None),
    (with_candidates({"text": "a"}, query=None), "is missing", "query"),
    (with_candidates({"text": "a"}, query="   "), "empty or only whitespace", "query"),
    (with_candidates({"text": "a"}, query=7), "must be a string", "query"),
    ({"query_id": "q2", "query": "x"}, "has no candidates", "candidates"),
    (with_candidates(), "has no candidates", "candidates"),
    ({"query_id": "q2", "query": "x", "candidates": "d1"}, "must be a list", "candidates"),
    (with_candidates("d1"), "must be an object", "candidates[0]"),
    (with_candidates({"doc_id": "d"}), "is missing", "candidates[0].text"),
    (with_candidates({"text": "ok"}, {"text": ""}), "empty", "candidates[1].text"),
    (with_candidates({"text": " \t\n"}), "empty or only whitespace", "candidates[0].text"),
    (with_candidates({"text": ["a"]}), "must be a string", "candidates[0].text"),
    (with_candidates({"text": "a", "relevance": "high"}), "finite number >= 0", "relevance"),
    (with_candidates({"text": "a", "relevance": -1}), "finite number >= 0", "relevance"),
    (with_candidates({"text": "a", "relevance": True}), "finite number >= 0", "relevance"),
    (with_candidates({"text": "a", "relevance": 10**400}), "finite number >= 0", "relevance"),
    ('{"query": "x", "candidates": [{"text": "a", "relevance": NaN}]}', "finite", "relevance"),
    ('{"query": "x", "candidates": [{"text": "a", "relevance": Infinity}]}', "finite", "relevance"),
    (with_candidates({"text": "a", "relevance": [1]}), "finite number >= 0", "relevance"),
    (with_candidates({"text": "a"}, query_id=""), "non-empty string", "query_id"),
    (with_candidates({"text": "a"}, query_id=["q"]), "non-empty string", "query_id"),
    (with_candidates({"text": "a", "doc_id": 1.5}), "non-empty string", "candidates[0].doc_id"),
    (
        with_candidates({"text": "a", "doc_id": "d"}, {"text": "b", "doc_id": "d"}),
        "duplicate",
        None,
    ),
    (with_candidates({"text": "a", "doc_id": 1}, {"text": "b", "doc_id": "1"}), "duplicate", None),
    (with_candidates({"text": "a"}, {"text": "b", "doc_id": "0"}), "duplicate doc_id '0'", None),
    (with_candidates({"text": "a"}, query_id="q1"), "duplicate query_id 'q1'", "query_id"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply", None),
]


@pytest.mark.parametrize(("row", "fragment", "field"), BAD_ROWS)
def test_bad_row_names_file_line_and_field(tmp_path, row, fragment, field):
    path = write_lines(tmp_path / "g.jsonl", [GOOD, row])
    with pytest.raises(DataError) as info:
        read_groups(path)
    err = info.value
    assert (err.path, err.line) == (str(path), 2), str(err)
    assert str(err).startswith(f"{path}:2: ")
    assert fragment in str(err)
    if field is not None:
        assert err.field is not None and err.field.endswith(field), err.field


def test_too_many_candidates_message(tmp_path):
    row = with_candidates(*({"text": f"p{i}"} for i in range(10_000)))
    path = write_lines(tmp_path / "g.jsonl", [row])
    with pytest.raises(DataError) as info:
        read_groups(path)
    assert str(info.value) == (
        f"{path}:1: field 'candidates': query 'q2' has 10000 candidates, more than "
        f"{MAX_CANDIDATES}; split the list or pass --max-candidates"
    )
    assert len(read_groups(path, max_candidates=10_000)[0]) == 10_000
    small = write_lines(tmp_path / "s.jsonl", [GOOD])
    with pytest.raises(DataError, match="3 candidates, more than 2"):
        read_groups(small, max_candidates=2)
    with pytest.raises(ValueError, match="max_candidates"):
        read_groups(small, max_candidates=0)


def test_empty_file_and_blank_lines_only(tmp_path):
    for name, text in (("empty.jsonl", ""), ("blank.jsonl", "\n  \n\n")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(DataError, match="no rows") as info:
            read_groups(path)
        assert info.value.path == str(path)


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"query": "caf\xe9", "candidates": []}\n')
    with pytest.raises(DataError, match="not valid UTF-8") as info:
        read_groups(path)
    assert info.value.line == 2


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_groups(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="not a file"):
        read_groups(tmp_path)


def test_long_passages_are_not_an_error(tmp_path):
    row = with_candidates({"text": "word " * 50_000, "relevance": 1})
    (group,) = read_groups(write_lines(tmp_path / "g.jsonl", [row]))
    assert len(group.candidates[0].text) == 250_000


def test_utf8_bom_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n")
    assert read_groups(path)[0].query_id == "q1"


def test_dataclasses_validate_direct_construction():
    assert Candidate("d", "t", 2).relevance == 2.0
    assert isinstance(Candidate("d", "t", 2).relevance, float)
    with pytest.raises(ValueError, match="relevance"):
        Candidate("d", "t", float("nan"))
    with pytest.raises(ValueError, match="relevance"):
        Candidate("d", "t", -0.5)
    with pytest.raises(ValueError, match="text"):
        Candidate("d", "  ")
    with pytest.raises(ValueError, match="no candidates"):
        QueryGroup("q", "x", ())
    with pytest.raises(ValueError, match="duplicate doc_id 'd'"):
        QueryGroup("q", "x", (Candidate("d", "a"), Candidate("d", "b")))
    with pytest.raises(ValueError, match="query text"):
        QueryGroup("q", " ", (Candidate("d", "a"),))


# ---------------------------------------------------------------- corpus + queries layout


def test_read_corpus_layouts(tmp_path):
    path = write_lines(
        tmp_path / "corpus.jsonl",
        [
            {"doc_id": "t0-a0", "thread_id": "t0", "question": "Q zero", "answer": "A zero"},
            {"doc_id": "p1", "text": "plain text"},
            {"_id": "b2", "title": "Title", "text": "beir body"},
            {"doc_id": 3, "title": "", "text": "untitled"},
        ],
    )
    assert read_corpus(path) == {
        "t0-a0": "Q zero\nA zero",
        "p1": "plain text",
        "b2": "Title\nbeir body",
        "3": "untitled",
    }
    assert read_doc_labels(path) == {"t0-a0": "t0"}


@pytest.mark.parametrize(
    ("row", "fragment", "field"),
    [
        ({"text": "no id"}, "is missing", "doc_id"),
        ({"doc_id": "d9"}, "is missing", "text"),
        ({"doc_id": "d9", "question": "q only"}, "is missing", "answer"),
        ({"doc_id": "d9", "question": "q", "answer": "  "}, "empty", "answer"),
        ({"doc_id": "d9", "text": "x", "title": 5}, "must be a string", "title"),
        ({"doc_id": "d0", "text": "again"}, "duplicate doc_id 'd0'", "doc_id"),
        ('{"doc_id": "d9", "text": ', "not valid JSON", None),
    ],
)
def test_read_corpus_errors_name_line(tmp_path, row, fragment, field):
    path = write_lines(tmp_path / "c.jsonl", [{"doc_id": "d0", "text": "first"}, row])
    with pytest.raises(DataError) as info:
        read_corpus(path)
    assert info.value.line == 2 and fragment in str(info.value)
    assert info.value.field == field


def test_read_doc_labels_rejects_non_string_label(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [{"doc_id": "d0", "text": "x", "thread_id": 4}])
    with pytest.raises(DataError, match="thread_id") as info:
        read_doc_labels(path)
    assert info.value.line == 1


def test_read_queries_ids_labels_and_errors(tmp_path):
    path = write_lines(
        tmp_path / "test.jsonl",
        [
            {"text": "how to strike through", "label": "t0"},
            {"text": "unlabeled question"},
            {"query_id": "custom", "text": "with id", "label": " t1 "},
        ],
    )
    assert read_queries(path) == [
        ("test:1", "how to strike through", "t0"),
        ("test:2", "unlabeled question", None),
        ("custom", "with id", "t1"),
    ]
    bad = write_lines(tmp_path / "bad.jsonl", [{"text": "a", "label": "x"}, {"label": "x"}])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'text'"):
        read_queries(bad)
    bad = write_lines(tmp_path / "bad2.jsonl", [{"text": "a", "label": 3}])
    with pytest.raises(DataError, match=r"bad2\.jsonl:1: field 'label'"):
        read_queries(bad)
    bad = write_lines(tmp_path / "dup.jsonl", [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(DataError, match=r"dup\.jsonl:2: .*duplicate query id 'a'"):
        read_queries(bad)


def test_relevance_from_labels_matches_thread_ids():
    queries = [("q1", "a", "t0"), ("q2", "b", "t9"), ("q3", "c", None), ("q4", "d", "t1")]
    doc_labels = {"d0": "t0", "d1": "t0", "d2": "t1"}
    assert relevance_from_labels(queries, doc_labels) == {
        "q1": {"d0": 1.0, "d1": 1.0},
        "q2": {},
        "q3": {},
        "q4": {"d2": 1.0},
    }
