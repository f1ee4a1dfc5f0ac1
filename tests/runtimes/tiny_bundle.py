"""A real intent bundle built in well under a second, without torch.

``tokenizer.json`` is a word-level ``tokenizers`` model; the ONNX graph sums one row of an
embedding table per token (masked), so each word votes for a label. Two words are poisoned
on purpose: ``poison`` has a NaN row, ``blowup`` a +inf row and ``huge`` a row of 3e38, so
``huge huge`` overflows to +inf inside the engine. A text holding any of them makes the real
engine return non-finite logits, as a corrupted weight file does. With ``openvino=True``
the graph is also converted to OpenVINO IR (kept in FP32: FP16 compression would clamp the
poisoned weights to 65504), a second artifact.

The manifest is written through the bundle classes, as ``kdedge export`` writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdedge.runtimes.bundle import TOKENIZER, Artifact, FileEntry, Manifest, write_manifest

LABELS = ("order_tracking", "escalation", "faq")
VOTES = {  # word -> the label it votes for
    "order": 0,
    "track": 0,
    "package": 0,
    "where": 0,
    "fraud": 1,
    "lawyer": 1,
    "sue": 1,
    "hours": 2,
    "gift": 2,
    "card": 2,
}
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
POISON = {"poison": np.nan, "blowup": np.inf, "huge": 3e38}  # "huge huge" overflows to inf


def _vocab() -> dict[str, int]:
    words = [*SPECIALS, *VOTES, *POISON, "my", "is", "this", "call", "the", "a"]
    return {w: i for i, w in enumerate(words)}


def write_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = _vocab()
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.save(str(path))


def embedding() -> np.ndarray:
    vocab = _vocab()
    table = np.zeros((len(vocab), len(LABELS)), dtype=np.float32)
    for word, label in VOTES.items():
        table[vocab[word], label] = 3.0
    for word, value in POISON.items():
        table[vocab[word], :] = value
    return table


def write_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["rows"], axis=0),  # [B, L, C]
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),  # [B, L, 1]
        helper.make_node("Mul", ["rows", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["logits"], keepdims=0),  # [B, C]
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-intent",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])],
        initializer=[
            numpy_helper.from_array(embedding(), "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_tiny_bundle(
    out: Path, *, openvino: bool = False, temperature: float = 1.0, router: dict | None = None
) -> Path:
    """Write the bundle at ``out`` (a new folder) and return it."""
    out.mkdir(parents=True)
    write_tokenizer(out / TOKENIZER)
    (out / "onnx").mkdir()
    write_onnx(out / "onnx" / "model.onnx")
    artifacts = [
        Artifact(
            name="onnx",
            format="onnx",
            precision="fp32",
            backend="onnxruntime",
            files=(FileEntry.of(out, "onnx/model.onnx"),),
            target_hints=("cpu",),
            parity={"latency_ms_p50": 0.1, "accuracy_drop_points": 0.0},
        )
    ]
    if openvino:
        import openvino as ov

        (out / "openvino").mkdir()
        model = ov.convert_model(str(out / "onnx" / "model.onnx"))
        ov.save_model(model, out / "openvino/model.xml", compress_to_fp16=False)
        artifacts.append(
            Artifact(
                name="openvino",
                format="openvino",
                precision="fp32",
                backend="openvino",
                files=(
                    FileEntry.of(out, "openvino/model.xml"),
                    FileEntry.of(out, "openvino/model.bin"),
                ),
                target_hints=("cpu",),
                parity={"latency_ms_p50": 0.2, "accuracy_drop_points": 0.0},
            )
        )
    manifest = Manifest(
        task="intent",
        labels=LABELS,
        max_length=32,
        temperature=temperature,
        artifacts=tuple(artifacts),
        tokenizer=FileEntry.of(out, TOKENIZER),
        router=router
        if router is not None
        else {
            "confidence_threshold": 0.5,
            "risk_threshold": 0.5,
            "risk_labels": ["escalation"],
            "low_confidence_action": "clarify",
            "max_fallback_rate": None,
        },
        provenance={"role": "student", "source_model": "tests/runtimes/tiny_bundle.py"},
    )
    write_manifest(out, manifest)
    return out
