"""Route fitting on synthetic holdouts with known answers, and the seed's economics."""

from __future__ import annotations

import numpy as np
import pytest

from kdedge.errors import ConfigError
from kdedge.runtimes.economics import compare, simulate
from kdedge.runtimes.routefit import (
    Holdout,
    evaluate_thresholds,
    fit_thresholds,
    outcome_metrics,
    plain_threshold,
)
from kdedge.runtimes.router import ANSWER, CLARIFY, FALLBACK

LABELS = ("a", "b", "risk")


def holdout(seed=0, n=400):
    """Confident rows are right; unsure rows are right half the time; 10% are risky."""
    rng = np.random.default_rng(seed)
    gold = rng.choice(["a", "b"], size=n).tolist()
    for i in range(0, n, 10):
        gold[i] = "risk"
    probs = np.zeros((n, 3))
    for i, g in enumerate(gold):
        confident = rng.random() < 0.7
        top = LABELS.index(g) if confident or rng.random() < 0.5 else (LABELS.index(g) + 1) % 3
        p = rng.uniform(0.8, 0.99) if confident else rng.uniform(0.35, 0.6)
        probs[i] = (1 - p) / 2
        probs[i, top] = p
    return Holdout.build(probs, LABELS, gold, risk_labels=("risk",))


def test_outcome_metrics_count_each_outcome():
    h = Holdout(
        confidence=np.array([0.9, 0.9, 0.4, 0.4]),
        risk=np.array([0.0, 0.9, 0.0, 0.0]),
        rule_hit=np.zeros(4, bool),
        student_correct=np.array([True, True, False, True]),
        teacher_correct=np.array([True, False, True, True]),
        gold_risk=np.array([False, True, False, False]),
    )
    m = outcome_metrics(np.array([ANSWER, ANSWER, FALLBACK, CLARIFY]), h)
    assert m["system_accuracy"] == 0.75  # 2 student + 1 teacher right
    assert m["bad_outcome_rate"] == 0.0
    assert m["clarify_rate"] == m["fallback_rate"] == 0.25
    assert m["unsafe_false_accepts"] == 1  # the risky message the student answered
    assert m["score"] == pytest.approx(0.75 - 0 - 5 * 0.25)


def test_fit_meets_the_fallback_target_and_beats_the_plain_threshold_on_safety():
    h = holdout()
    fit = fit_thresholds(h, target_fallback_rate=0.15, max_clarify_rate=0.3)
    assert fit.metrics["fallback_rate"] <= 0.15
    assert fit.metrics["clarify_rate"] <= 0.3
    assert fit.plain["fallback_rate"] <= fit.metrics["fallback_rate"] + 1e-9
    assert fit.metrics["unsafe_false_accept_rate"] < fit.plain["unsafe_false_accept_rate"]
    assert fit.metrics["score"] >= fit.plain["score"]
    assert fit.student_only["fallback_rate"] == 0
    assert fit.searched > 100


def test_fit_for_a_target_accuracy_minimises_fallbacks():
    h = holdout(seed=1)
    fit = fit_thresholds(h, target_accuracy=0.85, max_clarify_rate=0.0)
    assert fit.metrics["system_accuracy"] >= 0.85
    assert fit.metrics["clarify_rate"] == 0
    looser = fit_thresholds(h, target_accuracy=0.75, max_clarify_rate=0.0)
    assert looser.metrics["fallback_rate"] <= fit.metrics["fallback_rate"]


def test_an_unreachable_target_says_what_is_reachable():
    h = holdout()
    with pytest.raises(ConfigError, match="no router thresholds reach system accuracy"):
        fit_thresholds(h, target_accuracy=1.01, max_clarify_rate=0.0)
    with pytest.raises(ConfigError, match="exactly one target"):
        fit_thresholds(h)


def test_plain_threshold_stays_within_the_rate_even_with_ties():
    h = Holdout.build(np.array([[0.5, 0.5, 0.0]] * 10 + [[0.9, 0.1, 0.0]] * 10), LABELS, ["a"] * 20)
    _, routes = plain_threshold(h, 0.25)
    assert (routes == FALLBACK).mean() <= 0.25


def test_thresholds_transfer_to_a_test_set():
    fit = fit_thresholds(holdout(), target_fallback_rate=0.15, max_clarify_rate=0.3)
    test = evaluate_thresholds(holdout(seed=7), fit.thresholds, fit.plain["confidence_threshold"])
    assert set(test) == {"router", "plain_threshold", "student_only"}
    assert test["router"]["n"] == 400


def test_holdout_labels_must_belong_to_the_bundle():
    with pytest.raises(ConfigError, match="not labels of this bundle"):
        Holdout.build(np.ones((1, 3)) / 3, LABELS, ["zebra"])


def test_simulate_reproduces_the_seed_cost_figures():
    traffic = {"requests_per_day": 10_000_000, "student_cost": 0.0002, "teacher_cost": 0.003}
    planned = simulate({"fallback_rate": 0.05}, **traffic)
    actual = simulate({"fallback_rate": 0.18}, **traffic)
    assert planned["cost_per_day"] == 3500
    assert actual["cost_per_day"] == 7400
    assert actual["cost_per_month"] - planned["cost_per_month"] == 117_000
    assert actual["teacher_calls_per_day"] == 1_800_000
    both = compare(
        {"planned": {"fallback_rate": 0.05}, "actual": {"fallback_rate": 0.18}}, **traffic
    )
    assert both["actual"]["vs_planned"]["cost_per_day"] == 3900


def test_simulate_counts_bad_outcomes_and_rejects_nonsense():
    r = simulate(
        {"fallback_rate": 0.064, "bad_outcome_rate": 0.01, "unsafe_false_accept_rate": 0.0011},
        requests_per_day=10_000_000,
        student_cost=0.0002,
        teacher_cost=0.003,
    )
    assert r["cost_per_day"] == 3920  # the seed's "after" figure
    assert r["bad_outcomes_per_day"] == 100_000
    assert r["unsafe_false_accepts_per_day"] == 11_000
    with pytest.raises(ConfigError, match="fallback_rate"):
        simulate({}, requests_per_day=1, student_cost=0, teacher_cost=0)
    with pytest.raises(ConfigError, match="non-negative"):
        simulate({"fallback_rate": 0.1}, requests_per_day=-1, student_cost=0, teacher_cost=0)
