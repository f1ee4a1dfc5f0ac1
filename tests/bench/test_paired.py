"""Interleaved comparisons, the INT8-vs-FP32 notes, and bench figures feeding selection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdedge.bench.explain import effective_flags, quantization_notes
from kdedge.bench.harness import Row, bench, comparisons
from kdedge.bench.paired import paired_speedup
from kdedge.bench.record import apply_report
from kdedge.bench.targets import get_target
from kdedge.errors import ModelError
from kdedge.runtimes import load
from kdedge.runtimes.bundle import read_manifest
from kdedge.runtimes.selection import choose_artifact, measured_target
from tests.cli.test_cli import run


def test_a_real_speedup_is_claimed_with_an_interval_that_excludes_one():
    rng = np.random.default_rng(1)
    drift = rng.uniform(1.0, 3.0, 200)  # the host slows both arms alike, round by round
    ref, row = 4.0 * drift, 2.0 * drift * rng.normal(1.0, 0.02, 200)
    out = paired_speedup(row, ref)
    assert out["speedup"] == pytest.approx(2.0, rel=0.02)
    assert out["ci95"][0] > 1.9 and out["verdict"] == "faster" and out["rounds"] == 200
    # sequential rows would not see it: the row's spread swamps the difference
    assert np.percentile(row, 90) > np.percentile(ref, 10)


def test_noise_alone_is_no_measurable_difference_and_direction_follows_the_metric():
    rng = np.random.default_rng(2)
    a, b = rng.normal(10, 1, 100), rng.normal(10, 1, 100)
    assert paired_speedup(a, b)["verdict"] == "no measurable difference"
    rates = paired_speedup(
        [50.0, 52.0, 51.0, 49.0], [100.0, 99.0, 101.0, 100.0], higher_is_better=True
    )
    assert rates["speedup"] == pytest.approx(0.5, abs=0.02) and rates["verdict"] == "slower"


def test_the_a_a_control_widens_the_band_a_verdict_must_clear():
    from kdedge.bench.paired import noise_band

    assert noise_band(None) == 1.0
    noise = noise_band({"ci95": [0.951, 0.966]})  # two copies of one model, measured
    assert noise == pytest.approx(1 / 0.951)
    rng = np.random.default_rng(3)
    ref = rng.uniform(2.0, 3.0, 200)
    row = ref / 1.03 * rng.normal(1.0, 0.005, 200)  # 3% faster: real, but inside the band
    assert paired_speedup(row, ref)["verdict"] == "faster"
    assert paired_speedup(row, ref, noise=noise)["verdict"] == "no measurable difference"


def test_rounds_missing_a_sample_are_dropped_and_too_few_say_nothing():
    assert paired_speedup([1.0, None, 1.0], [2.0, 2.0, None]) is None
    out = paired_speedup([1.0, None, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0, 2.0])
    assert out["rounds"] == 4 and out["speedup"] == 2.0


def _row(target, name, kind="artifact", backend="onnxruntime", precision="fp32", error=None):
    return Row(target, name, kind, backend, precision, error=error)


def test_comparisons_pair_references_and_precisions_within_a_target():
    rows = [
        _row("cpu", "onnx"),
        _row("cpu", "onnx-int8", precision="int8"),
        _row("cpu", "openvino-int8", backend="openvino", precision="int8"),  # no FP32 sibling
        _row("cpu", "optimum:onnx", kind="optimum"),
        _row("cpu", "torch:teacher", kind="torch", backend="torch"),
        _row("lambda-512", "onnx-int8", precision="int8"),
        _row("cpu", "gguf-q8_0", backend="llamacpp", precision="q8_0", error="boom"),
        _row("cpu", "gguf-f16", backend="llamacpp", precision="f16"),
    ]
    pairs = {(r.target, r.name, ref.name, kind) for r, ref, kind in comparisons(rows)}
    assert ("cpu", "onnx", "optimum:onnx", "reference") in pairs
    assert ("cpu", "onnx-int8", "optimum:onnx", "reference") not in pairs  # not the same file
    assert ("cpu", "onnx-int8", "torch:teacher", "reference") in pairs
    assert ("cpu", "onnx-int8", "onnx", "precision") in pairs
    assert not any(p[1] == "openvino-int8" and p[3] == "precision" for p in pairs)
    assert not any("gguf-q8_0" in p[1:3] for p in pairs)  # a failed row is compared with nothing
    assert not any(p[0] == "lambda-512" for p in pairs)  # nothing to compare it with there


def _report(target_isa=None, speedup=1.8, low=1.7, high=1.9, verdict="faster"):
    return {
        "host": {"cpu": "test cpu", "cpu_flags": ["avx2", "avx512f", "avx512_vnni"]},
        "targets": {"t": {"isa": target_isa, "skipped": None}},
        "rows": [],
        "paired": [
            {
                "target": "t",
                "row": "openvino-int8",
                "reference": "openvino",
                "comparison": "precision",
                "metric": "batch_1_ms",
                "speedup": speedup,
                "ci95": [low, high],
                "verdict": verdict,
            }
        ],
    }


def test_int8_notes_read_the_cpu_flags_the_target_allows():
    (note,) = quantization_notes(_report())
    assert "1.80x" in note and "avx512_vnni gives INT8 dot products" in note
    capped = _report(["avx2"], 0.76, 0.74, 0.78, "slower")
    assert effective_flags(capped, "t") == ["avx2"]
    (note,) = quantization_notes(capped)
    assert "Expected without VNNI" in note and "Ship FP32" in note
    (note,) = quantization_notes(_report(speedup=0.8, low=0.7, high=0.9, verdict="slower"))
    assert "not the cause" in note  # VNNI present and still slower: say what else it is


def test_int8_notes_fall_back_to_sequential_rows():
    report = _report()
    report["paired"] = []
    report["rows"] = [
        {"target": "t", "name": n, "kind": "artifact", "backend": "onnxruntime", "precision": p,
         "batch_1": {"p50": ms}}
        for n, p, ms in (("onnx", "fp32", 3.0), ("onnx-int8", "int8", 1.0))
    ]  # fmt: skip
    (note,) = quantization_notes(report)
    assert "3.00x" in note and "sequential rows only" in note


def test_isa_capped_targets_set_onednn_and_need_the_flags(monkeypatch):
    avx2 = get_target("intel-cpu-avx2")
    assert dict(avx2.env) == {"ONEDNN_MAX_CPU_ISA": "AVX2"} and avx2.backends == ("openvino",)
    assert "emulated" in avx2.emulation
    monkeypatch.setattr("kdedge.bench.host.cpu_flags", lambda: {"neon"})
    assert "lacks avx2" in avx2.unavailable()
    monkeypatch.setattr("kdedge.bench.host.cpu_flags", lambda: {"avx2", "avx512f"})
    assert avx2.unavailable() is None


@pytest.fixture
def benched(bundle_copy):
    report = bench(
        bundle_copy,
        ["cpu", "lambda-512"],
        artifacts=["onnx", "onnx-int8"],
        repeats=12,
        cold_runs=1,
        compare_optimum=False,
    ).to_dict()
    return bundle_copy, report


def test_bench_measures_every_comparison_interleaved(benched):
    _, report = benched
    assert report["settings"]["paired"] is True
    control, entry = [p for p in report["paired"] if p["target"] == "cpu"]
    assert control["comparison"] == "control" and control["reference"] == "onnx (copy)"
    assert control["verdict"].startswith("control: verdicts here need")
    assert (entry["row"], entry["reference"], entry["comparison"]) == (
        "onnx-int8",
        "onnx",
        "precision",
    )
    assert entry["metric"] == "batch_1_ms" and entry["rounds"] == 12
    assert entry["ci95"][0] <= entry["speedup"] <= entry["ci95"][1]
    assert entry["verdict"] in ("faster", "slower", "no measurable difference")


def test_applied_figures_drive_selection(benched, monkeypatch):
    bundle, report = benched
    # make the measured ranking the opposite of the export-time one, to see which wins
    for row in report["rows"]:
        row["batch_1"]["p50"] = {"onnx": 0.5, "onnx-int8": 5.0}[row["name"]]
    assert apply_report(bundle, report) == ["cpu", "lambda-512"]
    manifest = read_manifest(bundle)
    assert manifest.benchmarks["cpu"]["artifacts"]["onnx"]["p50_ms"] == 0.5
    assert set(manifest.benchmarks["lambda-512"]["artifacts"]) == {"onnx", "onnx-int8"}
    choice = choose_artifact(manifest, tags=("cpu",))
    assert (
        choice.artifact.name == "onnx" and "measured" in choice.why and "kdedge bench" in choice.why
    )
    with load(bundle, target="lambda-512") as rt:
        assert rt.artifact.name == "onnx"
    with pytest.raises(ModelError, match=r"no benchmark figures for 'intel-cpu'.*cpu, lambda-512"):
        choose_artifact(manifest, target="intel-cpu")
    # on Lambda the measured size nearest the function's memory applies
    report["targets"]["lambda-1769"] = report["targets"]["lambda-512"]
    for row in report["rows"]:
        if row["target"] == "lambda-512":
            report["rows"].append({**row, "target": "lambda-1769"})
    apply_report(bundle, report)
    manifest = read_manifest(bundle)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1536")
    assert measured_target(manifest, ("lambda", "cpu")) == "lambda-1769"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    assert measured_target(manifest, ("lambda", "cpu")) == "lambda-512"
    assert measured_target(manifest, ("apple-m",)) is None


def test_cli_bench_apply_records_and_reports_the_choice(bundle_copy):
    code, stdout, err = run([
        "bench", str(bundle_copy), "--target", "cpu", "--artifact", "onnx", "--artifact",
        "onnx-int8", "--repeats", "10", "--cold-runs", "1", "--no-optimum", "--apply", "-q",
    ])  # fmt: skip
    assert code == 0, err
    assert "interleaved rounds" in stdout and "onnx-int8 is" in err
    assert "recorded figures for cpu" in err and "load` now picks" in err
    data = json.loads((bundle_copy / "manifest.json").read_text())
    assert set(data["benchmarks"]["cpu"]["artifacts"]) == {"onnx", "onnx-int8"}
    code, stdout, _ = run(["inspect", str(bundle_copy)])
    assert code == 0 and "bench cpu (" in stdout and "onnx-int8 p50" in stdout


def test_an_engine_failure_or_a_wrong_shape_is_a_one_line_model_error(exported, monkeypatch):
    with load(exported[1], artifact="onnx") as rt:
        monkeypatch.setattr(rt.backend, "logits", lambda ids, mask: np.zeros((0, 3), np.float32))
        with pytest.raises(ModelError, match=r"'onnx' \(onnxruntime\) returned logits of shape"):
            rt.predict("where is my order")

        def broken(ids, mask):
            raise RuntimeError("Exception from node.cpp\n[CPU] could not create a primitive")

        monkeypatch.setattr(rt.backend, "logits", broken)
        with pytest.raises(ModelError, match=r"failed on this host: \[CPU\] could not create"):
            rt.predict_batch(["a", "b"])
