"""OpenVINO backend: compiles an IR (.xml + .bin) for the CPU.

Inference precision is pinned to f32: on CPUs with bf16 units OpenVINO would otherwise run
FP32 models in bf16, and the export's parity evidence would no longer describe what runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from kdedge.errors import ModelError
from kdedge.extras import require


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, path: Path, *, threads: int | None = None, device: str = "CPU") -> None:
        ov = require("openvino", "openvino", "Running OpenVINO artifacts")
        config: dict[str, object] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(path)), device, config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long texts
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"OpenVINO cannot load {path}: {first}") from exc
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self._local = threading.local()  # one infer request per thread: requests are not shared

    def logits(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = (
                np.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            )
        result = request.infer([feed[name] for name in self.input_names])
        return np.asarray(result[self.compiled.outputs[0]], dtype=np.float32)
