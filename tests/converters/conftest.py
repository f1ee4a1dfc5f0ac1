"""One real export of the tiny teacher to every format, shared by the converter tests."""

from __future__ import annotations

from pathlib import Path

import pytest

ALL_FORMATS = (
    "onnx",
    "onnx-int8",
    "onnx-int8-static",
    "openvino",
    "openvino-int8",
    "openvino-int8-wo",
    "gguf-f16",
    "gguf-q8_0",
    "gguf-q4_k_m",
)


@pytest.fixture(scope="session")
def exported(tiny_teacher, data_dir, tmp_path_factory):
    """(report, bundle dir) for the tiny teacher in all nine formats."""
    from kdedge.converters import export_bundle

    out = tmp_path_factory.mktemp("bundle") / "bundle"
    report = export_bundle(
        tiny_teacher,
        ALL_FORMATS,
        out,
        eval_data=data_dir / "test.jsonl",
        calibration_data=data_dir / "validation.jsonl",
    )
    return report, out


@pytest.fixture
def bundle_copy(exported, tmp_path) -> Path:
    """A private copy of the bundle that a test may damage."""
    import shutil

    dst = tmp_path / "bundle"
    shutil.copytree(exported[1], dst)
    return dst
