"""What every benchmark worker measures the same way: pinning, cold start, percentiles,
rates and peak RSS."""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any

import numpy as np


def pin(cores: int | None) -> None:
    """Keep this process on its first ``cores`` CPUs (before any engine starts threads)."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])


def cold(t0: float, t1: float) -> dict[str, float]:
    """Load time, first answer time and the wall clock of the first answer."""
    return {
        "load_ms": round((t1 - t0) * 1000.0, 2),
        "first_predict_ms": round((time.perf_counter() - t1) * 1000.0, 2),
        "first_done_unix": time.time(),
    }


def rates(samples: list[float], tokens: int) -> dict[str, Any]:
    """Median, min and max tokens/s of the samples (None without any)."""
    if not samples:
        return {"tokens": tokens, "tokens_per_s": None, "min": None, "max": None, "n": 0}
    return {
        "tokens": tokens,
        "tokens_per_s": round(float(np.median(samples)), 2),
        "min": round(min(samples), 2),
        "max": round(max(samples), 2),
        "n": len(samples),
    }


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {
        "p50": round(float(np.percentile(a, 50)), 4),
        "p95": round(float(np.percentile(a, 95)), 4),
        "p99": round(float(np.percentile(a, 99)), 4),
        "mean": round(float(a.mean()), 4),
        "n": len(samples_ms),
    }


def peak_rss_mb() -> float:
    """This process's peak resident set size.

    On Linux it is read from ``VmHWM`` in ``/proc/self/status``: ``ru_maxrss`` survives
    ``fork`` + ``exec`` there, so a worker started by a large parent would report the
    parent's peak instead of its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, kB elsewhere
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
