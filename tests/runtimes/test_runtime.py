"""The runtime on real exported bundles: selection, calibrated predictions, every backend,
thread safety, and the errors a user sees."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kdedge.errors import ConfigError, ModelError
from kdedge.runtimes import load
from kdedge.runtimes.bundle import read_manifest
from kdedge.runtimes.runtime import softmax
from kdedge.runtimes.selection import choose_artifact

TEXTS = [
    "where is my order please",
    "i want to return the damaged book",
    "this is fraud call my lawyer",
    "what is the weather",
    "hello",
    "return volume 1 but where is my order right now",
]


@pytest.fixture(scope="module")
def bundle(exported):
    return exported[1]


@pytest.fixture(scope="module")
def rt(bundle):
    with load(bundle, artifact="onnx") as runtime:
        yield runtime


def test_load_picks_the_fastest_passing_artifact_for_the_host(bundle):
    manifest = read_manifest(bundle)
    choice = choose_artifact(manifest, tags=("cpu",))
    cpu = [a for a in manifest.artifacts if "cpu" in a.target_hints and a.status == "passed"]
    assert choice.artifact.parity["latency_ms_p50"] == min(a.parity["latency_ms_p50"] for a in cpu)
    assert "cpu" in choice.why
    intel = choose_artifact(manifest, tags=("intel-cpu",))
    assert intel.artifact.backend == "openvino"
    assert choose_artifact(manifest, backend="llamacpp").artifact.format == "gguf"


def test_predict_returns_calibrated_probabilities(rt):
    p = rt.predict("where is my order please")
    assert p.label in rt.labels and p.route in ("answer", "clarify", "fallback")
    logits = rt.logits(["where is my order please"])
    expected = softmax(logits, rt.temperature)[0]
    np.testing.assert_allclose(p.probs, expected, rtol=1e-6)
    assert p.confidence == pytest.approx(float(expected.max()))
    assert abs(p.probs.sum() - 1) < 1e-9
    assert p.top_k(2)[0] == (p.student_label, pytest.approx(p.confidence))
    d = p.to_dict(probs=True)
    assert set(d["probs"]) == set(rt.labels)
    json.dumps(d)  # JSON-ready


def test_batch_equals_single_predictions(rt):
    batch = rt.predict_batch(TEXTS)
    for text, p in zip(TEXTS, batch, strict=True):
        single = rt.predict(text)
        assert single.label == p.label
        np.testing.assert_allclose(single.probs, p.probs, atol=1e-5)


def test_dynamic_int8_runs_one_message_at_a_time(bundle):
    """Dynamic INT8 takes activation ranges over the batch: neighbours must not matter."""
    with load(bundle, artifact="onnx-int8") as rt:
        assert rt.row_by_row
        alone = rt.probabilities([TEXTS[0]])[0]
        with_neighbours = rt.probabilities([TEXTS[0], "x " * 30])[0]
        np.testing.assert_array_equal(alone, with_neighbours)


@pytest.mark.parametrize("name", ["onnx-int8", "openvino", "openvino-int8-wo", "gguf-q8_0"])
def test_every_backend_serves_the_bundle(bundle, rt, name):
    with load(bundle, artifact=name) as other:
        assert other.artifact.name == name
        reference = rt.probabilities(TEXTS)
        probs = other.probabilities(TEXTS)
        agreement = (probs.argmax(1) == reference.argmax(1)).mean()
        assert agreement >= 5 / 6
        assert np.abs(probs - reference).max() < 0.25


@pytest.mark.parametrize("name", ["onnx", "onnx-int8", "openvino", "gguf-f16"])
def test_threads_predicting_at_once_match_serial(bundle, name):
    texts = TEXTS * 8
    with load(bundle, artifact=name, threads=1) as rt:
        serial = [rt.predict(t, route=False) for t in texts]
        with ThreadPoolExecutor(max_workers=8) as pool:
            parallel = list(pool.map(lambda t: rt.predict(t, route=False), texts))
    for a, b in zip(serial, parallel, strict=True):
        assert a.label == b.label
        np.testing.assert_array_equal(a.probs, b.probs)


def test_route_false_always_answers(rt):
    for p in rt.predict_batch(TEXTS, route=False):
        assert p.route == "answer" and p.reason == "unrouted"


def test_a_policy_from_a_dict_file_or_fit_report(bundle, tmp_path):
    policy = {"confidence_threshold": 1.0, "low_confidence_action": "clarify"}
    with load(bundle, artifact="onnx", policy=policy) as rt:
        p = rt.predict("hello")
        assert p.route == "clarify" and p.clarify.startswith("Just to check")
    report = tmp_path / "fit.json"
    report.write_text(json.dumps({"policy": {**policy, "confidence_threshold": 0.0}}))
    with load(bundle, artifact="onnx", policy=report) as rt:
        assert rt.predict("hello").route == "answer"


def test_runtime_import_stays_torch_free(bundle):
    import subprocess
    import sys

    code = (
        "import sys\nfrom kdedge.runtimes import load\n"
        f"rt = load({str(bundle)!r}, artifact='onnx-int8')\n"
        "p = rt.predict('where is my order')\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert not loaded & {"torch", "transformers", "optimum", "click", "rich", "openvino"}


# -- errors ----------------------------------------------------------------------------------


def test_unknown_artifact_lists_the_known_ones(bundle):
    with pytest.raises(ModelError, match=r"no artifact 'tflite'.*onnx-int8"):
        load(bundle, artifact="tflite")


def test_a_damaged_artifact_is_refused_before_loading(bundle_copy):
    onnx = next((bundle_copy / "onnx-int8").glob("*.onnx"))
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load(bundle_copy, artifact="onnx-int8")
    with load(bundle_copy, artifact="onnx") as rt:  # the others still load
        assert rt.predict("hello").label


def test_no_runnable_artifact_names_the_extra(bundle, monkeypatch):
    import kdedge.runtimes.selection as selection

    monkeypatch.setattr(selection, "engine_installed", lambda backend: False)
    with pytest.raises(ModelError, match=r"pip install 'kdedge\[onnx\]'"):
        load(bundle)


def test_a_failed_artifact_is_used_only_when_named(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        a["status"] = "failed" if a["name"] != "gguf-f16" else "passed"
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    assert load(bundle_copy, verify=False).artifact.name == "gguf-f16"
    rt = load(bundle_copy, artifact="onnx", verify=False)
    assert "failed" in rt.why


def test_bad_policy_and_risk_labels_are_config_errors(bundle, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key.*confidence"):
        load(bundle, policy={"confidence": 0.3})
    with pytest.raises(ConfigError, match=r"risk label.*not labels"):
        load(bundle, policy={"risk_labels": ["nope"]})
    with pytest.raises(ConfigError, match="does not exist"):
        load(bundle, policy=tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load(bundle, policy=tmp_path / "bad.json")


def test_predict_rejects_a_bare_string_for_batches(rt):
    with pytest.raises(TypeError, match="predict\\(\\)"):
        rt.predict_batch("hello")


def test_not_a_bundle(tmp_path):
    with pytest.raises(ModelError, match="not a directory"):
        load(tmp_path / "nothing")
