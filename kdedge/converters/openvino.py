"""OpenVINO IR artifacts: FP32 through ``openvino.convert_model``, INT8 through NNCF.

``openvino.convert_model`` is the converter optimum-intel calls under the hood; calling it
directly on the wrapped torch model gives the same IR without optimum's hub look-ups.

- ``openvino``: FP32 IR (weights kept in FP32; ``save_model`` would default to FP16).
- ``openvino-int8``: ``nncf.quantize`` (transformer preset, SmoothQuant) with activation
  statistics from the calibration texts: int8 weights and activations.
- ``openvino-int8-wo``: ``nncf.compress_weights`` INT8 (asymmetric, per channel): int8
  weights, FP32 activations; no data needed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nncf
import openvino as ov

from kdedge.converters.base import Converted, ConvertInput, Tolerance
from kdedge.converters.trace import example_batch, graph_of, numpy_batches, quiet_tracing
from kdedge.errors import ConfigError, ModelError

MODEL_FILE = "model.xml"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NNCF also logs statistics tables through its own logger."""
    nncf.set_log_level(logging.ERROR)
    with quiet_tracing():
        yield


def _fp32_model(inp: ConvertInput) -> Any:
    """Convert the torch classifier to an in-memory ov.Model with named inputs/outputs."""
    clf = inp.classifier
    example = example_batch(clf, inp.inputs)
    with quiet_tracing():
        try:
            model = ov.convert_model(
                graph_of(clf.model.eval().float().cpu(), inp.inputs), example_input=example
            )
        except Exception as exc:
            raise ModelError(f"openvino.convert_model failed for {clf.path}: {exc}") from exc
    for port, name in zip(model.inputs, inp.inputs, strict=True):
        port.get_tensor().set_names({name})
    model.outputs[0].get_tensor().set_names({"logits"})
    return model


def _save(model: Any, out_dir: Path) -> list[Path]:
    xml = out_dir / MODEL_FILE
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return [xml, xml.with_suffix(".bin")]


class OpenVinoFP32:
    name, format, precision, backend = "openvino", "openvino", "fp32", "openvino"
    tolerance = Tolerance(max_abs_logit=1e-3, min_agreement=1.0, max_accuracy_drop=0.05)
    needs_calibration = False
    target_hints = ("intel-cpu", "cpu")

    def convert(self, inp: ConvertInput, out_dir: Path) -> Converted:
        return Converted(_save(_fp32_model(inp), out_dir), {"converter": "openvino.convert_model"})


class OpenVinoInt8Static:
    name, format, precision, backend = "openvino-int8", "openvino", "int8", "openvino"
    tolerance = Tolerance(max_abs_logit=2.5, min_agreement=0.9, max_accuracy_drop=1.5)
    needs_calibration = True
    target_hints = ("intel-cpu",)

    def convert(self, inp: ConvertInput, out_dir: Path) -> Converted:
        if not inp.calibration_texts:
            raise ConfigError(
                f"{self.name} needs --calibration-data (held-out texts for activation "
                "statistics); or choose openvino-int8-wo (weights only), which needs none"
            )
        texts = list(inp.calibration_texts)[: inp.options.calibration_size]
        batches = numpy_batches(inp.classifier, texts, inputs=inp.inputs)
        feeds = [[f[n] for n in inp.inputs] for f in batches]
        with _quiet():
            model = nncf.quantize(
                _fp32_model(inp),
                nncf.Dataset(feeds),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(feeds),
            )
        return Converted(
            _save(model, out_dir),
            {"quantization": "nncf.quantize (transformer)", "calibration_texts": len(feeds)},
        )


class OpenVinoInt8WeightOnly:
    name, format, precision, backend = "openvino-int8-wo", "openvino", "int8-weights", "openvino"
    tolerance = Tolerance(max_abs_logit=1.0, min_agreement=0.95, max_accuracy_drop=1.0)
    needs_calibration = False
    target_hints = ("intel-cpu", "cpu")

    def convert(self, inp: ConvertInput, out_dir: Path) -> Converted:
        with _quiet():
            model = nncf.compress_weights(_fp32_model(inp), mode=nncf.CompressWeightsMode.INT8_ASYM)
        return Converted(_save(model, out_dir), {"quantization": "nncf.compress_weights INT8_ASYM"})
