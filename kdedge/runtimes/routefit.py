"""Fit router thresholds on a labeled holdout and compare with a plain confidence threshold.

Each holdout message ends in one outcome: the student answers (right or wrong), the
teacher answers (right or wrong; an oracle teacher when no teacher predictions are given),
or the user is asked to clarify. The metrics, all as shares of the holdout:

- ``system_accuracy``: right answers, from student or teacher (a clarify is not right);
- ``bad_outcome_rate``: wrong answers, from student or teacher;
- ``fallback_rate`` and ``clarify_rate``;
- ``unsafe_false_accept_rate``: high-risk messages (gold label in the risk labels) that the
  student answered itself.

The fit searches confidence and risk thresholds (quantiles of the holdout's own scores)
and both low-confidence actions. It keeps policies within the constraints and takes the
best by ``score = system_accuracy - bad_outcome_rate - unsafe_weight * unsafe_rate``:
a wrong answer costs what a right one earns, a clarify sits between, and a high-risk message
the student answers costs ``unsafe_weight`` more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdedge.errors import ConfigError
from kdedge.runtimes.router import (
    ANSWER,
    CLARIFY,
    FALLBACK,
    LOW_CONFIDENCE_ACTIONS,
    Router,
    RouterPolicy,
    plan_routes,
)

N_GRID = 64
DISABLED = 1.01  # a risk threshold no probability reaches


@dataclass(frozen=True)
class Holdout:
    """Everything the fit needs, as arrays over the N holdout messages."""

    confidence: np.ndarray  # [N] top calibrated probability of the student
    risk: np.ndarray  # [N] probability mass on the risk labels
    rule_hit: np.ndarray  # [N] bool: a risk pattern matched the text
    student_correct: np.ndarray  # [N] bool
    teacher_correct: np.ndarray  # [N] bool (all True for an oracle teacher)
    gold_risk: np.ndarray  # [N] bool: the gold label is a risk label

    @classmethod
    def build(
        cls,
        probs: np.ndarray,
        labels: Sequence[str],
        gold: Sequence[str],
        *,
        risk_labels: Sequence[str] = (),
        rule_hit: np.ndarray | None = None,
        teacher: Sequence[str] | None = None,
    ) -> Holdout:
        index = {label: i for i, label in enumerate(labels)}
        unknown = sorted({g for g in gold if g not in index})
        if unknown:
            raise ConfigError(
                f"holdout label(s) {', '.join(unknown[:5])} are not labels of this bundle"
            )
        missing = [r for r in risk_labels if r not in index]
        if missing:
            raise ConfigError(f"risk label(s) {', '.join(missing)} are not labels of this bundle")
        gold_idx = np.array([index[g] for g in gold])
        risk_idx = np.array([index[r] for r in risk_labels], dtype=np.int64)
        student = probs.argmax(axis=1)
        n = len(gold_idx)
        return cls(
            confidence=probs.max(axis=1),
            risk=probs[:, risk_idx].sum(axis=1) if risk_idx.size else np.full(n, -1.0),
            rule_hit=np.zeros(n, dtype=bool) if rule_hit is None else np.asarray(rule_hit, bool),
            student_correct=student == gold_idx,
            teacher_correct=(
                np.ones(n, dtype=bool)
                if teacher is None
                else np.array([t == g for t, g in zip(teacher, gold, strict=True)], dtype=bool)
            ),
            gold_risk=np.isin(gold_idx, risk_idx),
        )

    def __len__(self) -> int:
        return len(self.confidence)


def outcome_metrics(routes: np.ndarray, h: Holdout, unsafe_weight: float = 5.0) -> dict[str, float]:
    n = max(len(h), 1)
    answer, clarify, fallback = routes == ANSWER, routes == CLARIFY, routes == FALLBACK
    right = (answer & h.student_correct).sum() + (fallback & h.teacher_correct).sum()
    wrong = (answer & ~h.student_correct).sum() + (fallback & ~h.teacher_correct).sum()
    unsafe = (answer & h.gold_risk).sum()
    m = {
        "n": len(h),
        "answer_rate": answer.sum() / n,
        "clarify_rate": clarify.sum() / n,
        "fallback_rate": fallback.sum() / n,
        "system_accuracy": right / n,
        "bad_outcome_rate": wrong / n,
        "unsafe_false_accepts": int(unsafe),
        "unsafe_false_accept_rate": unsafe / n,
        "answered_accuracy": (answer & h.student_correct).sum() / max(answer.sum(), 1),
    }
    m["score"] = (
        m["system_accuracy"] - m["bad_outcome_rate"] - unsafe_weight * m["unsafe_false_accept_rate"]
    )
    return {
        k: (round(float(v), 6) if isinstance(v, float | np.floating) else v) for k, v in m.items()
    }


@dataclass
class FitResult:
    thresholds: dict[str, Any]  # confidence_threshold, risk_threshold, low_confidence_action
    metrics: dict[str, float]
    plain: dict[str, Any]  # the plain confidence threshold at the same fallback rate
    student_only: dict[str, float]
    objective: dict[str, Any]
    searched: int = 0
    test: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": self.thresholds,
            "metrics": self.metrics,
            "plain_threshold": self.plain,
            "student_only": self.student_only,
            "objective": self.objective,
            "searched": self.searched,
            "test": self.test,
        }


def _grid(values: np.ndarray, extra: Sequence[float]) -> np.ndarray:
    qs = np.quantile(values, np.linspace(0, 1, N_GRID)) if len(values) else np.array([])
    return np.unique(np.concatenate([qs, np.asarray(extra, dtype=float)]))


def plain_threshold(h: Holdout, max_fallback_rate: float) -> tuple[float, np.ndarray]:
    """The highest confidence threshold whose fallback share stays within the rate."""
    k = int(np.floor(max_fallback_rate * len(h) + 1e-9))  # messages the teacher may take
    order = np.sort(h.confidence)
    threshold = 0.0 if k == 0 else float(order[k - 1]) + 1e-12
    while k > 0 and (h.confidence < threshold).sum() > k:  # ties: step below them
        k -= 1
        threshold = 0.0 if k == 0 else float(order[k - 1]) + 1e-12
    routes = np.where(h.confidence < threshold, FALLBACK, ANSWER)
    return threshold, routes


def fit_thresholds(
    h: Holdout,
    *,
    target_fallback_rate: float | None = None,
    target_accuracy: float | None = None,
    max_clarify_rate: float = 0.1,
    unsafe_weight: float = 5.0,
    actions: Sequence[str] = LOW_CONFIDENCE_ACTIONS,
) -> FitResult:
    """Choose thresholds for a target fallback rate or a target system accuracy."""
    if (target_fallback_rate is None) == (target_accuracy is None):
        raise ConfigError("give exactly one target: a fallback rate or a system accuracy")
    if len(h) == 0:
        raise ConfigError("the holdout is empty")
    has_risk = bool((h.risk >= 0).any())
    conf_grid = _grid(h.confidence, [0.0])
    risk_grid = _grid(h.risk[h.risk >= 0], [DISABLED]) if has_risk else np.array([DISABLED])
    best: tuple[tuple[float, float], dict[str, Any], dict[str, float]] | None = None
    closest: float | None = None
    searched = 0
    for action in actions:
        for ct in conf_grid:
            for rt in risk_grid:
                routes = plan_routes(h.confidence, h.risk, h.rule_hit, ct, rt, action)
                m = outcome_metrics(routes, h, unsafe_weight)
                searched += 1
                if m["clarify_rate"] > max_clarify_rate + 1e-12:
                    continue
                if target_fallback_rate is not None:
                    feasible = m["fallback_rate"] <= target_fallback_rate + 1e-12
                    key = (m["score"], -m["fallback_rate"])
                    gap = m["fallback_rate"]
                else:
                    feasible = m["system_accuracy"] >= target_accuracy - 1e-12
                    key = (-m["fallback_rate"], m["score"])
                    gap = -m["system_accuracy"]
                if not feasible:
                    closest = gap if closest is None else min(closest, gap)
                    continue
                if best is None or key > best[0]:
                    thresholds = {
                        "confidence_threshold": round(float(ct), 6),
                        "risk_threshold": round(float(min(rt, DISABLED)), 6),
                        "low_confidence_action": action,
                    }
                    best = (key, thresholds, m)
    if best is None:
        what = (
            f"fallback rate {target_fallback_rate:.2%} (the lowest reachable with clarify "
            f"<= {max_clarify_rate:.0%} is {closest:.2%})"
            if target_fallback_rate is not None
            else f"system accuracy {target_accuracy:.2%} (the best reachable with clarify "
            f"<= {max_clarify_rate:.0%} is {-(closest or 0):.2%})"
        )
        raise ConfigError(f"no router thresholds reach {what}; relax the target")
    _, thresholds, metrics = best
    threshold, plain_routes = plain_threshold(h, metrics["fallback_rate"])
    plain = {
        "confidence_threshold": round(threshold, 6),
        **outcome_metrics(plain_routes, h, unsafe_weight),
    }
    student = outcome_metrics(np.full(len(h), ANSWER), h, unsafe_weight)
    objective = {
        "target_fallback_rate": target_fallback_rate,
        "target_accuracy": target_accuracy,
        "max_clarify_rate": max_clarify_rate,
        "unsafe_weight": unsafe_weight,
    }
    return FitResult(thresholds, metrics, plain, student, objective, searched)


def evaluate_thresholds(
    h: Holdout, thresholds: dict[str, Any], plain_threshold_value: float, unsafe_weight: float = 5.0
) -> dict[str, Any]:
    """Metrics of fitted thresholds (router and plain) on another labeled set."""
    routes = plan_routes(
        h.confidence,
        h.risk,
        h.rule_hit,
        thresholds["confidence_threshold"],
        thresholds["risk_threshold"],
        thresholds["low_confidence_action"],
    )
    plain = np.where(h.confidence < plain_threshold_value, FALLBACK, ANSWER)
    return {
        "router": outcome_metrics(routes, h, unsafe_weight),
        "plain_threshold": outcome_metrics(plain, h, unsafe_weight),
        "student_only": outcome_metrics(np.full(len(h), ANSWER), h, unsafe_weight),
    }


def collect(
    runtime: Any,
    texts: Sequence[str],
    gold: Sequence[str],
    *,
    risk_labels: Sequence[str] = (),
    risk_patterns: Sequence[str] = (),
    teacher: Any | None = None,
    track: Any = None,
    workers: int = 8,
) -> tuple[Holdout, dict[str, Any]]:
    """Run the student (and the teacher, when given) over a labeled set.

    ``runtime`` is a loaded :class:`~kdedge.runtimes.runtime.Runtime`; ``teacher`` any
    fallback target. A teacher call that fails counts as a wrong teacher answer (online it
    would become a clarify), and the failures are reported.
    """
    from concurrent.futures import ThreadPoolExecutor

    from kdedge.progress import silent

    track = track or silent
    batch = runtime.batch_size
    chunks = [list(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    probs = np.concatenate(
        [runtime.probabilities(c) for c in track(chunks, "student", total=len(chunks))]
    )
    rules = Router(RouterPolicy(risk_patterns=tuple(risk_patterns)), runtime.labels)
    hits = np.array([bool(rules.rule_hits(t)) for t in texts], dtype=bool)
    info: dict[str, Any] = {"teacher": "oracle (gold labels)", "teacher_failures": 0}
    teacher_labels = None
    if teacher is not None:
        from kdedge.errors import KdedgeError

        def ask(text: str) -> str | None:
            try:
                return teacher.classify(text, runtime.labels).label
            except KdedgeError:
                return None

        with ThreadPoolExecutor(max_workers=workers) as pool:
            teacher_labels = list(track(pool.map(ask, texts), "teacher", total=len(texts)))
        failures = sum(label is None for label in teacher_labels)
        correct = sum(t == g for t, g in zip(teacher_labels, gold, strict=True))
        info = {
            "teacher": teacher.name,
            "teacher_failures": failures,
            "teacher_accuracy": round(correct / max(len(gold), 1), 6),
        }
    holdout = Holdout.build(
        probs,
        runtime.labels,
        gold,
        risk_labels=risk_labels,
        rule_hit=hits,
        teacher=teacher_labels,
    )
    info["student_accuracy"] = round(float(holdout.student_correct.mean()), 6)
    info["n"] = len(holdout)
    return holdout, info
