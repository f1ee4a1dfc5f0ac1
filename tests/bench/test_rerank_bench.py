"""`kdedge bench` on a rerank bundle: candidates per query, a torch cross-encoder beside it."""

from __future__ import annotations

import json

import pytest

from kdedge.bench.harness import bench
from kdedge.bench.report import markdown
from kdedge.errors import KdedgeError
from tests.cli.test_cli import run


def test_rerank_rows_per_candidate_count_with_torch_and_control(rerank_exported, tiny_reranker):
    report = bench(
        rerank_exported[1],
        ["cpu"],
        compare_torch=[tiny_reranker],
        artifacts=["onnx", "onnx-int8"],
        repeats=6,
        cold_runs=1,
    ).to_dict()
    assert report["settings"]["task"] == "rerank"
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"onnx", "onnx-int8", "torch:reranker"}
    for row in rows.values():
        assert row["error"] is None, row["error"]
        assert set(row["rerank"]) == {"10", "50", "100"}
        for figures in row["rerank"].values():
            assert 0 < figures["p50"] <= figures["p95"]
            assert figures["docs_per_s"] > 0
        assert row["cold_start_ms"]["median"] > 0 and row["peak_rss_mb"] > 0
    ratios = [r for r in report["ratios"] if r["reference"] == "torch:reranker"]
    assert {r["row"] for r in ratios} == {"onnx", "onnx-int8"}
    assert all(set(r["p50_speedup"]) == {"10", "50", "100"} for r in ratios)
    measures = {(p["row"], p["reference"], p["metric"]) for p in report["paired"]}
    assert ("onnx", "onnx (copy)", "rerank_ms") in measures  # the A/A control
    assert ("onnx", "torch:reranker", "rerank_ms") in measures
    md = markdown(report)
    assert "p95 ms @100" in md and "vs torch @50" in md and "A/A control" in md


def test_a_group_file_without_ten_candidates_is_a_clear_error(rerank_exported, rerank_groups):
    code, _, err = run(
        ["bench", str(rerank_exported[1]), "--target", "cpu", "--data", str(rerank_groups)]
    )
    assert code == 2 and "no query has 10 or more candidates" in err


def test_rerank_bench_reads_a_big_enough_group(rerank_exported, tmp_path):
    rows = {
        "query": "where is my order",
        "candidates": [{"text": f"passage number {i} about orders"} for i in range(12)],
    }
    data = tmp_path / "groups.jsonl"
    data.write_text(json.dumps(rows) + "\n")
    report = bench(
        rerank_exported[1],
        ["cpu"],
        data=data,
        artifacts=["onnx"],
        repeats=3,
        cold_runs=1,
        paired=False,
    ).to_dict()
    assert "groups.jsonl (query" in report["settings"]["data"]
    assert report["rows"][0]["error"] is None


def test_plot_is_refused_for_rerank(rerank_exported, tmp_path):
    code, _, err = run(["bench", str(rerank_exported[1]), "--plot", str(tmp_path / "x.png")])
    assert code == 2 and "--plot draws classifier accuracy" in err
    with pytest.raises(KdedgeError, match=r"missing\.jsonl"):
        bench(rerank_exported[1], ["cpu"], data=tmp_path / "missing.jsonl")
