"""Tiered request logging (seed 000, failure G): log detail in proportion to the need.

=================  =======================================================================
tier               what one JSON line holds
=================  =======================================================================
``compact``        confident answers: id, time, label, confidence, route, latency, artifact
``low_confidence`` plus the top-k labels, the route reason and the risk score
``fallback``       plus the evidence (risk rules hit, risk score) and the teacher's output
``incident``       everything, including the text and all probabilities (``mode="incident"``)
=================  =======================================================================

Texts are written only in incident mode: production logs hold no customer messages unless
someone turned incident mode on for a canary or an investigation. :meth:`TieredLog.stats`
reports the average payload per tier, so the storage cost of a policy is a measurement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from kdedge import jsonout
from kdedge.errors import ConfigError

if TYPE_CHECKING:
    from kdedge.runtimes.prediction import Prediction

MODES = ("tiered", "incident")
TIERS = ("compact", "low_confidence", "fallback", "incident")


def tier_of(prediction: Prediction, mode: str = "tiered") -> str:
    if mode == "incident":
        return "incident"
    if prediction.route == "fallback" or prediction.reason in ("risk_label", "risk_rule"):
        return "fallback"
    if prediction.fallback_error is not None:
        return "fallback"
    if prediction.route == "clarify" or prediction.reason == "low_confidence":
        return "low_confidence"
    return "compact"


def build_event(prediction: Prediction, text: str, tier: str, top_k: int = 3) -> dict[str, Any]:
    """The log record of one prediction at the given tier."""
    p = prediction
    event: dict[str, Any] = {
        "ts": round(time.time(), 3),
        "id": p.id,
        "tier": tier,
        "label": p.label,
        "conf": round(p.confidence, 4),
        "route": p.route,
        "ms": round(p.latency_ms, 2),
        "artifact": p.artifact,
    }
    if tier == "compact":
        return event
    event["reason"] = p.reason
    event["risk"] = round(p.risk, 4)
    event["top_k"] = [[label, round(prob, 4)] for label, prob in p.top_k(top_k)]
    if tier == "low_confidence":
        return event
    event["student_label"] = p.student_label
    if p.risk_hits:
        event["risk_hits"] = list(p.risk_hits)
    if p.fallback is not None:
        teacher = p.fallback.to_dict()
        if tier != "incident":
            teacher.pop("raw", None)
        event["teacher"] = teacher
    if p.fallback_error is not None:
        event["teacher_error"] = p.fallback_error
    if tier == "incident":
        event["text"] = text
        event["probs"] = {lbl: round(float(v), 5) for lbl, v in zip(p.labels, p.probs, strict=True)}
    return event


class TieredLog:
    """Writes one JSON line per prediction to a file, a stream or a callable; thread-safe."""

    def __init__(
        self,
        sink: str | Path | IO[str] | Callable[[str], Any],
        *,
        mode: str = "tiered",
        top_k: int = 3,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"log mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.top_k = top_k
        self._lock = threading.Lock()
        self._owned: IO[str] | None = None
        if isinstance(sink, (str, Path)):
            try:
                self._owned = open(sink, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            except OSError as exc:
                raise ConfigError(f"cannot open request log {sink}: {exc.strerror}") from exc
            self._write: Callable[[str], Any] = self._owned.write
        elif callable(sink):
            self._write = lambda line: sink(line.rstrip("\n"))
        else:
            self._write = sink.write
        self._events = dict.fromkeys(TIERS, 0)
        self._bytes = dict.fromkeys(TIERS, 0)

    def record(self, prediction: Prediction, text: str) -> dict[str, Any]:
        tier = tier_of(prediction, self.mode)
        own = getattr(prediction, "log_event", None)  # a Generation builds its own record
        if own is not None:
            event = own(tier, text)
        else:
            event = build_event(prediction, text, tier, self.top_k)
        line = jsonout.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._write(line)
            self._events[tier] += 1
            self._bytes[tier] += len(line.encode("utf-8"))
        return event

    def stats(self) -> dict[str, Any]:
        """Events, bytes and the average payload size per tier, and overall."""
        with self._lock:
            per = {
                t: {
                    "events": self._events[t],
                    "bytes": self._bytes[t],
                    "avg_bytes": round(self._bytes[t] / self._events[t], 1)
                    if self._events[t]
                    else 0,
                }
                for t in TIERS
                if self._events[t]
            }
            events, size = sum(self._events.values()), sum(self._bytes.values())
        return {
            "mode": self.mode,
            "tiers": per,
            "events": events,
            "bytes": size,
            "avg_bytes": round(size / events, 1) if events else 0,
        }

    def close(self) -> None:
        if self._owned is not None:
            with self._lock:
                self._owned.close()
                self._owned = None
                self._write = _closed


def _closed(line: str) -> None:
    raise ConfigError("the request log was closed")
