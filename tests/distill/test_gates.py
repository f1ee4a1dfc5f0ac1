from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kdedge.distill.gates import (
    INTENT_CLASSIFIER_GATES,
    GateRule,
    Gates,
    check_gates,
    select_checkpoint,
)
from kdedge.distill.metrics import classification_report
from kdedge.errors import ConfigError, DataError

GOOD_TOML = """
[gates]
accuracy = { min = 0.85 }
rare_class_recall = { min = 0.80 }
oos_precision = { min = 0.90 }
ece = { max = 0.05 }

[score]            # weighted score to rank checkpoints that pass every gate
accuracy = 0.5
rare_class_recall = 0.3
oos_precision = 0.2
ece = -0.1
"""

GOOD_METRICS = {"accuracy": 0.9, "rare_class_recall": 0.85, "oos_precision": 0.95, "ece": 0.03}


def _write(tmp_path, text):
    path = tmp_path / "gates.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_from_toml_parses_rules_and_weights(tmp_path):
    gates = Gates.from_toml(_write(tmp_path, GOOD_TOML))
    assert gates.rules == (
        GateRule("accuracy", min=0.85),
        GateRule("rare_class_recall", min=0.80),
        GateRule("oos_precision", min=0.90),
        GateRule("ece", max=0.05),
    )
    assert gates.weights == {
        "accuracy": 0.5,
        "rare_class_recall": 0.3,
        "oos_precision": 0.2,
        "ece": -0.1,
    }
    assert gates == INTENT_CLASSIFIER_GATES
    assert Gates.from_dict(gates.to_dict()) == gates


def test_range_gate_and_missing_sections(tmp_path):
    gates = Gates.from_toml(_write(tmp_path, "[gates]\nnll = { min = 0.1, max = 2 }\n"))
    assert gates.rules == (GateRule("nll", min=0.1, max=2.0),)
    assert gates.weights == {}
    assert Gates.from_dict({}) == Gates()


