"""Probability arrays: softmax, their validation and the basic measures on them.

Numpy only. Metrics (:mod:`kdedge.distill.metrics`) and calibration
(:mod:`kdedge.distill.calibration`) both build on these; neither imports the other's
internals.
"""

from __future__ import annotations

import math

import numpy as np

from kdedge.errors import ConfigError, DataError

NLL_EPS = 1e-12
PROB_TOLERANCE = 1e-3


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Numerically stable softmax over the last axis of ``logits / temperature`` (float64)."""
    if isinstance(temperature, bool) or not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature must be a finite number > 0; got {temperature!r}")
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise DataError(f"logits must have at least one class on the last axis; got {z.shape}")
    if not np.isfinite(z).all():
        raise DataError("logits contain NaN or infinity; fix the model output before scoring")
    z = z / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def mean_entropy(probs: np.ndarray) -> float:
    """Mean Shannon entropy (nats) of probability rows; 0.0 for no rows."""
    if not len(probs):
        return 0.0
    return float(-(probs * np.log(np.clip(probs, NLL_EPS, None))).sum(-1).mean())


def validate_gold(gold: np.ndarray, n_rows: int, n_classes: int) -> np.ndarray:
    """Return ``gold`` as an int64 vector of class indices, or raise :class:`DataError`."""
    g = np.asarray(gold)
    if g.ndim != 1 or len(g) != n_rows:
        raise DataError(
            f"gold must be a 1-D array with one class index per row ({n_rows}); got shape {g.shape}"
        )
    if g.dtype.kind not in "iu":
        raise DataError(
            f"gold must hold integer class indices; got dtype {g.dtype}. "
            "Fix: map label names to indices with LabelSet.indices()"
        )
    bad = np.flatnonzero((g < 0) | (g >= n_classes))
    if bad.size:
        raise DataError(
            f"gold row {bad[0]} has class index {g[bad[0]]}, outside [0, {n_classes}); "
            "Fix: gold indices must follow the model's label order"
        )
    return g.astype(np.int64)


def validate_probs(probs: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a ``[N, C]`` probability matrix and its gold indices; return them as arrays."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise DataError(f"probs must be a 2-D array [rows, classes]; got shape {p.shape}")
    n, c = p.shape
    if n == 0 or c == 0:
        raise DataError(f"nothing to evaluate: probs has shape {p.shape}; need rows and classes")
    if not np.isfinite(p).all():
        row = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise DataError(f"probs row {row} contains NaN or infinity")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(
        (np.abs(sums - 1.0) > PROB_TOLERANCE)
        | (p.min(axis=1) < -PROB_TOLERANCE)
        | (p.max(axis=1) > 1 + PROB_TOLERANCE)
    )
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"probs row {row} is not a probability vector (sums to {sums[row]:.4g}, "
            f"min {p[row].min():.4g}); Fix: pass softmax(logits), not logits"
        )
    return p, validate_gold(gold, n, c)


def negative_log_likelihood(probs: np.ndarray, gold: np.ndarray) -> float:
    """Mean ``-log p(gold)``, with probabilities clipped at :data:`NLL_EPS`."""
    p, g = validate_probs(probs, gold)
    picked = np.clip(p[np.arange(len(g)), g], NLL_EPS, 1.0)
    return float(-np.log(picked).mean())
