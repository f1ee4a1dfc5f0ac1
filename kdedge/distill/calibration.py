"""Calibration: expected calibration error, temperature scaling and the reliability diagram."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kdedge.atomic import atomic_write
from kdedge.distill.probability import (
    negative_log_likelihood,
    softmax,
    validate_gold,
    validate_probs,
)
from kdedge.errors import ConfigError, DataError
from kdedge.extras import require


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin ``(lower, upper]``; accuracy and confidence are None when empty."""

    lower: float
    upper: float
    count: int
    accuracy: float | None
    confidence: float | None


def _check_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be an integer >= 1; got {n_bins!r} (15 is the usual)")


def _bin_totals(
    probs: np.ndarray, gold: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Edges, and per-bin row counts, correct counts and confidence sums."""
    _check_bins(n_bins)
    p, g = validate_probs(probs, gold)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == g).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; the top-label confidence is always > 0.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    hits = np.bincount(which, weights=correct, minlength=n_bins)
    conf_sums = np.bincount(which, weights=confidence, minlength=n_bins)
    return edges, counts, hits, conf_sums, len(g)


def reliability_bins(probs: np.ndarray, gold: np.ndarray, n_bins: int = 15) -> list[ReliabilityBin]:
    """Top-label accuracy and mean confidence in ``n_bins`` equal-width bins over (0, 1]."""
    edges, counts, hits, conf_sums, _ = _bin_totals(probs, gold, n_bins)
    return [
        ReliabilityBin(
            lower=float(edges[i]),
            upper=float(edges[i + 1]),
            count=int(counts[i]),
            accuracy=float(hits[i] / counts[i]) if counts[i] else None,
            confidence=float(conf_sums[i] / counts[i]) if counts[i] else None,
        )
        for i in range(n_bins)
    ]


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: ``sum_b (n_b / N) * |accuracy_b - confidence_b|`` over equal-width bins."""
    _, _, hits, conf_sums, n = _bin_totals(probs, gold, n_bins)
    return float(np.abs(hits - conf_sums).sum() / n)


def _validate_logits(logits: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    if z.size == 0:
        raise DataError(f"logits are empty (shape {z.shape}); calibrate on a non-empty split")
    if z.ndim != 2:
        raise DataError(f"logits must be a 2-D array [rows, classes]; got shape {z.shape}")
    if not np.isfinite(z).all():
        raise DataError("logits contain NaN or infinity; fix the model output before calibrating")
    return z, validate_gold(gold, z.shape[0], z.shape[1])


def _nll_at(logits: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float((log_norm - z[np.arange(len(gold)), gold]).mean())


def fit_temperature(
    logits: np.ndarray, gold: np.ndarray, *, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """Temperature scaling (Guo et al., 2017): the T minimising NLL of ``softmax(logits / T)``.

    Fit on held-out (validation) rows, never on the training rows. The search runs over
    ``log T`` within ``bounds``; T > 1 softens an overconfident model.
    """
    z, g = _validate_logits(logits, gold)
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ConfigError(f"temperature bounds must satisfy 0 < low < high; got {bounds!r}")
    optimize = require("scipy.optimize", "train", "Temperature scaling")
    result = optimize.minimize_scalar(
        lambda log_t: _nll_at(z, g, math.exp(log_t)),
        bounds=(math.log(lo), math.log(hi)),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(math.exp(result.x))


@dataclass(frozen=True)
class CalibrationResult:
    """The fitted temperature and what it did to ECE and NLL."""

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    n: int
    n_bins: int

    def to_dict(self) -> dict:
        """A JSON-friendly dict; floats rounded to 6 decimals."""
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def calibrate(logits: np.ndarray, gold: np.ndarray, n_bins: int = 15) -> CalibrationResult:
    """Fit a temperature on ``logits`` and measure ECE and NLL before and after."""
    _check_bins(n_bins)
    z, g = _validate_logits(logits, gold)
    temperature = fit_temperature(z, g)
    before, after = softmax(z), softmax(z, temperature)
    return CalibrationResult(
        temperature=temperature,
        ece_before=expected_calibration_error(before, g, n_bins),
        ece_after=expected_calibration_error(after, g, n_bins),
        nll_before=negative_log_likelihood(before, g),
        nll_after=negative_log_likelihood(after, g),
        n=len(g),
        n_bins=int(n_bins),
    )


def plot_reliability(
    probs_before: np.ndarray,
    probs_after: np.ndarray,
    gold: np.ndarray,
    path: str | Path,
    n_bins: int = 15,
    title: str = "Reliability diagram",
) -> Path:
    """Write a PNG reliability diagram (before | after, with bin counts) atomically to ``path``.

    Renders with an Agg canvas on a standalone Figure, so the process-wide matplotlib
    backend and pyplot's figure registry are left alone.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"the reliability diagram is a PNG; got path {path}. Fix: end it in .png")
    panels = [
        ("Before", reliability_bins(probs_before, gold, n_bins)),
        ("After", reliability_bins(probs_after, gold, n_bins)),
    ]
    eces = [expected_calibration_error(p, gold, n_bins) for p in (probs_before, probs_after)]
    require("matplotlib", "train", "The reliability diagram")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    try:
        axes = fig.subplots(2, 2, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        width = 1.0 / n_bins
        for col, ((name, bins), ece) in enumerate(zip(panels, eces, strict=True)):
            lowers = [b.lower for b in bins]
            acc = [b.accuracy or 0.0 for b in bins]
            gap = [0.0 if b.count == 0 else b.confidence - b.accuracy for b in bins]
            ax = axes[0, col]
            ax.bar(lowers, acc, width=width, align="edge", label=f"accuracy (ECE {ece:.3f})")
            ax.bar(
                lowers,
                gap,
                bottom=acc,
                width=width,
                align="edge",
                alpha=0.3,
                color="red",
                label="gap to confidence",
            )
            ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
            ax.set(xlim=(0, 1), ylim=(0, 1), title=f"{name}: ECE {ece:.3f}", ylabel="accuracy")
            ax.legend(loc="upper left")
            hist = axes[1, col]
            hist.bar(lowers, [b.count for b in bins], width=width, align="edge", color="gray")
            hist.set(xlabel="confidence", ylabel="rows")
        fig.suptitle(title)
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format="png")
    finally:
        fig.clear()
    return path
