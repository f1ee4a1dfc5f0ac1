from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from kdedge.distill.calibration import expected_calibration_error
from kdedge.distill.metrics import (
    NONE_SLICE,
    REPORT_METRICS,
    classification_report,
    rare_labels_by_frequency,
)
from kdedge.distill.probability import negative_log_likelihood, softmax
from kdedge.errors import ConfigError, DataError

LABELS = ["greet", "bye", "oos"]
# row: gold -> predicted (argmax), confidence
PROBS = np.array(
    [
        [0.8, 0.1, 0.1],  # greet -> greet  ok   0.8
        [0.3, 0.6, 0.1],  # greet -> bye    err  0.6
        [0.1, 0.7, 0.2],  # bye   -> bye    ok   0.7
        [0.2, 0.2, 0.6],  # oos   -> oos    ok   0.6
        [0.5, 0.25, 0.25],  # oos -> greet  err  0.5
        [0.1, 0.1, 0.8],  # greet -> oos    err  0.8
        [0.6, 0.2, 0.2],  # oos   -> greet  err  0.6
    ]
)
GOLD = np.array([0, 0, 1, 2, 2, 0, 2])
SLICES = ["a", "a", "b", None, "b", "a", None]


def _report(**kwargs):
    return classification_report(PROBS, GOLD, LABELS, **kwargs)


def test_softmax_rows_sum_to_one_and_are_stable():
    out = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, 0.0, 0.0]], dtype=np.float32))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-12)


def test_softmax_temperature_softens():
    z = np.array([2.0, 0.0])
    assert softmax(z, 2.0)[0] == pytest.approx(math.exp(1) / (math.exp(1) + 1))
    assert softmax(z, 2.0)[0] < softmax(z)[0]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_softmax_rejects_bad_temperature(bad):
    with pytest.raises(ConfigError, match="temperature"):
        softmax(np.zeros((1, 2)), bad)


def test_softmax_rejects_non_finite_logits():
    with pytest.raises(DataError, match="NaN"):
        softmax(np.array([[0.0, np.nan]]))


