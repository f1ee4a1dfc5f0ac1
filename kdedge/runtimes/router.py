"""The two-stage confidence/risk router (seed 000, failure C).

Stage 1, risk: a message whose calibrated probability mass on the risk labels reaches
``risk_threshold``, or that matches a risk rule (a regular expression), goes to the teacher
(``fallback``) whatever the student's confidence. Stage 2, confidence: a message the student
is unsure about (top probability below ``confidence_threshold``) gets the
``low_confidence_action``: a clarifying question (``clarify``) or a fallback. Everything else
is answered by the student (``answer``).

A fallback budget caps the teacher share over a sliding window of recent decisions: once
``max_fallback_rate`` is reached, further fallbacks degrade to ``clarify`` (reason
``budget_exceeded``), which never lets the student answer a message it should not.

A message whose probabilities are not all finite (NaN or infinite: a corrupted weight file,
a zero temperature, an engine bug) is never answered, whatever the thresholds say: it gets
the ``low_confidence_action`` (``fallback`` when a risk rule matched) with reason
``model_error``, and is counted under that reason.

:func:`plan_route` decides one message online; :func:`plan_routes` is its vectorised twin
that ``kdedge route fit`` evaluates thousands of threshold pairs with (a test proves that
the two agree, so thresholds fitted offline route identically online).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdedge.errors import ConfigError

if TYPE_CHECKING:
    from kdedge.runtimes.bundle import Manifest

ROUTES = ("answer", "clarify", "fallback")
ANSWER, CLARIFY, FALLBACK = 0, 1, 2
LOW_CONFIDENCE_ACTIONS = ("clarify", "fallback")
# Manifest keys that describe the taxonomy for people; the router does not act on them.
INFORMATIONAL_KEYS = frozenset({"oos_label", "rare_labels"})


@dataclass(frozen=True)
class RouterPolicy:
    """Thresholds and rules; stored in the bundle manifest's ``router`` section (no secrets)."""

    confidence_threshold: float = 0.5
    risk_threshold: float = 0.5
    risk_labels: tuple[str, ...] = ()
    risk_patterns: tuple[str, ...] = ()  # case-insensitive regular expressions
    low_confidence_action: str = "clarify"
    max_fallback_rate: float | None = 0.2  # None: no budget
    budget_window: int = 1000  # decisions in the sliding window
    budget_min_events: int = 20  # the budget is enforced once the window holds this many
    clarify_top_k: int = 3

    def __post_init__(self) -> None:
        for name in ("confidence_threshold", "risk_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.01:
                raise ConfigError(f"router {name} must be in [0, 1], got {value}")
        if self.low_confidence_action not in LOW_CONFIDENCE_ACTIONS:
            raise ConfigError(
                f"router low_confidence_action must be one of {', '.join(LOW_CONFIDENCE_ACTIONS)},"
                f" got {self.low_confidence_action!r}"
            )
        rate = self.max_fallback_rate
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ConfigError(f"router max_fallback_rate must be in [0, 1] or null, got {rate}")
        if self.budget_window < 1 or self.clarify_top_k < 1:
            raise ConfigError("router budget_window and clarify_top_k must be at least 1")
        for pattern in self.risk_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"router risk pattern {pattern!r} is not a regex: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "router policy") -> RouterPolicy:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - INFORMATIONAL_KEYS
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(sorted(known))}"
            )
        values = {k: v for k, v in data.items() if k in known}
        for key in ("risk_labels", "risk_patterns"):
            if key in values:
                items = values[key] or ()
                if not isinstance(items, (list, tuple)) or not all(
                    isinstance(item, str) for item in items
                ):
                    raise ConfigError(f"{where}: {key} must be a list of strings, got {items!r}")
                values[key] = tuple(items)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["risk_labels"] = list(self.risk_labels)
        d["risk_patterns"] = list(self.risk_patterns)
        return d

    def with_overrides(self, **changes: Any) -> RouterPolicy:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def plan_route(confidence: float, at_risk: bool, rule_hit: bool, policy: RouterPolicy) -> int:
    """The route code of one message, before any budget: the online router's decision."""
    if rule_hit or at_risk:
        return FALLBACK
    if confidence < policy.confidence_threshold:
        return FALLBACK if policy.low_confidence_action == "fallback" else CLARIFY
    return ANSWER


