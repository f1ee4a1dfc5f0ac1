"""A classifier's routed prediction: what ``predict`` returns and ``/predict`` sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from kdedge.runtimes.fallback_target import FallbackAnswer


@dataclass(frozen=True)
class Prediction:
    """One routed prediction.

    ``label`` is the final answer: the student's, or the teacher's after a fallback.
    ``confidence`` and ``probs`` are always the student's calibrated probabilities.
    """

    label: str
    confidence: float
    probs: np.ndarray = field(repr=False)  # [C] calibrated, in the order of labels
    labels: tuple[str, ...] = field(repr=False)
    route: str = "answer"  # answer | clarify | fallback
    reason: str = "confident"
    student_label: str = ""
    source: str = "student"  # student | teacher
    risk: float = 0.0
    risk_hits: tuple[str, ...] = ()
    candidates: tuple[tuple[str, float], ...] = ()
    clarify: str | None = None  # the question to ask when route == "clarify"
    fallback: FallbackAnswer | None = None
    fallback_error: str | None = None  # the failure kind when the teacher call failed
    latency_ms: float = 0.0
    artifact: str = ""
    id: str = ""

    def top_k(self, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs)[:k]
        return [(self.labels[i], float(self.probs[i])) for i in order]

    def to_dict(self, *, top_k: int = 3, probs: bool = False) -> dict[str, Any]:
        """JSON-ready view (what ``kdedge predict --json`` and ``/predict`` return)."""
        d: dict[str, Any] = {
            "id": self.id,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "route": self.route,
            "reason": self.reason,
            "student_label": self.student_label,
            "source": self.source,
            "risk": round(self.risk, 6),
            "top_k": [{"label": lbl, "prob": round(p, 6)} for lbl, p in self.top_k(top_k)],
            "latency_ms": round(self.latency_ms, 3),
            "artifact": self.artifact,
        }
        if self.risk_hits:
            d["risk_hits"] = list(self.risk_hits)
        if self.clarify is not None:
            d["clarify"] = self.clarify
        if self.fallback is not None:
            d["fallback"] = self.fallback.to_dict()
        if self.fallback_error is not None:
            d["fallback_error"] = self.fallback_error
        if probs:
            d["probs"] = {
                lbl: round(float(p), 6) for lbl, p in zip(self.labels, self.probs, strict=True)
            }
        return d
