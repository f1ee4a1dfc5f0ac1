"""Turn measured routing rates into money and incidents at a given traffic (seed 000, failure C).

Every request pays the student; the fallback share also pays the teacher. With the seed's
figures (10M requests/day, student $0.0002, teacher $0.003), a 5% fallback rate costs
$3,500/day and 18% costs $7,400/day: the $3,900/day ($117,000/month) overrun that the
two-stage router was built to prevent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kdedge.errors import ConfigError

DAYS_PER_MONTH = 30


def simulate(
    rates: Mapping[str, float],
    *,
    requests_per_day: float,
    student_cost: float,
    teacher_cost: float,
    clarify_cost: float = 0.0,
) -> dict[str, Any]:
    """Daily and monthly cost, teacher calls and bad outcomes for one set of rates.

    ``rates`` needs ``fallback_rate``; ``bad_outcome_rate``, ``clarify_rate`` and
    ``unsafe_false_accept_rate`` are used when present. Costs are per request, in USD.
    """
    if requests_per_day < 0 or min(student_cost, teacher_cost, clarify_cost) < 0:
        raise ConfigError("traffic and costs must be non-negative")
    if "fallback_rate" not in rates:
        raise ConfigError("the rates need at least a fallback_rate")
    fallback = float(rates["fallback_rate"])
    if not 0.0 <= fallback <= 1.0:
        raise ConfigError(f"fallback_rate must be in [0, 1], got {fallback}")
    teacher_calls = requests_per_day * fallback
    clarifies = requests_per_day * float(rates.get("clarify_rate", 0.0))
    student_daily = requests_per_day * student_cost
    teacher_daily = teacher_calls * teacher_cost
    daily = student_daily + teacher_daily + clarifies * clarify_cost
    out: dict[str, Any] = {
        "requests_per_day": requests_per_day,
        "fallback_rate": fallback,
        "teacher_calls_per_day": round(teacher_calls, 2),
        "student_cost_per_day": round(student_daily, 2),
        "teacher_cost_per_day": round(teacher_daily, 2),
        "cost_per_day": round(daily, 2),
        "cost_per_month": round(daily * DAYS_PER_MONTH, 2),
    }
    if "clarify_rate" in rates:
        out["clarifies_per_day"] = round(clarifies, 2)
    if "bad_outcome_rate" in rates:
        out["bad_outcomes_per_day"] = round(requests_per_day * float(rates["bad_outcome_rate"]), 2)
    if "unsafe_false_accept_rate" in rates:
        out["unsafe_false_accepts_per_day"] = round(
            requests_per_day * float(rates["unsafe_false_accept_rate"]), 2
        )
    return out


def compare(scenarios: Mapping[str, Mapping[str, float]], **traffic: float) -> dict[str, Any]:
    """:func:`simulate` for each named scenario, plus each one's difference from the first."""
    results = {name: simulate(rates, **traffic) for name, rates in scenarios.items()}
    if not results:
        raise ConfigError("nothing to simulate")
    base_name = next(iter(results))
    base = results[base_name]
    for r in results.values():
        r["vs_" + base_name] = {
            "cost_per_day": round(r["cost_per_day"] - base["cost_per_day"], 2),
            "cost_per_month": round(r["cost_per_month"] - base["cost_per_month"], 2),
        }
    return results
