"""The two-stage router: stage order, rules, the fallback budget, thread safety, policy errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kdedge.errors import ConfigError
from kdedge.runtimes.router import (
    ANSWER,
    CLARIFY,
    FALLBACK,
    Router,
    RouterPolicy,
    clarifying_question,
    plan_route,
    plan_routes,
)

LABELS = ("order", "refund", "fraud", "chitchat")


def probs(*rows):
    return np.array(rows, dtype=np.float64)


def router(**policy):
    defaults = {"risk_labels": ("fraud",), "max_fallback_rate": None}
    return Router(RouterPolicy(**{**defaults, **policy}), LABELS)


def test_risk_goes_to_the_teacher_before_confidence_is_considered():
    r = router(confidence_threshold=0.6, risk_threshold=0.5)
    d = r.route(
        ["a", "b", "c"],
        probs(
            [0.9, 0.05, 0.03, 0.02],  # confident, no risk -> answer
            [0.45, 0.4, 0.1, 0.05],  # unsure -> clarify
            [0.1, 0.1, 0.75, 0.05],  # risky and confident -> fallback anyway
        ),
    )
    assert [x.route for x in d] == ["answer", "clarify", "fallback"]
    assert [x.reason for x in d] == ["confident", "low_confidence", "risk_label"]
    assert d[2].risk == pytest.approx(0.75)
    assert d[1].candidates[0] == ("order", pytest.approx(0.45))


def test_risk_mass_counts_every_risk_label():
    r = Router(RouterPolicy(risk_labels=("fraud", "refund"), risk_threshold=0.5), LABELS)
    (d,) = r.route(["x"], probs([0.4, 0.3, 0.3, 0.0]))
    assert d.route == "fallback" and d.risk == pytest.approx(0.6)


def test_risk_rules_match_case_insensitively():
    r = router(risk_patterns=(r"\blawyer\b", "chargeback"))
    (d,) = r.route(["I will call my LAWYER"], probs([0.97, 0.01, 0.01, 0.01]))
    assert d.route == "fallback" and d.reason == "risk_rule"
    assert d.risk_hits == (r"\blawyer\b",)


def test_low_confidence_can_fall_back_instead_of_clarifying():
    r = router(low_confidence_action="fallback", confidence_threshold=0.6)
    (d,) = r.route(["x"], probs([0.5, 0.4, 0.05, 0.05]))
    assert (d.route, d.reason) == ("fallback", "low_confidence")


def test_no_risk_labels_means_no_risk_route_even_at_threshold_zero():
    r = Router(RouterPolicy(risk_threshold=0.0, confidence_threshold=0.0), LABELS)
    (d,) = r.route(["x"], probs([0.4, 0.3, 0.2, 0.1]))
    assert d.route == "answer"


def test_the_budget_degrades_fallbacks_to_clarify_and_counts_them():
    r = router(max_fallback_rate=0.2, budget_window=10, budget_min_events=5)
    risky = probs([0.0, 0.0, 1.0, 0.0])
    safe = probs([1.0, 0.0, 0.0, 0.0])
    routes = []
    for i in range(20):
        routes.append(r.route(["x"], risky if i % 2 else safe)[0])
    fallbacks = [d for d in routes if d.route == "fallback"]
    degraded = [d for d in routes if d.reason == "budget_exceeded"]
    assert degraded and all(d.route == "clarify" for d in degraded)
    assert len(fallbacks) + len(degraded) == 10
    stats = r.stats()
    assert stats["budget_exceeded"] == len(degraded)
    assert stats["window_fallback_rate"] <= 0.2 + 1e-9
    # within the window the granted share never exceeds the budget once enforced
    assert len(fallbacks) / 20 <= 0.3


def test_the_budget_window_is_shared_across_threads():
    r = router(max_fallback_rate=0.1, budget_window=1000, budget_min_events=1)
    risky = probs([0.0, 0.0, 1.0, 0.0])
    with ThreadPoolExecutor(max_workers=8) as pool:
        decisions = list(pool.map(lambda _: r.route(["x"], risky)[0], range(400)))
    granted = sum(d.route == "fallback" for d in decisions)
    assert granted == 40  # exactly 10% of 400, no lost updates
    assert sum(r.stats()["decisions"].values()) == 400


def test_plan_routes_is_the_shared_vectorised_core():
    codes = plan_routes(
        np.array([0.9, 0.3, 0.9, 0.3]),
        np.array([0.0, 0.0, 0.8, 0.0]),
        np.array([False, False, False, True]),
        0.5,
        0.5,
        "clarify",
    )
    assert codes.tolist() == [ANSWER, CLARIFY, FALLBACK, FALLBACK]


def test_clarifying_question_names_the_candidates():
    q = clarifying_question([("order_status", 0.4), ("refund", 0.3), ("faq", 0.1)])
    assert q == "Just to check: is this about order status, refund or faq?"
    assert clarifying_question([("refund", 0.5)]) == "Just to check: is this about refund?"


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"confidence_threshold": 2}, "confidence_threshold must be in"),
        ({"low_confidence_action": "teacher"}, "low_confidence_action must be one of"),
        ({"max_fallback_rate": 1.5}, "max_fallback_rate"),
        ({"risk_patterns": ["("]}, "not a regex"),
        ({"threshold": 0.5}, "unknown key"),
    ],
)
def test_policy_errors_are_explicit(policy, message):
    with pytest.raises(ConfigError, match=message):
        RouterPolicy.from_dict(policy)


def test_policy_round_trips_and_ignores_informational_manifest_keys():
    p = RouterPolicy.from_dict(
        {"risk_labels": ["fraud"], "oos_label": "oos", "rare_labels": [], "clarify_top_k": 2}
    )
    assert RouterPolicy.from_dict(p.to_dict()) == p


def test_unknown_risk_label_is_refused():
    with pytest.raises(ConfigError, match="not labels of this model"):
        Router(RouterPolicy(risk_labels=("billing",)), LABELS)


@pytest.mark.parametrize("action", ["clarify", "fallback"])
def test_online_and_vectorised_decisions_agree(action):
    """`route fit` scores thresholds with plan_routes; the server decides with plan_route."""
    rng = np.random.default_rng(3)
    confidence, risk = rng.random(500), rng.random(500)
    hits = rng.random(500) < 0.05
    for ct, rt in [(0.3, 0.5), (0.7, 0.2), (0.0, 1.01), (0.99, 0.0)]:
        policy = RouterPolicy(
            confidence_threshold=ct, risk_threshold=rt, low_confidence_action=action
        )
        vector = plan_routes(confidence, risk, hits, ct, rt, action)
        online = [
            plan_route(c, r >= rt, h, policy)
            for c, r, h in zip(confidence, risk, hits, strict=True)
        ]
        assert vector.tolist() == online
