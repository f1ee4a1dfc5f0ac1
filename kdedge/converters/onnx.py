"""ONNX artifacts: FP32 through ``torch.onnx.export`` and INT8 through onnxruntime.

- ``onnx``: the dynamo exporter (``torch.export`` + onnxscript), dynamic batch and sequence
  axes, weights inside the one file unless the model passes 1.5 GB.
- ``onnx-int8``: ``quantize_dynamic``: int8 weights for MatMul and the embedding Gather,
  activations quantized on the fly; needs no data.
- ``onnx-int8-static``: ``quantize_static`` in QDQ format with activation ranges measured
  on the calibration texts; weights per channel unless ``--per-tensor``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from kdedge.converters.base import Converted, ConvertInput, Tolerance
from kdedge.converters.trace import example_batch, graph_of, numpy_batches, quiet_tracing
from kdedge.errors import ConfigError, ModelError

MODEL_FILE = "model.onnx"
SINGLE_FILE_LIMIT = 1_500_000_000  # protobuf caps a file at 2 GB; stay well below it
INT8_OPS = ["MatMul", "Gather"]


def export_fp32(inp: ConvertInput, path: Path) -> Path:
    """Export the classifier to ``path``; reused by the INT8 converters as their input."""
    clf = inp.classifier
    model = graph_of(clf.model.eval().float().cpu(), inp.inputs)
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence")
    shapes = {name: {0: batch, 1: sequence} for name in inp.inputs}
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet_tracing():
        try:
            torch.onnx.export(
                model,
                example_batch(clf, inp.inputs),
                str(path),
                input_names=list(inp.inputs),
                output_names=["logits"],
                dynamic_shapes=shapes,
                opset_version=inp.options.opset,
                dynamo=True,
                external_data=params > SINGLE_FILE_LIMIT,
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many internal error types
            raise ModelError(f"torch.onnx.export failed for {clf.path}: {exc}") from exc
    return path


def _fp32_source(inp: ConvertInput) -> Path:
    """The FP32 graph, exported once per export run and shared by the INT8 converters."""
    path = inp.scratch("onnx-fp32") / MODEL_FILE
    if not path.is_file():
        export_fp32(inp, path)
    return path


def _files(out_dir: Path) -> list[Path]:
    main = out_dir / MODEL_FILE
    return [main, *sorted(p for p in out_dir.iterdir() if p != main)]


class OnnxFP32:
    name, format, precision, backend = "onnx", "onnx", "fp32", "onnxruntime"
    tolerance = Tolerance(max_abs_logit=1e-3, min_agreement=1.0, max_accuracy_drop=0.05)
    needs_calibration = False
    target_hints = ("cpu", "lambda", "cuda", "apple-m")

    def convert(self, inp: ConvertInput, out_dir: Path) -> Converted:
        source = _fp32_source(inp)
        for f in source.parent.iterdir():
            shutil.copy2(f, out_dir / f.name)
        return Converted(_files(out_dir), {"exporter": "torch.onnx.export(dynamo=True)"})


class OnnxInt8Dynamic:
    name, format, precision, backend = "onnx-int8", "onnx", "int8", "onnxruntime"
    # int8 moves logits by up to a few tenths; what must hold is the decision and accuracy
    tolerance = Tolerance(max_abs_logit=1.5, min_agreement=0.95, max_accuracy_drop=1.0)
    needs_calibration = False
    target_hints = ("cpu", "lambda")

    def convert(self, inp: ConvertInput, out_dir: Path) -> Converted:
        ops = INT8_OPS if inp.options.int8_embeddings is not False else ["MatMul"]
        with quiet_tracing():
            quantize_dynamic(
                _fp32_source(inp),
                out_dir / MODEL_FILE,
                op_types_to_quantize=ops,
                per_channel=inp.options.per_channel,
                weight_type=QuantType.QInt8,
            )
        return Converted(
            _files(out_dir),
            {
                "quantization": "dynamic",
                "weight_type": "QInt8",
                "per_channel": inp.options.per_channel,
                "ops": ops,
            },
        )


class _Reader(CalibrationDataReader):
    """onnxruntime's CalibrationDataReader over the calibration texts, one text per call."""

    def __init__(self, inp: ConvertInput) -> None:
        texts = list(inp.calibration_texts)[: inp.options.calibration_size]
        self._feeds: Iterator[dict] = numpy_batches(
            inp.classifier, texts, batch_size=1, inputs=inp.inputs
        )

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


class OnnxInt8Static:
    name, format, precision, backend = "onnx-int8-static", "onnx", "int8", "onnxruntime"
    tolerance = Tolerance(max_abs_logit=2.5, min_agreement=0.9, max_accuracy_drop=1.5)
    needs_calibration = True
    target_hints = ("cpu", "lambda")

    def convert(self, inp: ConvertInput, out_dir: Path) -> Converted:
        if not inp.calibration_texts:
            raise ConfigError(
                f"{self.name} needs --calibration-data (held-out texts to measure activation "
                "ranges); or choose onnx-int8, which needs none"
            )
        reader = _Reader(inp)
        with quiet_tracing():
            quantize_static(
                _fp32_source(inp),
                out_dir / MODEL_FILE,
                reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=INT8_OPS,
                per_channel=inp.options.per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
        return Converted(
            _files(out_dir),
            {
                "quantization": "static QDQ",
                "per_channel": inp.options.per_channel,
                "calibration_texts": min(len(inp.calibration_texts), inp.options.calibration_size),
                "ops": INT8_OPS,
            },
        )
