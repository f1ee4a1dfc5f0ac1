"""Damaged bundles, bad requests and failed tolerances: one clear error, nothing half-written."""

from __future__ import annotations

import json
import shutil

import pytest

from kdedge.errors import ConfigError, MissingDependencyError, ModelError


def _manifest(bundle):
    return json.loads((bundle / "manifest.json").read_text())


def _write(bundle, data):
    (bundle / "manifest.json").write_text(json.dumps(data))


def test_corrupted_artifact_is_caught_by_sha256(bundle_copy):
    from kdedge.runtimes.bundle import load_bundle

    target = bundle_copy / "onnx-int8" / "model.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"sha256.*corrupted"):
        load_bundle(bundle_copy)
    load_bundle(bundle_copy, artifacts=["onnx"])  # the other artifacts stay loadable


def test_truncated_artifact(bundle_copy):
    from kdedge.runtimes.bundle import load_bundle

    target = bundle_copy / "gguf-q8_0" / "model.gguf"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(ModelError, match="truncated"):
        load_bundle(bundle_copy)


def test_missing_artifact_file(bundle_copy):
    from kdedge.runtimes.bundle import load_bundle

    (bundle_copy / "openvino" / "model.bin").unlink()
    with pytest.raises(ModelError, match="missing from the bundle"):
        load_bundle(bundle_copy)


def test_manifest_from_a_newer_schema(bundle_copy):
    from kdedge.runtimes.bundle import read_manifest

    data = _manifest(bundle_copy)
    data["schema_version"] = 99
    _write(bundle_copy, data)
    with pytest.raises(ModelError, match=r"schema v99, newer.*pip install -U kdedge"):
        read_manifest(bundle_copy)


def test_manifest_that_is_not_json(bundle_copy):
    from kdedge.runtimes.bundle import read_manifest

    (bundle_copy / "manifest.json").write_text('{"kind": "kdedge-bundle", ')
    with pytest.raises(ModelError, match="not valid JSON"):
        read_manifest(bundle_copy)


@pytest.mark.parametrize(
    ("path", "message"),
    [("../outside.onnx", "escapes the bundle"), ("onnx/weights.pkl", "pickle-capable")],
)
def test_manifest_paths_are_confined_and_never_pickles(bundle_copy, path, message):
    from kdedge.runtimes.bundle import read_manifest

    data = _manifest(bundle_copy)
    data["artifacts"][0]["files"][0]["path"] = path
    _write(bundle_copy, data)
    with pytest.raises(ModelError, match=message):
        read_manifest(bundle_copy)


def test_not_a_bundle(tmp_path):
    from kdedge.runtimes.bundle import read_manifest

    with pytest.raises(ModelError, match=r"no manifest\.json"):
        read_manifest(tmp_path)


def test_unknown_format_lists_the_known_ones(tiny_teacher, tmp_path):
    from kdedge.converters import export_bundle

    with pytest.raises(ConfigError, match=r"unknown export format 'tflite'; known: onnx, "):
        export_bundle(tiny_teacher, ["tflite"], tmp_path / "b")