def test_latency_is_known_and_extra_metrics_extend(tmp_path):
    gates = Gates.from_dict({"gates": {"latency_ms_p50": {"max": 20}}})
    assert gates.rules[0].metric == "latency_ms_p50"
    path = _write(tmp_path, "[score]\nthroughput = 1.0\n")
    with pytest.raises(ConfigError, match="throughput"):
        Gates.from_toml(path)
    assert Gates.from_toml(path, extra_metrics=["throughput"]).weights == {"throughput": 1.0}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[gate]\naccuracy = { min = 0.8 }\n", r"unknown top-level key 'gate'.*gates, score"),
        (
            "[gates]\naccuracyy = { min = 0.8 }\n",
            r"unknown metric 'accuracyy' in \[gates\].*macro_f1",
        ),
        ("[gates]\naccuracy = 0.8\n", r"gate 'accuracy' must be a table like"),
        ("[gates]\naccuracy = {}\n", r"gate 'accuracy' has neither min nor max"),
        ("[gates]\naccuracy = { minimum = 0.8 }\n", r"unknown key 'minimum'.*valid keys: min, max"),
        ("[gates]\naccuracy = { min = '0.8' }\n", r"gate 'accuracy' min must be a finite number"),
        ("[gates]\naccuracy = { min = true }\n", r"must be a finite number"),
        ("[gates]\naccuracy = { min = nan }\n", r"must be a finite number"),
        ("[gates]\naccuracy = { min = 0.9, max = 0.8 }\n", r"min 0.9 > max 0.8"),
        ("[score]\nlatency = 1.0\n", r"unknown metric 'latency' in \[score\]"),
        ("[score]\naccuracy = 'high'\n", r"score weight for 'accuracy' must be a finite number"),
        ("gates = 3\n", r"'gates' must be a table"),
        ("[gates\naccuracy = 1\n", r"not valid TOML"),
    ],
)
def test_from_toml_errors_name_key_file_and_fix(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as info:
        Gates.from_toml(path)
    assert str(path) in str(info.value)


def test_from_toml_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Gates.from_toml(tmp_path / "nope.toml")


def test_gate_rule_needs_a_bound():
    with pytest.raises(ConfigError, match="neither min nor max"):
        GateRule("accuracy")
    assert GateRule("ece", min=0.0, max=0.1).threshold == "min 0, max 0.1"


def test_check_gates_passes_and_scores():
    report = check_gates(GOOD_METRICS, INTENT_CLASSIFIER_GATES)
    assert report.passed and report.failures == [] and report.skipped == []
    assert report.score == pytest.approx(0.5 * 0.9 + 0.3 * 0.85 + 0.2 * 0.95 - 0.1 * 0.03)


def test_check_gates_failure_messages():
    metrics = {**GOOD_METRICS, "rare_class_recall": 0.712, "ece": 0.071}
    report = check_gates(metrics, INTENT_CLASSIFIER_GATES)
    assert not report.passed
    assert report.failures == ["rare_class_recall 0.712 < min 0.800", "ece 0.071 > max 0.050"]
    statuses = [rule["status"] for rule in report.to_dict()["rules"]]
    assert statuses == ["passed", "failed", "passed", "failed"]


def test_failure_message_shows_enough_digits():
    report = check_gates({**GOOD_METRICS, "accuracy": 0.8499}, INTENT_CLASSIFIER_GATES)
    assert report.failures == ["accuracy 0.8499 < min 0.8500"]


def test_bounds_are_inclusive():
    metrics = {"accuracy": 0.85, "rare_class_recall": 0.8, "oos_precision": 0.9, "ece": 0.05}
    assert check_gates(metrics, INTENT_CLASSIFIER_GATES).passed


def test_none_and_absent_metrics_are_skipped_not_failed():
    metrics = {"accuracy": 0.9, "rare_class_recall": None, "ece": 0.01}  # no oos_precision
    report = check_gates(metrics, INTENT_CLASSIFIER_GATES)
    assert report.passed
    assert report.skipped == ["rare_class_recall", "oos_precision"]
    assert report.score == pytest.approx(0.5 * 0.9 - 0.1 * 0.01)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["rules"][1] == {
        "metric": "rare_class_recall",
        "min": 0.8,
        "max": None,
        "value": None,
        "status": "skipped",
    }


def test_nan_metric_fails():
    report = check_gates({**GOOD_METRICS, "accuracy": math.nan}, INTENT_CLASSIFIER_GATES)
    assert not report.passed
    assert report.failures[0].startswith("accuracy nan is not a finite number")


def test_non_numeric_metric_is_an_error():
    with pytest.raises(DataError, match=r"'accuracy'.*'high'"):
        check_gates({"accuracy": "high"}, Gates.default())


def test_default_gates_always_pass_and_rank_by_accuracy():
    assert check_gates({"accuracy": 0.0}, Gates.default()).passed
    assert check_gates({"accuracy": 0.7}, Gates.default()).score == pytest.approx(0.7)


def test_check_gates_on_a_classification_report():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    report = classification_report(probs, np.array([0, 1, 1]), ["a", "oos"], oos_label="oos")
    metrics = {**report.to_dict(), "latency_ms_p50": 3.2}
    gate_report = check_gates(metrics, INTENT_CLASSIFIER_GATES)
    assert gate_report.skipped == ["rare_class_recall"]
    assert gate_report.failures[0] == "accuracy 0.667 < min 0.850"
    assert check_gates(report.metrics(), INTENT_CLASSIFIER_GATES).failures == gate_report.failures


def _gate_report(score: float, passed: bool):
    gates = Gates(rules=(GateRule("accuracy", min=0.5),), weights={"score": 1.0})
    return check_gates(
        {"accuracy": 0.9 if passed else 0.1, "score": score},
        Gates.from_dict(gates.to_dict(), extra_metrics=["score"]),
    )


def test_select_checkpoint_picks_best_passing_score():
    candidates = [
        ("epoch-1", _gate_report(0.9, passed=False)),
        ("epoch-2", _gate_report(0.5, passed=True)),
        ("epoch-3", _gate_report(0.7, passed=True)),
        ("epoch-4", _gate_report(0.6, passed=True)),
    ]
    assert select_checkpoint(candidates) == "epoch-3"


def test_select_checkpoint_ties_go_to_the_earlier_one():
    candidates = [("a", _gate_report(0.7, True)), ("b", _gate_report(0.7, True))]
    assert select_checkpoint(candidates) == "a"


def test_select_checkpoint_none_pass():
    assert select_checkpoint([("a", _gate_report(0.7, False))]) is None
    assert select_checkpoint([]) is None
