"""One routed generation (:class:`Generation`), its JSON view and its request-log record."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdedge.runtimes.fallback_target import FallbackAnswer


@dataclass(frozen=True)
class Generation:
    """One routed generation.

    ``text`` is what to show: the student's answer (``answer``), the teacher's (``fallback``
    answered), or the clarifying question (``clarify``); ``None`` for a ``fallback`` that no
    teacher answered (none configured): the app asks its own. ``confidence`` (geometric-mean
    token probability) and ``min_token_prob`` are the student's, ``None`` when it was not
    asked (a risk rule matched) or said nothing.
    """

    text: str | None
    route: str = "answer"  # answer | clarify | fallback
    reason: str = "confident"
    source: str | None = "student"  # student | teacher | router (clarify) | None
    student_text: str | None = None
    confidence: float | None = None
    min_token_prob: float | None = None
    risk_hits: tuple[str, ...] = ()
    prompt_tokens: int = 0
    tokens: int = 0  # the student's completion tokens
    finish_reason: str | None = None  # stop | length
    tokens_per_s: float | None = None
    prompt_tokens_per_s: float | None = None
    latency_ms: float = 0.0
    artifact: str = ""
    fallback: FallbackAnswer | None = None
    fallback_error: str | None = None
    id: str = ""
    logprobs: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self, *, logprobs: bool = False) -> dict[str, Any]:
        """JSON-ready view (what ``kdedge predict --json`` and ``/predict`` return)."""
        d: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "route": self.route,
            "reason": self.reason,
            "source": self.source,
            "confidence": _round(self.confidence),
            "min_token_prob": _round(self.min_token_prob),
            "prompt_tokens": self.prompt_tokens,
            "tokens": self.tokens,
            "finish_reason": self.finish_reason,
            "tokens_per_s": _round(self.tokens_per_s, 1),
            "prompt_tokens_per_s": _round(self.prompt_tokens_per_s, 1),
            "latency_ms": round(self.latency_ms, 3),
            "artifact": self.artifact,
        }
        if self.route != "answer" and self.student_text is not None:
            d["student_text"] = self.student_text
        if self.risk_hits:
            d["risk_hits"] = list(self.risk_hits)
        if self.fallback is not None:
            d["fallback"] = self.fallback.to_dict()
        if self.fallback_error is not None:
            d["fallback_error"] = self.fallback_error
        if logprobs:
            d["logprobs"] = [_round(lp, 5) for lp in self.logprobs]
        return d

    def log_event(self, tier: str, text: str) -> dict[str, Any]:
        """The request-log record at ``tier`` (see :mod:`kdedge.runtimes.requestlog`): texts,
        answers included, only in the incident tier."""
        event: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "id": self.id,
            "tier": tier,
            "route": self.route,
            "conf": _round(self.confidence, 4),
            "tokens": self.tokens,
            "ms": round(self.latency_ms, 2),
            "artifact": self.artifact,
        }
        if tier == "compact":
            return event
        event["reason"] = self.reason
        event["min_p"] = _round(self.min_token_prob, 4)
        event["prompt_tokens"] = self.prompt_tokens
        if tier == "low_confidence":
            return event
        if self.risk_hits:
            event["risk_hits"] = list(self.risk_hits)
        if self.fallback is not None:
            teacher = self.fallback.to_dict()
            if tier != "incident":
                teacher.pop("raw", None)
                teacher.pop("text", None)
            event["teacher"] = teacher
        if self.fallback_error is not None:
            event["teacher_error"] = self.fallback_error
        if tier == "incident":
            event["prompt"] = text
            event["student_text"] = self.student_text
            event["text"] = self.text
        return event


def _round(value: float | None, digits: int = 6) -> float | None:
    """Rounded, or None when absent or not finite (JSON has no NaN)."""
    return None if value is None or not math.isfinite(value) else round(value, digits)
