"""Exporting a cross-encoder: pair inputs in the graph, parity by score and by ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdedge.errors import ConfigError, ModelError


def test_rerank_bundle_ships_every_pair_format_with_ranking_evidence(rerank_exported):
    report, bundle = rerank_exported
    assert report.task == "rerank"
    assert {r.name: r.status for r in report.results} == {
        "onnx": "passed",
        "onnx-int8": "passed",
        "onnx-int8-static": "passed",
        "openvino": "passed",
    }
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["task"] == "rerank"
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["router"] == {"min_score": -5.0, "low_score_action": "fallback"}
    fp32 = next(a for a in manifest["artifacts"] if a["name"] == "onnx")["parity"]
    assert fp32["probe_queries"] == 4 and fp32["eval_queries"] == 3
    assert fp32["max_abs_score"] < 1e-3
    assert fp32["kendall_tau"] > 0.999
    assert abs(fp32["ndcg10_drop"]) < 1e-6
    assert report.torch_metrics["ndcg@10"] == pytest.approx(fp32["ndcg10_torch"], abs=1e-6)
    # a reranker's embedding table stays FP32 in dynamic INT8 unless --int8-embeddings
    int8 = next(a for a in manifest["artifacts"] if a["name"] == "onnx-int8")
    assert int8["details"]["ops"] == ["MatMul"]


def test_segment_ids_reach_the_graph(rerank_exported, tiny_reranker):
    """A graph that ignored token_type_ids would score (q, p) as the single text "q p"."""
    import torch

    from kdedge.distill.models import load_classifier
    from kdedge.runtimes.backends import open_backend
    from kdedge.runtimes.tokenizer import Tokenizer

    _, bundle = rerank_exported
    clf = load_classifier(tiny_reranker)
    tok = Tokenizer(bundle / "tokenizer.json", clf.max_length)
    ids, mask, types = tok.pairs("where is my order", ["track my package", "tell me a joke"])
    assert types.any()
    engine = open_backend("onnxruntime", bundle / "onnx" / "model.onnx")
    with torch.inference_mode():
        want = clf.model.eval()(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            token_type_ids=torch.from_numpy(types),
        ).logits.numpy()
    np.testing.assert_allclose(engine.logits(ids, mask, types), want, atol=1e-4)
    zeros = engine.logits(ids, mask, np.zeros_like(types))
    assert np.abs(zeros - want).max() > 1e-4


def test_gguf_is_refused_for_a_cross_encoder(tiny_reranker, tmp_path):
    from kdedge.converters import export_bundle

    with pytest.raises(ConfigError, match="gguf-f16 cannot run a cross-encoder's pair inputs"):
        export_bundle(tiny_reranker, ["onnx", "gguf-f16"], tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_select_and_missing_calibration_are_clear_errors(tiny_reranker, tmp_path):
    from kdedge.converters import export_bundle

    with pytest.raises(ConfigError, match="--select applies to classifier bundles"):
        export_bundle(tiny_reranker, ["onnx"], tmp_path / "b", select_within=1.0)
    with pytest.raises(ConfigError, match="onnx-int8-static need --calibration-data"):
        export_bundle(tiny_reranker, ["onnx-int8-static"], tmp_path / "b")


def test_a_multi_output_model_marked_rerank_is_refused(tiny_teacher, tmp_path):
    import shutil

    from kdedge.converters import export_bundle

    model = tmp_path / "model"
    shutil.copytree(tiny_teacher, model)
    meta = json.loads((model / "kdedge.json").read_text())
    (model / "kdedge.json").write_text(json.dumps({**meta, "task": "rerank"}))
    with pytest.raises(ModelError, match="outputs; a reranker has one score"):
        export_bundle(model, ["onnx"], tmp_path / "b")


def test_a_malformed_eval_file_names_its_line(tiny_reranker, tmp_path):
    from kdedge.converters import export_bundle
    from kdedge.errors import DataError

    bad = tmp_path / "groups.jsonl"
    bad.write_text('{"query": "q", "candidates": [{"text": "a"}]}\n{"query": "q2"\n')
    with pytest.raises(DataError, match=r"groups\.jsonl:2"):
        export_bundle(tiny_reranker, ["onnx"], tmp_path / "b", eval_data=bad)
    assert not (tmp_path / "b").exists()
