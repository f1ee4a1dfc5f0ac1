"""Out-of-scope detection as the router does it, not by argmax alone.

A message is treated as out of scope when the student's top label is the OOS label *or*
its top calibrated probability is below the router's confidence threshold (the router
then clarifies or falls back instead of answering). The threshold is chosen on a labeled
holdout: the one that maximises holdout accuracy over all labels, OOS included, where a
message below the threshold counts as predicted OOS. Argmax figures are the threshold-0
special case.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from kdedge.errors import ConfigError

N_CANDIDATES = 200


@dataclass(frozen=True)
class OosMetrics:
    """In-scope accuracy and OOS recall/precision at one confidence threshold."""

    threshold: float
    accuracy: float  # over all rows, OOS included
    in_scope_accuracy: float  # an in-scope row below the threshold counts as wrong
    oos_recall: float
    oos_precision: float
    oos_f1: float
    routed_away: float  # share of rows below the threshold (clarify or fallback)

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def _check(probs: np.ndarray, gold: np.ndarray, oos_index: int) -> None:
    if probs.ndim != 2 or len(probs) != len(gold) or not len(gold):
        raise ConfigError(f"need probabilities [N, C] for N gold labels, got {probs.shape}")
    if not 0 <= oos_index < probs.shape[1]:
        raise ConfigError(f"OOS label index {oos_index} is not a column of {probs.shape}")
    if not (gold == oos_index).any():
        raise ConfigError("the holdout has no out-of-scope rows; OOS figures need some")


def oos_metrics(
    probs: np.ndarray, gold: np.ndarray, oos_index: int, threshold: float = 0.0
) -> OosMetrics:
    """Metrics when rows whose top probability is below ``threshold`` become OOS."""
    _check(probs, gold, oos_index)
    confidence = probs.max(axis=1)
    below = confidence < threshold
    predicted = np.where(below, oos_index, probs.argmax(axis=1))
    is_oos, said_oos = gold == oos_index, predicted == oos_index
    hits = int((is_oos & said_oos).sum())
    recall = hits / int(is_oos.sum())
    precision = hits / int(said_oos.sum()) if said_oos.any() else 0.0
    in_scope = ~is_oos
    return OosMetrics(
        threshold=float(threshold),
        accuracy=float((predicted == gold).mean()),
        in_scope_accuracy=float((predicted[in_scope] == gold[in_scope]).mean())
        if in_scope.any()
        else 0.0,
        oos_recall=recall,
        oos_precision=precision,
        oos_f1=2 * recall * precision / (recall + precision) if recall + precision else 0.0,
        routed_away=float(below.mean()),
    )


def fit_oos_threshold(probs: np.ndarray, gold: np.ndarray, oos_index: int) -> float:
    """The confidence threshold with the best holdout accuracy (ties: the lowest)."""
    _check(probs, gold, oos_index)
    confidence = probs.max(axis=1)
    candidates = np.unique(
        np.concatenate([[0.0], np.quantile(confidence, np.linspace(0, 1, N_CANDIDATES))])
    )
    scores = [oos_metrics(probs, gold, oos_index, t).accuracy for t in candidates]
    return float(candidates[int(np.argmax(scores))])
