"""Every format round-trips on a tiny trained model, with parity evidence in the manifest."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ALL_FORMATS


def test_every_format_passes_its_tolerance(exported):
    report, _ = exported
    by_name = {r.name: r for r in report.results}
    assert list(by_name) == list(ALL_FORMATS)
    for r in report.results:
        assert r.status == "passed", f"{r.name}: {r.reason}"
        assert r.shipped
        p = r.parity
        assert p.probe_size >= 13 and p.eval_size > 0
        assert p.max_abs_logit <= p.tolerance.max_abs_logit
        assert p.accuracy is not None and p.ece is not None
    fp32 = by_name["onnx"].parity
    assert fp32.max_abs_logit < 1e-3 and fp32.agreement == 1.0
    assert by_name["openvino"].parity.max_abs_logit < 1e-3


def test_quantized_artifacts_are_smaller(exported):
    # a hidden-32 model is mostly graph, not weights: the real ratios are in the docs
    sizes = {r.name: r.size_bytes for r in exported[0].results}
    assert sizes["onnx-int8"] < sizes["onnx"]
    assert sizes["openvino-int8-wo"] < sizes["openvino"]
    assert sizes["gguf-q8_0"] < sizes["gguf-f16"]


def test_gguf_keeps_the_pooler_and_classifier(exported):
    from kdedge.converters.gguf import tensor_types

    _, bundle = exported
    types = tensor_types(bundle / "gguf-f16" / "model.gguf")
    for name in ("cls.weight", "cls.bias", "cls.output.weight", "cls.output.bias"):
        assert name in types
    details = {r.name: r.details for r in exported[0].results}
    assert details["gguf-q8_0"]["tensor_types"].get("Q8_0", 0) > 0
    # hidden size 32 is not a multiple of 256: Q4_K_M must report its fallbacks
    assert details["gguf-q4_k_m"]["fallbacks"]
    q4 = next(r for r in exported[0].results if r.name == "gguf-q4_k_m")
    assert any("instead of" in w for w in q4.warnings)


def test_manifest_describes_and_verifies_the_bundle(exported, tiny_teacher):
    from kdedge.data.labels import LabelSet
    from kdedge.runtimes.bundle import SCHEMA_VERSION, load_bundle

    _, bundle = exported
    manifest = load_bundle(bundle)
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.labels == LabelSet.load(tiny_teacher).names
    assert manifest.max_length == 32
    assert [a.name for a in manifest.artifacts] == list(ALL_FORMATS)
    for a in manifest.artifacts:
        assert a.parity["passed"] and a.files[0].sha256 and a.size_bytes > 0
    assert manifest.provenance["source_sha256"]
    assert "confidence_threshold" in manifest.router
    assert "api_key" not in str(manifest.to_dict()).lower()


@pytest.mark.parametrize("name", ["onnx", "onnx-int8", "openvino", "openvino-int8-wo"])
def test_artifacts_run_without_torch_side_code(exported, tiny_teacher, name):
    """The runtime path (tokenizer.json + backend) agrees with the torch model's argmax."""
    import torch

    from kdedge.distill.models import load_classifier
    from kdedge.runtimes.backends import open_backend
    from kdedge.runtimes.bundle import load_bundle
    from kdedge.runtimes.tokenizer import Tokenizer

    _, bundle = exported
    manifest = load_bundle(bundle, artifacts=[name])
    artifact = manifest.artifact(name)
    tok = Tokenizer(bundle / manifest.tokenizer.path, manifest.max_length)
    texts = ["where is my order", "cancel my order please", "what is the weather"]
    ids, mask = tok(texts)
    got = open_backend(artifact.backend, bundle / artifact.main_file).logits(ids, mask)
    clf = load_classifier(tiny_teacher)
    with torch.inference_mode():
        ref = clf.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    assert np.array_equal(got.argmax(1), ref.logits.numpy().argmax(1))


def test_llamacpp_backend_in_process(exported):
    from kdedge.runtimes.backends import open_backend
    from kdedge.runtimes.bundle import load_bundle
    from kdedge.runtimes.tokenizer import Tokenizer

    _, bundle = exported
    manifest = load_bundle(bundle, artifacts=["gguf-q8_0"])
    tok = Tokenizer(bundle / manifest.tokenizer.path, manifest.max_length)
    backend = open_backend("llamacpp", bundle / manifest.artifact("gguf-q8_0").main_file)
    logits = backend.logits(*tok(["where is my order", "hi"]))
    assert logits.shape == (2, len(manifest.labels))
    assert np.isfinite(logits).all()
