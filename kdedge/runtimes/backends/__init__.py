"""Backends run one artifact: token ids in, logits out. One module per inference engine.

Each backend is imported only when a bundle asks for it, so an ONNX bundle never loads
OpenVINO or llama.cpp, and none of them loads torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from kdedge.errors import ConfigError


@runtime_checkable
class Backend(Protocol):
    """An opened artifact, ready to run.

    Constructed once per artifact (loading and compiling happen there, not per call);
    :meth:`logits` is then called any number of times, from any thread.
    """

    name: str

    def logits(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Raw (uncalibrated) logits [B, C] as float32 for int64 ids and mask [B, L].

        ``token_type_ids`` [B, L] are a cross-encoder's segment ids; None means all zero.
        """
        ...


# backend name -> ("module:class", extra that installs its engine)
BACKENDS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("kdedge.runtimes.backends.ort:OnnxRuntimeBackend", "onnx"),
    "openvino": ("kdedge.runtimes.backends.openvino:OpenVinoBackend", "openvino"),
    "llamacpp": ("kdedge.runtimes.backends.llamacpp:LlamaCppBackend", "llamacpp"),
}


def open_backend(name: str, path: str | Path, *, threads: int | None = None) -> Backend:
    """Open the artifact file ``path`` with backend ``name``."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend '{name}'; known: {', '.join(BACKENDS)}")
    module, _, attr = BACKENDS[name][0].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(Path(path), threads=threads)
