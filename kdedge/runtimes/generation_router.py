"""How a generate bundle routes: its policy (a :class:`RouterPolicy` plus a generator's own
settings) and the thread-safe :class:`GenerationRouter` that applies it."""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdedge.errors import ConfigError
from kdedge.runtimes.router import (
    ANSWER,
    CLARIFY,
    FALLBACK,
    ROUTES,
    FallbackBudget,
    RouterPolicy,
    plan_route,
    read_policy_data,
)

if TYPE_CHECKING:
    from kdedge.runtimes.bundle import Manifest

CLARIFY_TEXT = (
    "I'm not sure I can answer that correctly. Could you add a detail, such as the title, "
    "the volume or the edition you mean?"
)
DEFAULT_ROUTER: dict[str, Any] = {
    "confidence_threshold": 0.5,
    "min_token_prob": 0.0,
    "low_confidence_action": "fallback",
    "risk_patterns": [
        r"\brefund",
        r"\b(payment|charged?|chargeback|billing)\b",
        r"\b(lawyer|legal|sue|lawsuit|fraud)\b",
    ],
    "max_fallback_rate": 0.2,
    "budget_window": 1000,
    "budget_min_events": 20,
}
# keys of a generate bundle's router section that RouterPolicy does not have
GENERATION_KEYS = frozenset({"min_token_prob", "clarify_text"})
# RouterPolicy keys that describe a classifier's labels; meaningless for a generator
LABEL_KEYS = ("risk_labels", "risk_threshold", "clarify_top_k")


@dataclass(frozen=True)
class GenerationPolicy:
    """A :class:`RouterPolicy` (thresholds on the answer's geometric-mean token probability,
    risk rules, budget) plus the two settings only a generator has."""

    router: RouterPolicy
    min_token_prob: float = 0.0
    clarify_text: str = CLARIFY_TEXT

    def __post_init__(self) -> None:
        if not isinstance(self.clarify_text, str):
            raise ConfigError(f"router clarify_text must be a string, got {self.clarify_text!r}")
        if not 0.0 <= self.min_token_prob <= 1.0:
            raise ConfigError(f"router min_token_prob must be in [0, 1], got {self.min_token_prob}")
        if self.router.risk_labels:
            raise ConfigError(
                "router risk_labels do not apply to a generate bundle (it has no labels); "
                "route risky questions with risk_patterns"
            )
        if not self.clarify_text.strip():
            raise ConfigError("router clarify_text must not be empty")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "router policy") -> GenerationPolicy:
        """``data`` over :data:`DEFAULT_ROUTER`."""
        merged = {**DEFAULT_ROUTER, **data}
        extra = {k: merged.pop(k) for k in GENERATION_KEYS if k in merged}
        try:
            return cls(RouterPolicy.from_dict(merged, where), **extra)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.router.to_dict().items() if k not in LABEL_KEYS}
        return {**d, "min_token_prob": self.min_token_prob, "clarify_text": self.clarify_text}


def read_generation_policy(
    source: GenerationPolicy | RouterPolicy | Mapping[str, Any] | str | Path | None,
    manifest: Manifest,
) -> GenerationPolicy:
    """The policy: given, read from a JSON file, or the manifest's ``router`` section; keys
    missing from it come from :data:`DEFAULT_ROUTER`."""
    if isinstance(source, GenerationPolicy):
        return source
    if isinstance(source, RouterPolicy):
        return GenerationPolicy(source)
    if source is None:
        return GenerationPolicy.from_dict(manifest.router, "manifest.json router")
    return GenerationPolicy.from_dict(*read_policy_data(source))


class GenerationRouter:
    """Routes generations; thread-safe (the budget window is shared). Its :meth:`stats`
    have the shape of :meth:`Router.stats`."""

    def __init__(self, policy: GenerationPolicy) -> None:
        self.policy = policy
        self._rules = [re.compile(p, re.IGNORECASE) for p in policy.router.risk_patterns]
        p = policy.router
        self._budget = FallbackBudget(p.budget_window, p.max_fallback_rate, p.budget_min_events)
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def rule_hits(self, question: str) -> tuple[str, ...]:
        return tuple(rule.pattern for rule in self._rules if rule.search(question))

    def decide(
        self, hits: tuple[str, ...], confidence: float | None, min_prob: float | None
    ) -> tuple[str, str]:
        """(route, reason) of one question, recorded in the budget window and the counts.

        ``confidence`` and ``min_prob`` are None when the student said nothing (or was not
        asked): that is never confident. A value that is not a probability (NaN, infinite,
        above 1: a corrupted model) is never answered: the ``low_confidence_action`` with
        reason ``model_error`` (``fallback`` when a risk rule matched).
        """
        if not (is_probability(confidence) and is_probability(min_prob)):
            return self._model_error(hits)
        score = -1.0 if confidence is None or min_prob is None else confidence
        if min_prob is not None and min_prob < self.policy.min_token_prob:
            score = -1.0  # one token the model barely believed fails stage 2 on its own
        code = plan_route(score, False, bool(hits), self.policy.router)
        with self._lock:
            if code == FALLBACK:
                reason = "risk_rule" if hits else "low_confidence"
                if not self._budget.allow():
                    code, reason = CLARIFY, "budget_exceeded"
            else:
                reason = "confident" if code == ANSWER else "low_confidence"
            self._budget.add(code == FALLBACK)
            self._counts[ROUTES[code], reason] += 1
        return ROUTES[code], reason

    def _model_error(self, hits: tuple[str, ...]) -> tuple[str, str]:
        action = self.policy.router.low_confidence_action
        code = FALLBACK if hits or action == "fallback" else CLARIFY
        with self._lock:
            if code == FALLBACK and not self._budget.allow():
                code = CLARIFY
            self._budget.add(code == FALLBACK)
            self._counts[ROUTES[code], "model_error"] += 1
        return ROUTES[code], "model_error"

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "decisions": {f"{r}:{why}": n for (r, why), n in self._counts.items()},
                "budget_exceeded": self._counts.get(("clarify", "budget_exceeded"), 0),
                "window_fallback_rate": round(float(self._budget.current_rate), 4),
                "window_events": len(self._budget.events),
            }


def is_probability(value: float | None) -> bool:
    """None (nothing said), or a finite number in [0, 1] (with float slack)."""
    return value is None or (math.isfinite(value) and -1e-9 <= value <= 1.0 + 1e-9)
