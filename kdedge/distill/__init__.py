"""Distillation: teachers, labeling, students, losses, training, calibration, gates.

The stage functions are exported lazily, so importing a numpy-only submodule (metrics,
calibration, gates) never imports torch::

    from kdedge.distill import teach, label_texts, distill, calibrate_model, evaluate_model
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "teach": "kdedge.distill.teacher",
    "label_texts": "kdedge.distill.labeling",
    "RiskRule": "kdedge.distill.labeling",
    "distill": "kdedge.distill.distillation",
    "StudentSpec": "kdedge.distill.distillation",
    "LossConfig": "kdedge.distill.losses",
    "TrainConfig": "kdedge.distill.trainer",
    "calibrate_model": "kdedge.distill.evaluation",
    "evaluate_model": "kdedge.distill.evaluation",
    "Gates": "kdedge.distill.gates",
    "resolve_device": "kdedge.distill.device",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kdedge.distill' has no attribute {name!r}")
    attr = "resolve" if name == "resolve_device" else name
    return getattr(importlib.import_module(_EXPORTS[name]), attr)