def test_static_int8_needs_calibration_data(tiny_teacher, tmp_path):
    from kdedge.converters import export_bundle

    with pytest.raises(ConfigError, match="onnx-int8-static need --calibration-data"):
        export_bundle(tiny_teacher, ["onnx-int8-static"], tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_existing_output_is_not_overwritten(tiny_teacher, tmp_path):
    from kdedge.converters import export_bundle

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        export_bundle(tiny_teacher, ["gguf-q8_0"], tmp_path / "b")
    assert (tmp_path / "b" / "keep.txt").read_text() == "mine"


def test_missing_extra_names_the_install_command(tiny_teacher, tmp_path, monkeypatch):
    import kdedge.converters.registry as registry

    def missing(module, extra, purpose):
        raise MissingDependencyError(module, extra, purpose)

    monkeypatch.setattr(registry, "require", missing)
    with pytest.raises(MissingDependencyError, match=r"pip install 'kdedge\[openvino\]'"):
        registry.load_converter("openvino-int8")


def test_labels_that_disagree_with_the_head(tiny_teacher, tmp_path):
    from kdedge.converters import export_bundle

    model = tmp_path / "model"
    shutil.copytree(tiny_teacher, model)
    labels = json.loads((model / "labels.json").read_text())
    labels["labels"].append("extra_label")
    (model / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(ModelError, match="labels but the model has"):
        export_bundle(model, ["gguf-q8_0"], tmp_path / "b")


def test_a_failed_artifact_is_not_shipped(tiny_teacher, data_dir, tmp_path, monkeypatch):
    from kdedge.converters import export_bundle
    from kdedge.converters.base import Tolerance
    from kdedge.converters.gguf import GgufQ8_0
    from kdedge.runtimes.bundle import load_bundle

    impossible = Tolerance(max_abs_logit=0.0, min_agreement=1.0, max_accuracy_drop=0.0)
    monkeypatch.setattr(GgufQ8_0, "tolerance", impossible)
    eval_data = data_dir / "test.jsonl"
    report = export_bundle(tiny_teacher, ["gguf-q8_0"], tmp_path / "b", eval_data=eval_data)
    (failed,) = report.failed
    assert failed.name == "gguf-q8_0" and not failed.shipped
    assert "max |Δlogit|" in failed.reason
    assert report.out_dir is None and not (tmp_path / "b").exists()

    kept = export_bundle(
        tiny_teacher, ["gguf-q8_0"], tmp_path / "k", eval_data=eval_data, keep_failed=True
    )
    assert kept.results[0].shipped
    manifest = load_bundle(tmp_path / "k")
    assert manifest.artifact("gguf-q8_0").status == "failed"
    assert manifest.artifact("gguf-q8_0").parity["passed"] is False


def test_select_fastest_within_ships_one(tiny_teacher, data_dir, tmp_path):
    from kdedge.converters import export_bundle
    from kdedge.runtimes.bundle import load_bundle

    report = export_bundle(
        tiny_teacher,
        ["openvino", "openvino-int8-wo"],
        tmp_path / "b",
        eval_data=data_dir / "test.jsonl",
        select_within=50.0,
    )
    chosen = report.selection["selected"]
    assert chosen in ("openvino", "openvino-int8-wo")
    assert set(report.selection["candidates"]) == {"openvino", "openvino-int8-wo"}
    manifest = load_bundle(tmp_path / "b")
    assert [a.name for a in manifest.artifacts] == [chosen]
    assert manifest.selection["selected"] == chosen


def test_select_needs_eval_data(tiny_teacher, tmp_path):
    from kdedge.converters import export_bundle

    with pytest.raises(ConfigError, match="needs --eval-data"):
        export_bundle(tiny_teacher, ["onnx"], tmp_path / "b", select_within=0.5)


def test_crash_mid_export_leaves_no_bundle(tiny_teacher, tmp_path, monkeypatch):
    from kdedge.converters import export_bundle
    from kdedge.converters.gguf import GgufQ8_0

    def boom(self, inp, out_dir):
        (out_dir / "partial.gguf").write_bytes(b"GGUF")
        raise RuntimeError("killed")

    monkeypatch.setattr(GgufQ8_0, "convert", boom)
    with pytest.raises(RuntimeError):
        export_bundle(tiny_teacher, ["gguf-q8_0"], tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".b.*"))


def test_llamacpp_rejection_is_an_error_not_a_crash(tmp_path):
    import numpy as np

    from kdedge.converters.base import Tolerance
    from kdedge.converters.parity import Reference, check

    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    ref = Reference(probe_ids=[[1, 2, 3]], probe_logits=np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ModelError, match=r"llama\.cpp rejected model\.gguf"):
        check("llamacpp", bad, ref, Tolerance(1, 1, 1), 3)


def test_gguf_refuses_non_bert_models(tmp_path):
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from kdedge.converters.base import ConvertInput
    from kdedge.converters.gguf import GgufF16
    from kdedge.data.labels import LabelSet
    from kdedge.distill.models import Classifier

    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    model = DistilBertForSequenceClassification(config)
    clf = Classifier(model, None, LabelSet(("a", "b")), {}, tmp_path)
    with pytest.raises(ConfigError, match=r"GGUF export supports bert.*'distilbert'"):
        GgufF16().convert(ConvertInput(clf, [], workdir=tmp_path), tmp_path)


def test_cli_export_and_inspect(exported, tiny_teacher, data_dir, tmp_path):
    from tests.cli.test_cli import run

    code, out, _ = run(["inspect", str(exported[1])])
    assert code == 0, out
    assert "Artifacts" in out and "onnx" in out and "passed" in out
    code, out, _ = run(["inspect", str(exported[1]), "--json"])
    names = [a["name"] for a in json.loads(out)["artifacts"]]
    assert "gguf-q4_k_m" in names and "onnx-int8" in names

    code, out, _ = run(
        [
            "export",
            str(tiny_teacher),
            "-f",
            "gguf-q8_0",
            "--out",
            str(tmp_path / "b"),
            "--eval-data",
            str(data_dir / "test.jsonl"),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(out)
    assert report["artifacts"][0]["status"] == "passed" and report["failed"] == []


def test_cli_errors_are_one_line(bundle_copy, tiny_teacher, tmp_path):
    from tests.cli.test_cli import run

    (bundle_copy / "tokenizer.json").write_text("{}")
    code, _, err = run(["inspect", str(bundle_copy)])
    assert code == 2 and "tokenizer.json" in err and "Traceback" not in err

    code, _, err = run(["export", str(tiny_teacher), "-f", "tflite", "--out", str(tmp_path / "x")])
    assert code == 2 and "known: onnx" in err

    code, _, err = run(
        ["export", str(tiny_teacher), "-f", "onnx", "--select", "slowest", "1", "--out", "x"]
    )
    assert code == 2 and "fastest-within" in err


def test_cli_exit_1_when_an_artifact_fails(tiny_teacher, tmp_path, monkeypatch):
    from kdedge.converters.base import Tolerance
    from kdedge.converters.gguf import GgufQ8_0
    from tests.cli.test_cli import run

    monkeypatch.setattr(GgufQ8_0, "tolerance", Tolerance(0.0, 1.0, 0.0))
    code, out, err = run(["export", str(tiny_teacher), "-f", "gguf-q8_0", "--out", str(tmp_path)])
    assert code == 1
    assert "gguf-q8_0 not shipped" in err and "no bundle written" in out
