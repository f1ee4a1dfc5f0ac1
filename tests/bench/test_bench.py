"""`kdedge bench` on the tiny bundle: targets, workers in fresh processes, reports."""

from __future__ import annotations

import json

import pytest

from kdedge.bench.harness import SCHEMA_VERSION, bench, read_texts
from kdedge.bench.host import describe
from kdedge.bench.report import markdown, plot
from kdedge.bench.targets import LAMBDA_FULL_VCPU_MB, TARGETS, get_target
from kdedge.errors import ConfigError
from tests.cli.test_cli import run


def test_targets_are_data_and_lambda_says_it_is_emulated():
    assert {
        "lambda-512",
        "lambda-1024",
        "lambda-1769",
        "intel-cpu",
        "apple-m",
        "cpu",
        "cuda",
    } <= set(TARGETS)
    small = get_target("lambda-512")
    assert (small.threads, small.cores) == (1, 1)
    assert small.cpu_share == pytest.approx(512 / LAMBDA_FULL_VCPU_MB)
    assert "emulated" in small.emulation and "3.5x" in small.emulation
    assert get_target("lambda-1769").cpu_share == 1.0
    assert get_target("intel-cpu").backends == ("openvino",)
    with pytest.raises(ConfigError, match=r"unknown target 'tpu'.*lambda-512"):
        get_target("tpu")


def test_host_records_cpu_flags_and_versions():
    host = describe()
    assert host["cores"] >= 1 and host["cpu"]
    assert "onnxruntime" in host["packages"] and isinstance(host["cpu_flags"], list)


def test_inputs_are_spread_over_the_data(data_dir):
    texts = read_texts(data_dir / "test.jsonl", 5)
    assert len(texts) == 5 and len(set(texts)) == 5
    assert len(read_texts(None, 5)) > 5  # built-in varied sentences


def test_bench_matrix_with_a_torch_reference(exported, tiny_teacher, data_dir):
    report = bench(
        exported[1],
        ["cpu", "lambda-512", "apple-m"],
        data=data_dir / "test.jsonl",
        compare_torch=[tiny_teacher],
        artifacts=["onnx-int8", "openvino"],
        repeats=10,
        cold_runs=2,
        batch=4,
        compare_optimum=False,  # its rows have their own test; optimum is optional
    ).to_dict()
    assert report["schema_version"] == SCHEMA_VERSION and report["kind"] == "kdedge-bench"
    assert report["targets"]["apple-m"]["skipped"]
    rows = {(r["target"], r["name"]): r for r in report["rows"]}
    # openvino is not a lambda backend; torch rows run on every measured target
    assert set(rows) == {
        ("cpu", "onnx-int8"),
        ("cpu", "openvino"),
        ("cpu", "torch:teacher"),
        ("lambda-512", "onnx-int8"),
        ("lambda-512", "torch:teacher"),
    }
    int8 = rows["cpu", "onnx-int8"]
    assert int8["error"] is None
    assert 0 < int8["batch_1"]["p50"] <= int8["batch_1"]["p95"] <= int8["batch_1"]["p99"]
    assert int8["batch_n"]["throughput_per_s"] > 0
    assert int8["cold_start_ms"]["runs"] == 2 and int8["peak_rss_mb"] > 10
    assert int8["accuracy"] is not None and int8["size_bytes"] > 0
    assert rows["cpu", "torch:teacher"]["peak_rss_mb"] > int8["peak_rss_mb"]  # torch is heavy
    ratios = {(r["target"], r["row"]) for r in report["ratios"]}
    assert ("cpu", "onnx-int8") in ratios and ("lambda-512", "onnx-int8") in ratios
    md = markdown(report)
    assert "emulated" in md and "| cpu | onnx-int8 |" in md and "skipped" in md


def test_plot_writes_a_png(tmp_path):
    report = {
        "targets": {"cpu": {}},
        "rows": [
            {
                "target": "cpu",
                "name": "onnx",
                "batch_1": {"p95": 1.0},
                "accuracy": 0.9,
                "size_bytes": 1e6,
            }
        ],
    }
    plot(report, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_a_failing_worker_becomes_a_row_error(exported, tmp_path):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(exported[1], bundle)
    report = bench(bundle, ["cpu"], artifacts=["onnx"], repeats=10, cold_runs=1)
    assert report.rows[0].error is None
    (bundle / "tokenizer.json").write_text("{}")  # damaged after the manifest check
    with pytest.raises(Exception, match=r"sha256|bytes"):
        bench(bundle, ["cpu"], artifacts=["onnx"], repeats=10, cold_runs=1)


def test_cli_bench_writes_json_and_markdown(exported, tmp_path):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    code, stdout, err = run(
        [
            "bench",
            str(exported[1]),
            "--target",
            "lambda-1024",
            "--artifact",
            "onnx-int8",
            "--repeats",
            "10",
            "--cold-runs",
            "1",
            "--json",
            str(out),
            "--report",
            str(md),
            "-q",
        ]
    )
    assert code == 0, err
    assert "lambda-1024" in stdout and "onnx-int8" in stdout and "emulated" in err
    assert json.loads(out.read_text())["rows"][0]["name"] == "onnx-int8"
    assert md.read_text().startswith("# kdedge bench")


def test_cli_bench_errors(exported):
    code, _, err = run(["bench", str(exported[1]), "--target", "tpu"])
    assert code == 2 and "unknown target 'tpu'" in err
    code, _, err = run(["bench", str(exported[1]), "--artifact", "tflite"])
    assert code == 2 and "no artifact tflite" in err


def test_optimum_reference_runs_the_same_onnx_file(exported):
    pytest.importorskip("optimum.onnxruntime", reason="optimum is an optional reference")
    report = bench(exported[1], ["cpu"], artifacts=["onnx"], repeats=10, cold_runs=1)
    rows = {r.name: r for r in report.rows}
    assert rows["optimum:onnx"].error is None, rows["optimum:onnx"].error
    assert report.settings["optimum"] == "measured"
    ratio = [r for r in report.ratios() if r["reference"] == "optimum:onnx"]
    assert [r["row"] for r in ratio] == ["onnx"]  # compared on the same file only


def test_optimum_rows_can_be_turned_off(exported):
    report = bench(
        exported[1],
        ["cpu"],
        artifacts=["onnx-int8"],
        repeats=10,
        cold_runs=1,
        compare_optimum=False,
    )
    assert [r.name for r in report.rows] == ["onnx-int8"]
    assert report.settings["optimum"] == "off"
    assert report.rows[0].batch_1_max_length["p50"] >= 0


def test_a_bad_target_fails_before_anything_is_created(exported):
    import tempfile
    from pathlib import Path

    def folders():
        return set(Path(tempfile.gettempdir()).glob("kdedge-bench-optimum-*"))

    before = folders()
    with pytest.raises(ConfigError, match="unknown target 'tpu'"):
        bench(exported[1], ["cpu", "tpu"], repeats=10, cold_runs=1)
    assert folders() == before
