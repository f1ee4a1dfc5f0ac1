"""Converters: torch classifier -> verified ONNX / OpenVINO / GGUF artifacts in a bundle.

Heavy dependencies (torch, onnx, openvino, gguf) load only when an export runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdedge.converters.export import ExportReport, export_bundle
    from kdedge.converters.registry import FORMATS, FormatSpec, get_format

__all__ = ["FORMATS", "ExportReport", "FormatSpec", "export_bundle", "get_format"]

_LAZY = {
    "export_bundle": "kdedge.converters.export",
    "ExportReport": "kdedge.converters.export",
    "FORMATS": "kdedge.converters.registry",
    "FormatSpec": "kdedge.converters.registry",
    "get_format": "kdedge.converters.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kdedge.converters' has no attribute {name!r}")
