"""``kdedge rerank teach | label | distill | evaluate`` on the tiny fixtures, errors included."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kdedge.cli import cli
from tests.cli.test_cli import run

QUICK = ["--epochs", "2", "--queries-per-batch", "6", "--candidates-per-query", "4", "-q"]


@pytest.mark.parametrize("name", ["teach", "label", "distill", "evaluate"])
def test_help_shows_an_example(name):
    result = CliRunner().invoke(cli, ["rerank", name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and f"kdedge rerank {name}" in result.output


def test_teach_label_distill_evaluate(tmp_path, tiny_base, rerank_files):
    train, val, test = (str(rerank_files[k]) for k in ("train", "validation", "test"))
    teacher, student, cache = tmp_path / "teacher", tmp_path / "student", tmp_path / "cache"
    code, out, err = run(
        ["rerank", "teach", "--base", str(tiny_base), "--train", train, "--validation", val,
         "--out", str(teacher), "--max-length", "32", "--lr", "3e-3", "--device", "cpu", *QUICK]
    )  # fmt: skip
    assert code == 0, err
    assert "selected epoch" in out and "score threshold" in out
    code, out, err = run(
        ["rerank", "label", "--teacher", str(teacher), "--data", train, "--cache", str(cache),
         "--json", "-q"]
    )  # fmt: skip
    assert code == 0, err
    first = json.loads(out)
    assert first["cache_misses"] == first["unique_pairs"] > 0 and first["cache_hits"] == 0
    code, out, err = run(
        ["rerank", "label", "--teacher", str(teacher), "--data", train, "--cache", str(cache)]
    )
    assert code == 0, err
    assert f"cache hits {first['unique_pairs']}, misses 0" in out
    code, out, err = run(
        ["rerank", "distill", "--teacher", str(teacher), "--train", train, "--validation", val,
         "--out", str(student), "--layers", "2", "--loss", "margin_mse", "--alpha", "0.3",
         "--cache", str(cache), "--lr", "3e-3", "--device", "cpu", *QUICK]
    )  # fmt: skip
    assert code == 0, err
    assert "cache hits" in out and "misses 0" in out  # the labels from `rerank label`
    meta = json.loads((student / "kdedge.json").read_text())
    assert meta["task"] == "rerank" and meta["loss"]["kind"] == "margin_mse"
    assert meta["loss"]["alpha"] == 0.3 and meta["layer_map"] == [0, 2]
    code, out, err = run(
        ["rerank", "evaluate", str(teacher), str(student), "--data", test, "--first-stage",
         "--json", "-q"]
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert [m["model"] for m in report["models"]] == [str(teacher), str(student)]
    assert 0 <= report["models"][1]["ndcg@10"] <= 1 and "top3_agreement" in report["models"][1]
    assert "ndcg@10" in report["first_stage"]
    code, out, err = run(["rerank", "evaluate", str(student), "--data", test])
    assert code == 0, err
    assert "ndcg@10" in out and "mrr@10" in out


def test_labels_only_baseline(tmp_path, tiny_rerank_teacher, rerank_files):
    train, val = str(rerank_files["train"]), str(rerank_files["validation"])
    code, out, err = run(
        ["rerank", "distill", "--teacher", str(tiny_rerank_teacher), "--train", train,
         "--validation", val, "--out", str(tmp_path / "base"), "--labels-only",
         "--device", "cpu", "--json", *QUICK]
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["scoring"] is None
    assert json.loads((tmp_path / "base" / "kdedge.json").read_text())["loss"]["alpha"] == 1.0


def test_errors_are_one_line(tmp_path, tiny_teacher, tiny_rerank_teacher, rerank_files):
    train, val = str(rerank_files["train"]), str(rerank_files["validation"])
    base = ["--train", train, "--validation", val, "--out", str(tmp_path / "s")]
    code, _, err = run(["rerank", "distill", "--teacher", str(tmp_path / "nope"), *base])
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    n = len(json.loads((tiny_teacher / "config.json").read_text())["id2label"])
    code, _, err = run(["rerank", "distill", "--teacher", str(tiny_teacher), *base])
    assert code == 2 and f"has {n} outputs; a reranker has one" in err
    code, _, err = run(["rerank", "evaluate", str(tiny_teacher), "--data", val])
    assert code == 2 and "a reranker has one" in err
    teacher = str(tiny_rerank_teacher)
    code, _, err = run(["rerank", "distill", "--teacher", teacher, *base, "--alpha", "2"])
    assert code == 2 and "[0, 1]" in err
    code, _, err = run(["rerank", "distill", "--teacher", teacher, *base, "--layer-map", "0,x"])
    assert code == 2 and "comma-separated" in err
    missing = ["--train", str(tmp_path / "none.jsonl"), "--validation", val]
    code, _, err = run(["rerank", "distill", "--teacher", teacher, *missing, "--out", "x"])
    assert code == 2 and "does not exist" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "candidates": []}\n{oops\n')
    code, _, err = run(["rerank", "evaluate", teacher, "--data", str(bad)])
    assert code == 2 and f"{bad}:" in err
    code, _, err = run(
        ["rerank", "teach", "--base", str(tmp_path / "nobase"), *base, "--device", "cpu"]
    )
    assert code == 2 and "does not exist" in err
