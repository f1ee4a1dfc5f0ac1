"""``kdedge rerank candidates``: help, a tiny run, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kdedge.cli import cli, main
from kdedge.rerank.data import read_groups


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry(ctx: click.Context) -> None:
    """Call the real console entry point, which owns error formatting and exit codes."""
    sys.argv = ["kdedge", *ctx.args]
    main()


def run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(_entry, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def faq(doc_id: str, question: str, answer: str) -> dict:
    return {"doc_id": doc_id, "thread_id": doc_id[:2], "question": question, "answer": answer}


@pytest.fixture
def stackfaq_like(tmp_path) -> tuple[Path, Path]:
    corpus = write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            faq("t0-a0", "Undo a git commit", "reset"),
            faq("t1-a0", "Bake bread", "use an oven"),
            faq("t2-a0", "Rename a git branch", "-m"),
        ],
    )
    queries = write_jsonl(
        tmp_path / "queries.jsonl",
        [{"text": "undo git commit", "label": "t0"}, {"text": "oven for bread", "label": "t1"}],
    )
    return queries, corpus


def test_group_and_candidates_help_show_examples():
    result = CliRunner().invoke(cli, ["rerank", "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and "kdedge rerank candidates" in result.output
    assert "candidates" in result.output
    result = CliRunner().invoke(cli, ["rerank", "candidates", "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and "--no-ensure-positives" in result.output


def test_top_level_help_lists_rerank():
    result = CliRunner().invoke(cli, ["--help"])
    assert "rerank" in result.output and "Reranker distillation" in result.output


def test_candidates_writes_groups_and_prints_a_summary(tmp_path, stackfaq_like):
    pytest.importorskip("bm25s")
    queries, corpus = stackfaq_like
    out = tmp_path / "groups.jsonl"
    code, stdout, _ = run(
        ["rerank", "candidates", "--queries", str(queries), "--corpus", str(corpus),
         "--out", str(out), "--k", "1"]
    )  # fmt: skip
    assert code == 0
    assert "2 queries" in stdout and "BM25 recall@1 100.00%" in stdout
    groups = read_groups(out)
    assert [g.query_id for g in groups] == ["queries:1", "queries:2"]
    assert all(g.positives for g in groups)
    code, stdout, _ = run(
        ["rerank", "candidates", "--queries", str(queries), "--corpus", str(corpus),
         "--out", str(out), "--json", "--no-ensure-positives"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(stdout)
    assert report["out"] == str(out) and report["k"] == 50 and report["recall_at_k"] == 1.0
    assert report["ensure_positives"] is False


def test_candidates_bad_corpus_line_is_one_line_exit_2(tmp_path, stackfaq_like):
    queries, _ = stackfaq_like
    corpus = tmp_path / "bad_corpus.jsonl"
    corpus.write_text('{"doc_id": "a", "text": "fine"}\n{"doc_id": "b", text: oops}\n')
    out = tmp_path / "groups.jsonl"
    code, _, err = run(
        ["rerank", "candidates", "--queries", str(queries), "--corpus", str(corpus),
         "--out", str(out)]
    )  # fmt: skip
    assert code == 2
    assert f"{corpus}:2" in err and "error:" in err and "Traceback" not in err
    assert not out.exists()


def test_candidates_missing_queries_file_exit_2(tmp_path, stackfaq_like):
    _, corpus = stackfaq_like
    code, _, err = run(
        ["rerank", "candidates", "--queries", str(tmp_path / "nope.jsonl"), "--corpus",
         str(corpus), "--out", str(tmp_path / "o.jsonl")]
    )  # fmt: skip
    assert code == 2 and "file not found" in err and "nope.jsonl" in err