def plan_routes(
    confidence: np.ndarray,
    risk: np.ndarray,
    rule_hit: np.ndarray,
    confidence_threshold: float,
    risk_threshold: float,
    low_confidence_action: str,
) -> np.ndarray:
    """:func:`plan_route` over arrays, for fitting thresholds on a whole holdout at once."""
    low = FALLBACK if low_confidence_action == "fallback" else CLARIFY
    routes = np.where(confidence < confidence_threshold, low, ANSWER)
    return np.where(rule_hit | (risk >= risk_threshold), FALLBACK, routes).astype(np.int8)


@dataclass(frozen=True)
class Decision:
    """Where one message goes and why."""

    route: str  # answer | clarify | fallback
    # confident | low_confidence | risk_label | risk_rule | budget_exceeded | model_error
    reason: str
    risk: float  # calibrated probability mass on the risk labels (NaN on a model_error)
    risk_hits: tuple[str, ...] = ()  # risk rules that matched the text
    candidates: tuple[tuple[str, float], ...] = ()  # top labels with probabilities


@dataclass
class FallbackBudget:
    """Fallbacks granted over the last ``window`` decisions."""

    window: int
    rate: float | None
    min_events: int
    events: deque[bool] = field(default_factory=deque)
    fallbacks: int = 0

    def allow(self) -> bool:
        if self.rate is None:
            return True
        n = len(self.events) + 1
        return n < self.min_events or (self.fallbacks + 1) / n <= self.rate

    def add(self, fallback: bool) -> None:
        self.events.append(fallback)
        self.fallbacks += fallback
        if len(self.events) > self.window:
            self.fallbacks -= self.events.popleft()

    @property
    def current_rate(self) -> float:
        return self.fallbacks / len(self.events) if self.events else 0.0


