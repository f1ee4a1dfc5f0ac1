"""Release gates and checkpoint selection (the early-stop rule: :mod:`kdedge.distill.stop_rule`).

A gates file (TOML) holds thresholds every shipped checkpoint must meet, and weights that
rank the checkpoints that meet them::

    [gates]
    accuracy = { min = 0.85 }
    ece = { max = 0.05 }
    [score]
    accuracy = 0.5
    ece = -0.1
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdedge.distill.metrics import REPORT_METRICS
from kdedge.errors import ConfigError, DataError
from kdedge.runtimes.manifest_fields import finite

EXTRA_METRICS = ("latency_ms_p50", "latency_ms_p95")
"""Metrics measured outside the classification report that gates know without being told."""

_SECTIONS = ("gates", "score")
_BOUNDS = ("min", "max")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fmt_pair(value: float, threshold: float) -> tuple[str, str]:
    """Format two numbers with 3 decimals, or more when 3 would print them equal."""
    for digits in range(3, 10):
        a, b = f"{value:.{digits}f}", f"{threshold:.{digits}f}"
        if a != b:
            break
    return a, b


@dataclass(frozen=True)
class GateRule:
    """``metric`` must be ``>= min`` and/or ``<= max`` (both bounds inclusive)."""

    metric: str
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ConfigError(f"gate '{self.metric}' has neither min nor max; give at least one")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(
                f"gate '{self.metric}' has min {self.min} > max {self.max}; no value can pass"
            )

    @property
    def threshold(self) -> str:
        """Human-readable bounds, e.g. ``"min 0.85"``."""
        bounds = (("min", self.min), ("max", self.max))
        return ", ".join(f"{name} {bound:g}" for name, bound in bounds if bound is not None)


def _load_toml(path: Path) -> dict[str, Any]:
    from kdedge.toml_sections import read_toml

    if not path.is_file():
        raise ConfigError(f"gates file {path} does not exist; pass the path of a .toml file")
    return read_toml(path, "gates file")


@dataclass(frozen=True)
class Gates:
    """Gate rules (all must pass) and score weights (rank the checkpoints that pass)."""

    rules: tuple[GateRule, ...] = ()
    weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, path: str | Path, *, extra_metrics: Iterable[str] = ()) -> Gates:
        """Load a gates file; ``extra_metrics`` names metrics beyond the known ones."""
        path = Path(path)
        return cls.from_dict(_load_toml(path), source=str(path), extra_metrics=extra_metrics)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], source: str = "<dict>", *, extra_metrics: Iterable[str] = ()
    ) -> Gates:
        """Build gates from the parsed TOML structure; ``source`` names it in errors."""
        valid = (*REPORT_METRICS, *EXTRA_METRICS, *extra_metrics)
        options = ", ".join(valid)
        for key in data:
            if key not in _SECTIONS:
                raise ConfigError(
                    f"{source}: unknown top-level key '{key}'; valid keys: {', '.join(_SECTIONS)}"
                )
        sections = {}
        for name in _SECTIONS:
            section = data.get(name, {})
            if not isinstance(section, Mapping):
                raise ConfigError(f"{source}: '{name}' must be a table ([{name}]); got {section!r}")
            for metric in section:
                if metric not in valid:
                    raise ConfigError(
                        f"{source}: unknown metric '{metric}' in [{name}]; valid metrics: {options}"
                    )
            sections[name] = section

        rules = []
        for metric, spec in sections["gates"].items():
            if not isinstance(spec, Mapping):
                raise ConfigError(
                    f"{source}: gate '{metric}' must be a table like {{ min = 0.8 }} or "
                    f"{{ max = 0.05 }}; got {spec!r}"
                )
            for key, value in spec.items():
                if key not in _BOUNDS:
                    raise ConfigError(
                        f"{source}: unknown key '{key}' in gate '{metric}'; valid keys: min, max"
                    )
                if not finite(value):
                    raise ConfigError(
                        f"{source}: gate '{metric}' {key} must be a finite number; got {value!r}"
                    )
            if not spec:
                raise ConfigError(
                    f"{source}: gate '{metric}' has neither min nor max; give at least one"
                )
            try:
                rule = GateRule(metric, min=spec.get("min"), max=spec.get("max"))
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
            rules.append(rule)

        weights = {}
        for metric, weight in sections["score"].items():
            if not finite(weight):
                raise ConfigError(
                    f"{source}: score weight for '{metric}' must be a finite number; got {weight!r}"
                )
            weights[metric] = float(weight)
        return cls(rules=tuple(rules), weights=weights)

    @classmethod
    def default(cls) -> Gates:
        """Permissive gates: ``accuracy >= 0`` always passes; checkpoints rank by accuracy.

        Use :data:`INTENT_CLASSIFIER_GATES` or a gates file for real release thresholds.
        """
        return cls(rules=(GateRule("accuracy", min=0.0),), weights={"accuracy": 1.0})

    def to_dict(self) -> dict[str, Any]:
        """The TOML structure these gates were built from."""
        gates = {
            r.metric: {k: v for k, v in (("min", r.min), ("max", r.max)) if v is not None}
            for r in self.rules
        }
        return {"gates": gates, "score": dict(self.weights)}


INTENT_CLASSIFIER_GATES = Gates.from_dict(
    {
        "gates": {
            "accuracy": {"min": 0.85},
            "rare_class_recall": {"min": 0.80},
            "oos_precision": {"min": 0.90},
            "ece": {"max": 0.05},
        },
        "score": {
            "accuracy": 0.5,
            "rare_class_recall": 0.3,
            "oos_precision": 0.2,
            "ece": -0.1,
        },
    },
    source="INTENT_CLASSIFIER_GATES",
)
"""Recommended release gates for intent classifiers."""


@dataclass(frozen=True)
class GateOutcome:
    """One rule checked: ``passed`` is None when the metric was unavailable (skipped)."""

    rule: GateRule
    value: float | None
    passed: bool | None

    @property
    def metric(self) -> str:
        return self.rule.metric

    @property
    def skipped(self) -> bool:
        return self.passed is None

    def describe(self) -> str:
        """E.g. ``"rare_class_recall 0.712 < min 0.800"``; empty when it passed."""
        if self.value is None:
            return f"{self.metric} skipped (not measured)"
        if not math.isfinite(self.value):
            return f"{self.metric} {self.value} is not a finite number ({self.rule.threshold})"
        if self.rule.min is not None and self.value < self.rule.min:
            value, bound = _fmt_pair(self.value, self.rule.min)
            return f"{self.metric} {value} < min {bound}"
        if self.rule.max is not None and self.value > self.rule.max:
            value, bound = _fmt_pair(self.value, self.rule.max)
            return f"{self.metric} {value} > max {bound}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        status = "skipped" if self.skipped else "passed" if self.passed else "failed"
        return {
            "metric": self.metric,
            "min": self.rule.min,
            "max": self.rule.max,
            "value": None if self.value is None else round(self.value, 6),
            "status": status,
        }


@dataclass(frozen=True)
class GateReport:
    """Every rule's outcome and the weighted score of one checkpoint."""

    outcomes: tuple[GateOutcome, ...]
    score: float

    @property
    def passed(self) -> bool:
        """True when no measured metric failed its gate (skipped rules do not fail)."""
        return all(o.passed is not False for o in self.outcomes)

    @property
    def failures(self) -> list[str]:
        return [o.describe() for o in self.outcomes if o.passed is False]

    @property
    def skipped(self) -> list[str]:
        return [o.metric for o in self.outcomes if o.skipped]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "score": round(self.score, 6),
            "failures": self.failures,
            "skipped": self.skipped,
            "rules": [o.to_dict() for o in self.outcomes],
        }


