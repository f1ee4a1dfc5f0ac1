"""The router's "no good candidate" threshold, fitted on validation rankings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kdedge.errors import ConfigError


def fit_score_threshold(groups: Sequence[Any], scores: Sequence[np.ndarray]) -> dict[str, Any]:
    """The top-1 score below which the top candidate is usually not relevant.

    For each query the top-1 candidate's score and whether it is relevant; the threshold
    maximises F1 of "top-1 is relevant" predicted as ``score >= threshold`` (midpoints
    between sorted top-1 scores are tried, plus "accept everything"). The router answers
    "no good candidate" below it. Queries without any positive count as not relevant.
    """
    if len(groups) != len(scores) or not groups:
        raise ConfigError(f"{len(groups)} groups for {len(scores)} score lists")
    top = np.array([float(np.max(s)) for s in scores])
    good = np.array(
        [g.candidates[int(np.argmax(s))].relevance > 0 for g, s in zip(groups, scores, strict=True)]
    )
    order = np.sort(np.unique(top))
    candidates = np.concatenate([[order[0]], (order[1:] + order[:-1]) / 2]) if order.size else order
    best = (-1.0, float(order[0]), 0.0, 0.0)
    for threshold in candidates:
        accept = top >= threshold
        tp = float((accept & good).sum())
        precision = tp / accept.sum() if accept.any() else 0.0
        recall = tp / good.sum() if good.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best[0] + 1e-12:
            best = (f1, float(threshold), precision, recall)
    f1, threshold, precision, recall = best
    return {
        "score_threshold": round(threshold, 6),
        "f1": round(f1, 6),
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "top1_relevant_rate": round(float(good.mean()), 6),
        "queries": len(groups),
    }
