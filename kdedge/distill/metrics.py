"""Classification metrics from a probability matrix: accuracy, F1, rare/OOS recall, calibration.

Everything here is numpy only, so the torch-free runtime can score a bundle the same way
training scores a checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kdedge.distill.calibration import expected_calibration_error
from kdedge.distill.probability import negative_log_likelihood, validate_probs
from kdedge.errors import ConfigError, DataError

NONE_SLICE = "(none)"
"""The ``per_slice`` key for rows whose slice is None."""

REPORT_METRICS = (
    "accuracy",
    "macro_f1",
    "in_scope_accuracy",
    "rare_class_recall",
    "oos_precision",
    "oos_recall",
    "ece",
    "nll",
)
"""Top-level numeric fields of :class:`ClassificationReport` that gates and scores may use."""


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


@dataclass(frozen=True)
class ClassificationReport:
    """Every number kdedge reports for one evaluated split.

    Metrics that cannot be measured on the split (no rare rows, no OOS label) are None.
    ``oos_recall`` is None without OOS gold rows; ``oos_precision`` is None when there are
    neither OOS gold rows nor OOS predictions, and 0.0 when OOS rows exist but none is
    predicted OOS.
    """

    n: int
    accuracy: float
    macro_f1: float
    in_scope_accuracy: float | None
    rare_class_recall: float | None
    oos_precision: float | None
    oos_recall: float | None
    ece: float
    nll: float
    mean_confidence: float
    per_class: dict[str, dict[str, float | int]]
    most_confused: list[tuple[str, str, int]]
    per_slice: dict[str, dict[str, float | int]]
    oos_label: str | None = None
    rare_labels: tuple[str, ...] = ()
    ece_bins: int = 15

    def metrics(self) -> dict[str, float | None]:
        """The gateable metrics (:data:`REPORT_METRICS`), unrounded."""
        return {name: getattr(self, name) for name in REPORT_METRICS}

    def to_dict(self) -> dict:
        """A JSON-friendly dict; floats rounded to 6 decimals."""
        return {
            "n": self.n,
            **{name: _r(value) for name, value in self.metrics().items()},
            "mean_confidence": _r(self.mean_confidence),
            "ece_bins": self.ece_bins,
            "oos_label": self.oos_label,
            "rare_labels": list(self.rare_labels),
            "per_class": {
                label: {
                    "precision": _r(row["precision"]),
                    "recall": _r(row["recall"]),
                    "f1": _r(row["f1"]),
                    "support": int(row["support"]),
                }
                for label, row in self.per_class.items()
            },
            "most_confused": [
                {"gold": gold, "predicted": pred, "count": count}
                for gold, pred, count in self.most_confused
            ],
            "per_slice": {
                name: {"n": int(row["n"]), "accuracy": _r(row["accuracy"])}
                for name, row in self.per_slice.items()
            },
        }


def classification_report(
    probs: np.ndarray,
    gold: np.ndarray,
    labels: Sequence[str],
    *,
    oos_label: str | None = None,
    rare_labels: Sequence[str] = (),
    slices: Sequence[str | None] | None = None,
    ece_bins: int = 15,
    top_confusions: int = 10,
) -> ClassificationReport:
    """Score ``probs`` ``[N, C]`` against ``gold`` class indices; ``labels[i]`` names column i.

    Predictions are the argmax (first column on ties). Macro F1 averages over the labels
    present in gold or predictions, with 0 for undefined precision or recall (the
    convention of ``sklearn.metrics.f1_score(average="macro", zero_division=0)``).
    """
    p, g = validate_probs(probs, gold)
    n, c = p.shape
    labels = [str(label) for label in labels]
    if len(labels) != c:
        raise DataError(f"{len(labels)} labels given for {c} probability columns; they must match")
    index = {label: i for i, label in enumerate(labels)}
    if len(index) != len(labels):
        raise DataError(f"duplicate names in labels: {labels}")
    unknown = sorted(set(rare_labels) - set(index))
    if unknown:
        raise ConfigError(
            f"rare_labels {unknown} are not model labels; valid labels: {', '.join(labels[:12])}"
            f"{' ...' if len(labels) > 12 else ''}"
        )
    if isinstance(top_confusions, bool) or top_confusions < 0:
        raise ConfigError(f"top_confusions must be an integer >= 0; got {top_confusions!r}")
    if slices is not None and len(slices) != n:
        raise DataError(f"slices has {len(slices)} entries for {n} rows; give one per row")

    pred = p.argmax(axis=1)
    correct = pred == g
    confidence = p.max(axis=1)
    cm = np.bincount(g * c + pred, minlength=c * c).reshape(c, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(c), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(c), where=support > 0)
    f1_den = (support + predicted).astype(np.float64)
    f1 = np.divide(2 * tp, f1_den, out=np.zeros(c), where=f1_den > 0)
    present = (support > 0) | (predicted > 0)

    rare_mask = np.isin(g, [index[label] for label in rare_labels])
    rare_recall = float(correct[rare_mask].mean()) if rare_mask.any() else None

    oos_precision = oos_recall = None
    in_scope = float(correct.mean())
    if oos_label is not None and oos_label in index:
        k = index[oos_label]
        gold_pos, pred_pos = g == k, pred == k
        hits = int((gold_pos & pred_pos).sum())
        if gold_pos.any():
            oos_recall = hits / int(gold_pos.sum())
        if pred_pos.any():
            oos_precision = hits / int(pred_pos.sum())
        elif gold_pos.any():
            oos_precision = 0.0
        in_scope = float(correct[~gold_pos].mean()) if (~gold_pos).any() else None

    per_slice: dict[str, dict[str, float | int]] = {}
    if slices is not None:
        keys = np.array([NONE_SLICE if s is None else str(s) for s in slices], dtype=object)
        for key in sorted(set(keys)):
            mask = keys == key
            per_slice[key] = {"n": int(mask.sum()), "accuracy": float(correct[mask].mean())}

    off = cm.copy()
    np.fill_diagonal(off, 0)
    gi, pi = np.nonzero(off)
    pairs = sorted(zip(gi.tolist(), pi.tolist(), strict=True), key=lambda ij: (-off[ij], ij))
    most_confused = [(labels[i], labels[j], int(off[i, j])) for i, j in pairs[:top_confusions]]

    return ClassificationReport(
        n=n,
        accuracy=float(correct.mean()),
        macro_f1=float(f1[present].mean()),
        in_scope_accuracy=in_scope,
        rare_class_recall=rare_recall,
        oos_precision=oos_precision,
        oos_recall=oos_recall,
        ece=expected_calibration_error(p, g, n_bins=ece_bins),
        nll=negative_log_likelihood(p, g),
        mean_confidence=float(confidence.mean()),
        per_class={
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        most_confused=most_confused,
        per_slice=per_slice,
        oos_label=oos_label,
        rare_labels=tuple(rare_labels),
        ece_bins=ece_bins,
    )


def rare_labels_by_frequency(label_counts: Mapping[str, int], max_share: float = 0.05) -> list[str]:
    """Labels whose share of all counted rows is below ``max_share``, sorted by name."""
    if isinstance(max_share, bool) or not 0 < max_share <= 1:
        raise ConfigError(f"max_share must be in (0, 1]; got {max_share!r} (e.g. 0.05 for 5%)")
    for label, count in label_counts.items():
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise DataError(f"label '{label}' has count {count!r}; counts must be integers >= 0")
    total = sum(int(count) for count in label_counts.values())
    if total == 0:
        raise DataError("label_counts counts no rows; pass the label counts of the training split")
    return sorted(label for label, count in label_counts.items() if count / total < max_share)