def test_report_hand_checked_example():
    r = _report(oos_label="oos", rare_labels=["bye"], slices=SLICES, ece_bins=5)
    assert r.n == 7
    assert r.accuracy == pytest.approx(3 / 7)
    # confusion (rows gold, cols predicted): greet [1,1,1], bye [0,1,0], oos [2,0,1]
    assert r.per_class["greet"] == pytest.approx(
        {"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3, "support": 3}
    )
    assert r.per_class["bye"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )
    assert r.per_class["oos"] == pytest.approx(
        {"precision": 0.5, "recall": 1 / 3, "f1": 0.4, "support": 3}
    )
    assert r.macro_f1 == pytest.approx((1 / 3 + 2 / 3 + 0.4) / 3)
    # OOS is the positive class: 2 predicted OOS (1 right), 3 gold OOS (1 found)
    assert r.oos_precision == pytest.approx(0.5)
    assert r.oos_recall == pytest.approx(1 / 3)
    # in scope = rows 0, 1, 2, 5: rows 0 and 2 right
    assert r.in_scope_accuracy == pytest.approx(0.5)
    assert r.rare_class_recall == pytest.approx(1.0)
    assert r.most_confused == [("oos", "greet", 2), ("greet", "bye", 1), ("greet", "oos", 1)]
    assert r.per_slice == {
        NONE_SLICE: {"n": 2, "accuracy": 0.5},
        "a": {"n": 3, "accuracy": pytest.approx(1 / 3)},
        "b": {"n": 2, "accuracy": 0.5},
    }
    assert r.mean_confidence == pytest.approx(4.6 / 7)
    assert r.nll == pytest.approx(-np.log([0.8, 0.3, 0.7, 0.6, 0.25, 0.1, 0.2]).mean())
    assert r.ece == pytest.approx(expected_calibration_error(PROBS, GOLD, n_bins=5))


def test_macro_f1_matches_sklearn_and_ignores_absent_labels():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    # a 4th label that is neither gold nor predicted must not drag macro F1 down
    probs = np.hstack([PROBS, np.zeros((len(PROBS), 1))])
    r = classification_report(probs, GOLD, [*LABELS, "unused"])
    expected = sklearn_metrics.f1_score(GOLD, probs.argmax(1), average="macro", zero_division=0)
    assert r.macro_f1 == pytest.approx(expected)
    assert r.per_class["unused"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_top_confusions_limits_the_list():
    assert _report(top_confusions=1).most_confused == [("oos", "greet", 2)]
    assert _report(top_confusions=0).most_confused == []


def test_without_oos_label_in_scope_equals_accuracy():
    r = _report()
    assert r.oos_precision is None and r.oos_recall is None
    assert r.in_scope_accuracy == r.accuracy
    assert r.rare_class_recall is None
    assert r.per_slice == {}


def test_oos_label_not_in_labels_gives_none():
    r = _report(oos_label="out_of_scope")
    assert r.oos_precision is None and r.oos_recall is None
    assert r.in_scope_accuracy == r.accuracy


def test_oos_never_predicted():
    probs = np.array([[0.9, 0.1], [0.8, 0.2]])
    missed = classification_report(probs, np.array([1, 0]), ["a", "oos"], oos_label="oos")
    assert missed.oos_precision == 0.0 and missed.oos_recall == 0.0
    absent = classification_report(probs, np.array([0, 0]), ["a", "oos"], oos_label="oos")
    assert absent.oos_precision is None and absent.oos_recall is None
    assert absent.in_scope_accuracy == 1.0


def test_all_rows_oos_leaves_in_scope_none():
    probs = np.array([[0.1, 0.9]])
    r = classification_report(probs, np.array([1]), ["a", "oos"], oos_label="oos")
    assert r.in_scope_accuracy is None


def test_rare_recall_pools_rows_of_all_rare_labels():
    # rows whose gold is greet or bye: 0, 1, 2, 5 -> rows 0 and 2 right
    assert _report(rare_labels=["bye", "greet"]).rare_class_recall == pytest.approx(0.5)


def test_to_dict_is_json_friendly_and_rounded():
    r = _report(oos_label="oos", rare_labels=["bye"], slices=SLICES)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["accuracy"] == round(3 / 7, 6)
    assert d["oos_recall"] == round(1 / 3, 6)
    assert d["most_confused"][0] == {"gold": "oos", "predicted": "greet", "count": 2}
    assert d["per_slice"]["a"] == {"n": 3, "accuracy": round(1 / 3, 6)}
    assert d["per_class"]["bye"]["support"] == 1
    assert set(REPORT_METRICS) <= set(d)
    assert r.metrics()["accuracy"] == r.accuracy


def test_nll_clips_zero_probabilities():
    assert negative_log_likelihood(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(
        -math.log(1e-12)
    )


@pytest.mark.parametrize(
    ("probs", "gold", "match"),
    [
        (np.array([[2.0, -1.0]]), np.array([0]), "softmax"),  # logits, not probabilities
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "nothing to evaluate"),
        (np.array([0.5, 0.5]), np.array([0]), "2-D"),
        (np.array([[0.5, 0.5]]), np.array([0.0]), "integer"),
        (np.array([[0.5, 0.5]]), np.array([2]), "outside"),
        (np.array([[0.5, 0.5]]), np.array([0, 1]), "one class index per row"),
        (np.array([[0.5, np.nan]]), np.array([0]), "NaN"),
    ],
)
def test_report_rejects_bad_inputs(probs, gold, match):
    with pytest.raises(DataError, match=match):
        classification_report(probs, gold, ["a", "b"][: probs.shape[-1]])


def test_report_rejects_label_and_slice_mismatches():
    with pytest.raises(DataError, match="2 labels given for 3"):
        classification_report(PROBS, GOLD, ["greet", "bye"])
    with pytest.raises(DataError, match="duplicate"):
        classification_report(PROBS, GOLD, ["greet", "greet", "oos"])
    with pytest.raises(ConfigError, match="'hello'"):
        _report(rare_labels=["hello"])
    with pytest.raises(DataError, match="slices has 2 entries for 7 rows"):
        _report(slices=["a", "b"])
    with pytest.raises(ConfigError, match="n_bins"):
        _report(ece_bins=0)
    with pytest.raises(ConfigError, match="top_confusions"):
        _report(top_confusions=-1)


def test_rare_labels_by_frequency():
    counts = {"common": 90, "b": 6, "a": 4, "z": 0}
    assert rare_labels_by_frequency(counts) == ["a", "z"]
    assert rare_labels_by_frequency(counts, max_share=0.1) == ["a", "b", "z"]


@pytest.mark.parametrize(
    ("counts", "share", "error"),
    [
        ({"a": 1}, 0.0, ConfigError),
        ({"a": 1}, 1.5, ConfigError),
        ({"a": 0}, 0.05, DataError),
        ({}, 0.05, DataError),
        ({"a": -1, "b": 3}, 0.05, DataError),
        ({"a": 1.5}, 0.05, DataError),
    ],
)
def test_rare_labels_by_frequency_rejects(counts, share, error):
    with pytest.raises(error):
        rare_labels_by_frequency(counts, max_share=share)


def test_evaluation_core_imports_no_heavy_dependencies():
    code = (
        "import sys; import kdedge.distill.metrics, kdedge.distill.calibration, "
        "kdedge.distill.gates; "
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib', 'sklearn', 'scipy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
