"""Speed-ups from interleaved rounds, with the uncertainty a noisy host leaves in them.

Rows measured one after another on a shared machine can differ by 2x for reasons that have
nothing to do with the models (session 4 saw the same kdedge/optimum ratio come out 0.99x and
1.87x). ``kdedge bench`` therefore also measures the arms of each comparison in one process,
round by round in a random order (:func:`kdedge.bench.worker.run_paired`), and reports the
median of the per-round ratios with a bootstrap 95% interval.

The interval covers round-to-round noise only. Two copies of the *same* model in one process
also differ, steadily, by a few percent (an A/A control measured 0.96x with a 95% interval of
0.95-0.97, the first-loaded copy slower, twice in a row): where the memory of each landed
matters. Each classifier group therefore carries a control arm, a second copy of one
artifact, and a speed-up is claimed only when its interval clears the control's band
(``noise``), not merely 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 2000


@dataclass(frozen=True)
class Metric:
    """A paired sample kind: which way is better, and its names in reports and terminals."""

    higher_is_better: bool
    name: str
    short: str


METRICS = {
    "batch_1_ms": Metric(False, "batch-1 latency", "p50"),
    "rerank_ms": Metric(False, "rerank latency (one query, its candidates)", "p50"),
    "pp_tokens_per_s": Metric(True, "pp tokens/s", "pp"),
    "tg_tokens_per_s": Metric(True, "tg tokens/s", "tg"),
}


def paired_speedup(
    row: Sequence[float | None],
    reference: Sequence[float | None],
    *,
    higher_is_better: bool = False,
    noise: float = 1.0,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Speed-up of ``row`` over ``reference`` from samples taken in the same rounds.

    Samples are latencies (lower is better) or rates (``higher_is_better``); either way a
    speed-up above 1 means ``row`` is faster. Rounds where either side has no sample are
    dropped; with fewer than three left there is nothing to say and None is returned.
    ``noise`` (>= 1, from :func:`noise_band`) widens the band around 1 that the interval
    must clear for a verdict.
    """
    pairs = [(a, b) for a, b in zip(row, reference, strict=True) if a and b]
    if len(pairs) < 3:
        return None
    mine, theirs = np.asarray(pairs, dtype=np.float64).T
    ratios = mine / theirs if higher_is_better else theirs / mine
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ratios), size=(RESAMPLES, len(ratios)))
    low, high = np.percentile(np.median(ratios[picks], axis=1), [2.5, 97.5])
    return {
        "speedup": round(float(np.median(ratios)), 3),
        "ci95": [round(float(low), 3), round(float(high), 3)],
        "rounds": len(ratios),
        "verdict": verdict(float(low), float(high), noise),
        # the arms' own medians in the interleaved run, for reading the ratio
        "row_median": round(float(np.median(mine)), 4),
        "reference_median": round(float(np.median(theirs)), 4),
    }


def verdict(low: float, high: float, noise: float = 1.0) -> str:
    if low > noise:
        return "faster"
    if high < 1.0 / noise:
        return "slower"
    return "no measurable difference"


def noise_band(control: dict[str, Any] | None) -> float:
    """The factor (>= 1) by which two copies of one model differed in the control: the
    farther end of its 95% interval from 1, either way."""
    if not control:
        return 1.0
    low, high = control["ci95"]
    return max(1.0, high, 1.0 / low)
