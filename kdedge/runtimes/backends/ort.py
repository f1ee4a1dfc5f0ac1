"""onnxruntime backend: CPU by default, CUDA or CoreML when the installed build has them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdedge.errors import ModelError
from kdedge.extras import require

# Tried in this order; only those the installed onnxruntime offers are used.
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        providers: tuple[str, ...] | None = None,
    ) -> None:
        ort = require("onnxruntime", "onnx", "Running ONNX artifacts")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        available = set(ort.get_available_providers())
        chosen = [p for p in (providers or PREFERRED_PROVIDERS) if p in available]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.providers = self.session.get_providers()

    def logits(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = (
                np.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            )
        return self.session.run(None, {k: feed[k] for k in self.input_names})[0].astype(
            np.float32, copy=False
        )