def _metric_value(metrics: Mapping[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if value is None:
        return None
    if not _is_number(value):
        raise DataError(f"metric '{name}' must be a number or None; got {value!r}")
    return float(value)


def check_gates(metrics: Mapping[str, float | None], gates: Gates) -> GateReport:
    """Check ``metrics`` against ``gates``.

    A metric that is None or absent (no rare rows, latency not measured) is skipped: it is
    listed in :attr:`GateReport.skipped` but does not fail. NaN fails. The score is the
    weighted sum over the weighted metrics that are available.
    """
    outcomes = []
    for rule in gates.rules:
        value = _metric_value(metrics, rule.metric)
        if value is None:
            outcomes.append(GateOutcome(rule, None, None))
            continue
        ok = math.isfinite(value)
        ok = ok and (rule.min is None or value >= rule.min)
        ok = ok and (rule.max is None or value <= rule.max)
        outcomes.append(GateOutcome(rule, value, ok))
    score = 0.0
    for name, weight in gates.weights.items():
        value = _metric_value(metrics, name)
        if value is not None and math.isfinite(value):
            score += weight * value
    return GateReport(outcomes=tuple(outcomes), score=score)


def select_checkpoint(candidates: Sequence[tuple[str, GateReport]]) -> str | None:
    """The id of the best-scoring candidate that passed its gates; earlier wins ties."""
    best_id, best_score = None, -math.inf
    for candidate_id, report in candidates:
        if report.passed and (best_id is None or report.score > best_score):
            best_id, best_score = candidate_id, report.score
    return best_id
