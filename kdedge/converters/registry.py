"""The export formats kdedge knows: a lazy registry of converters.

Each entry names the class that implements it (``"module:attr"``), the extra that installs
its dependencies and a one-line summary, so ``kdedge export --help`` and error messages can
list formats without importing onnx, openvino or gguf. A third-party package adds a format
by exposing a :class:`FormatSpec` under the ``kdedge.formats`` entry-point group.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points

from kdedge.converters.base import Converter
from kdedge.errors import ConfigError
from kdedge.extras import require


@dataclass(frozen=True)
class FormatSpec:
    name: str
    entry: str  # "module:attr" of a Converter class
    # (Python package, kdedge extra that installs it) for the converter and its parity check
    requires: tuple[tuple[str, str], ...]
    summary: str


_ONNX = (("onnx", "onnx"), ("onnxscript", "onnx"), ("onnxruntime", "onnx"))
_OV = (("openvino", "openvino"),)
_OV_Q = (("openvino", "openvino"), ("nncf", "openvino"))
_GGUF = (("gguf", "gguf"), ("llama_cpp", "llamacpp"))

FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec("onnx", "kdedge.converters.onnx:OnnxFP32", _ONNX, "ONNX FP32 (onnxruntime)"),
        FormatSpec(
            "onnx-int8",
            "kdedge.converters.onnx:OnnxInt8Dynamic",
            _ONNX,
            "ONNX INT8, dynamic: int8 weights, activations quantized per call",
        ),
        FormatSpec(
            "onnx-int8-static",
            "kdedge.converters.onnx:OnnxInt8Static",
            _ONNX,
            "ONNX INT8, static QDQ: activation ranges from --calibration-data",
        ),
        FormatSpec("openvino", "kdedge.converters.openvino:OpenVinoFP32", _OV, "OpenVINO IR FP32"),
        FormatSpec(
            "openvino-int8",
            "kdedge.converters.openvino:OpenVinoInt8Static",
            _OV_Q,
            "OpenVINO INT8 via NNCF, static: activation ranges from --calibration-data",
        ),
        FormatSpec(
            "openvino-int8-wo",
            "kdedge.converters.openvino:OpenVinoInt8WeightOnly",
            _OV_Q,
            "OpenVINO IR with INT8 weights only via NNCF (no calibration data)",
        ),
        FormatSpec("gguf-f16", "kdedge.converters.gguf:GgufF16", _GGUF, "GGUF F16 (llama.cpp)"),
        FormatSpec("gguf-q8_0", "kdedge.converters.gguf:GgufQ8_0", _GGUF, "GGUF Q8_0 (llama.cpp)"),
        FormatSpec(
            "gguf-q4_k_m",
            "kdedge.converters.gguf:GgufQ4KM",
            _GGUF,
            "GGUF Q4_K_M (llama.cpp; rows not divisible by 256 use other types)",
        ),
    )
}


def _plugins() -> dict[str, FormatSpec]:
    found = {}
    for ep in entry_points(group="kdedge.formats"):
        spec = ep.load()
        if isinstance(spec, FormatSpec):
            found[spec.name] = spec
    return found


def known_formats() -> dict[str, FormatSpec]:
    return {**FORMATS, **_plugins()}


def get_format(name: str) -> FormatSpec:
    formats = known_formats()
    if name not in formats:
        raise ConfigError(f"unknown export format '{name}'; known: {', '.join(formats)}")
    return formats[name]


def load_converter(name: str) -> Converter:
    """Instantiate the converter for ``name``; a missing dependency names its extra."""
    spec = get_format(name)
    for module, extra in spec.requires:
        require(module, extra, f"Exporting '{name}'")
    module_name, _, attr = spec.entry.partition(":")
    return getattr(importlib.import_module(module_name), attr)()