class Router:
    """Routes calibrated probabilities; thread-safe (the budget window is shared)."""

    def __init__(self, policy: RouterPolicy, labels: Sequence[str]) -> None:
        self.policy = policy
        self.labels = tuple(labels)
        missing = [label for label in policy.risk_labels if label not in self.labels]
        if missing:
            raise ConfigError(
                f"router risk label(s) {', '.join(missing)} are not labels of this model; "
                f"labels: {', '.join(self.labels[:20])}{' …' if len(self.labels) > 20 else ''}"
            )
        self._risk_index = np.array(
            [self.labels.index(label) for label in policy.risk_labels], dtype=np.int64
        )
        self._rules = [re.compile(p, re.IGNORECASE) for p in policy.risk_patterns]
        self._lock = threading.Lock()
        self._budget = FallbackBudget(
            policy.budget_window, policy.max_fallback_rate, policy.budget_min_events
        )
        self._counts: Counter[tuple[str, str]] = Counter()

    def risk_scores(self, probs: np.ndarray) -> np.ndarray:
        """Probability mass on the risk labels, [B]."""
        if self._risk_index.size == 0:
            return np.zeros(len(probs), dtype=np.float32)
        return probs[:, self._risk_index].sum(axis=1)

    def rule_hits(self, text: str) -> tuple[str, ...]:
        return tuple(rule.pattern for rule in self._rules if rule.search(text))

    def route(self, texts: Sequence[str], probs: np.ndarray) -> list[Decision]:
        """Decide for a batch of texts and their calibrated probabilities [B, C]."""
        p = self.policy
        finite = np.isfinite(probs).all(axis=1).tolist()
        confidence = probs.max(axis=1).tolist()
        risk = self.risk_scores(probs).tolist()
        has_risk = self._risk_index.size > 0
        k = min(p.clarify_top_k, probs.shape[1])
        top = np.argsort(-probs, axis=1)[:, :k].tolist()
        decisions = []
        with self._lock:
            for i, text in enumerate(texts):
                hits = self.rule_hits(text) if self._rules else ()
                if not finite[i]:  # never route on a broken model's output
                    decisions.append(self._model_error(hits))
                    continue
                at_risk = has_risk and risk[i] >= p.risk_threshold
                code = plan_route(confidence[i], at_risk, bool(hits), p)
                if code == FALLBACK:
                    reason = "risk_rule" if hits else "risk_label" if at_risk else "low_confidence"
                    if not self._budget.allow():
                        code, reason = CLARIFY, "budget_exceeded"
                else:
                    reason = "confident" if code == ANSWER else "low_confidence"
                self._budget.add(code == FALLBACK)
                route = ROUTES[code]
                self._counts[route, reason] += 1
                candidates = tuple((self.labels[j], float(probs[i, j])) for j in top[i])
                decisions.append(Decision(route, reason, risk[i], hits, candidates))
        return decisions

    def model_error(self, text: str) -> Decision:
        """The decision for a message whose model output is not finite (any policy, routed
        or not): never ``answer``; counted under reason ``model_error``."""
        hits = self.rule_hits(text) if self._rules else ()
        with self._lock:
            return self._model_error(hits)

    def _model_error(self, hits: tuple[str, ...]) -> Decision:
        """:meth:`model_error`, with the lock held."""
        code = FALLBACK if hits or self.policy.low_confidence_action == "fallback" else CLARIFY
        if code == FALLBACK and not self._budget.allow():
            code = CLARIFY
        self._budget.add(code == FALLBACK)
        self._counts[ROUTES[code], "model_error"] += 1
        return Decision(ROUTES[code], "model_error", float("nan"), hits, ())

    def stats(self) -> dict[str, Any]:
        """Decisions by route and reason, and the fallback rate in the current window."""
        with self._lock:
            return {
                "decisions": {f"{r}:{why}": n for (r, why), n in self._counts.items()},
                "budget_exceeded": self._counts.get(("clarify", "budget_exceeded"), 0),
                "window_fallback_rate": round(float(self._budget.current_rate), 4),
                "window_events": len(self._budget.events),
            }


REPHRASE = "Sorry, I could not work that out. Could you say it in other words?"


def clarifying_question(candidates: Sequence[tuple[str, float]]) -> str:
    """A short question naming the top candidate intents, for the app to show or adapt
    (:data:`REPHRASE` when there are none: the model's output was unusable)."""
    names = [label.replace("_", " ") for label, _ in candidates]
    if not names:
        return REPHRASE
    if len(names) == 1:
        return f"Just to check: is this about {names[0]}?"
    return f"Just to check: is this about {', '.join(names[:-1])} or {names[-1]}?"


def read_policy(
    source: RouterPolicy | Mapping[str, Any] | str | Path | None, manifest: Manifest
) -> RouterPolicy:
    """The router policy: given, read from a JSON file, or the bundle manifest's defaults."""
    if isinstance(source, RouterPolicy):
        return source
    if source is None:
        return RouterPolicy.from_dict(manifest.router, "manifest.json router")
    return RouterPolicy.from_dict(*read_policy_data(source))


def read_policy_data(source: Mapping[str, Any] | str | Path) -> tuple[dict[str, Any], str]:
    """A policy's keys, given inline or read from a JSON file (a `kdedge route fit` report
    too), and where they came from, for error messages."""
    if isinstance(source, Mapping):
        return dict(source), "router policy"
    path = Path(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"router policy file {path} does not exist") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise ConfigError(f"router policy file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "policy" in data:  # a `kdedge route fit` report
        data = data["policy"]
    if not isinstance(data, dict):
        raise ConfigError(f"router policy file {path} must hold a JSON object")
    return data, str(path)
