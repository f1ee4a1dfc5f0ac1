"""Which labels are rare, which one means out-of-scope: decided once, saved with the model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kdedge.data.labels import LabelSet
from kdedge.errors import ConfigError

OOS_NAMES = ("out_of_scope", "oos", "out-of-scope", "none_of_the_above")


@dataclass(frozen=True)
class Taxonomy:
    """``rare_labels`` get the rare-class term and gate; ``oos_label`` is the refusal class."""

    rare_labels: tuple[str, ...] = ()
    oos_label: str | None = None
    risk_labels: tuple[str, ...] = field(default=())

    @classmethod
    def infer(
        cls,
        data: Any,
        *,
        rare_labels: Sequence[str] | None = None,
        oos_label: str | None = None,
        risk_labels: Sequence[str] = (),
    ) -> Taxonomy:
        """Explicit choices win; otherwise a label is rare when its share of the training
        rows is below half the uniform share (1 / 2C), and the OOS label is found by name."""
        labels: LabelSet = data.labels
        for name in [*(rare_labels or ()), *risk_labels, *([oos_label] if oos_label else [])]:
            if name not in labels:
                raise ConfigError(f"label '{name}' is not in the data's labels: {labels.names}")
        if rare_labels is None:
            counts = Counter(e.label for e in data.train if e.label is not None)
            total = sum(counts.values())
            threshold = 0.5 / len(labels)
            rare_labels = [n for n in labels.names if counts.get(n, 0) / max(total, 1) < threshold]
        if oos_label is None:
            oos_label = next((n for n in OOS_NAMES if n in labels), None)
        return cls(tuple(rare_labels), oos_label, tuple(risk_labels))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Taxonomy:
        return cls(
            tuple(meta.get("rare_labels", ())),
            meta.get("oos_label"),
            tuple(meta.get("risk_labels", ())),
        )

    def to_meta(self) -> dict[str, Any]:
        return {
            "rare_labels": list(self.rare_labels),
            "oos_label": self.oos_label,
            "risk_labels": list(self.risk_labels),
        }
