"""The classifier early-stop rule (:mod:`kdedge.distill.stop_rule`)."""

from __future__ import annotations

import math

import pytest

from kdedge.distill.stop_rule import ClassifierStopRule, EpochSignals
from kdedge.errors import ConfigError, DataError


def _epochs(*rows):
    return [EpochSignals(*row) for row in rows]


def test_stop_rule_fires_on_plateau():
    history = _epochs(
        (0.80, 0.60, 1.00), (0.85, 0.70, 0.80), (0.851, 0.701, 0.799), (0.851, 0.70, 0.798)
    )
    stop, reason = ClassifierStopRule().should_stop(history)
    assert stop
    assert reason.startswith("stop after epoch 4: at least 2 of 3 plateau signals held for 2")
    assert "epoch 3:" in reason and "epoch 4:" in reason


def test_stop_rule_keeps_going_while_improving():
    history = _epochs((0.80, 0.60, 1.0), (0.82, 0.65, 0.9), (0.84, 0.70, 0.8))
    stop, reason = ClassifierStopRule().should_stop(history)
    assert not stop
    assert reason.startswith("continue: only 0 of 3 plateau signals held at epoch 3")


def test_stop_rule_needs_two_consecutive_plateau_epochs():
    # epoch 3 plateaus, epoch 4 improves accuracy and rare recall: no stop
    history = _epochs((0.80, 0.6, 1.0), (0.85, 0.7, 0.8), (0.85, 0.7, 0.8), (0.87, 0.72, 0.8))
    stop, reason = ClassifierStopRule().should_stop(history)
    assert not stop and "epoch 4" in reason
    # epoch 3 improves, epoch 4 plateaus: still no stop
    history = _epochs((0.80, 0.6, 1.0), (0.85, 0.7, 0.8), (0.87, 0.72, 0.7), (0.87, 0.72, 0.7))
    assert not ClassifierStopRule().should_stop(history)[0]


def test_one_signal_is_not_enough():
    # accuracy stalls but rare recall and KD loss keep improving
    history = _epochs((0.85, 0.5, 1.0), (0.85, 0.6, 0.9), (0.85, 0.7, 0.8))
    stop, reason = ClassifierStopRule().should_stop(history)
    assert not stop and "only 1 of 3" in reason


def test_thresholds_are_exclusive():
    # +0.0015 accuracy is an improvement; +0.0024 rare recall and +0.5% KD loss are not
    history = _epochs((0.8100, 0.5, 1.0), (0.8115, 0.5024, 0.995), (0.8130, 0.5048, 0.990025))
    assert ClassifierStopRule().should_stop(history)[0]
    rule = ClassifierStopRule(signals_needed=3)
    stop, reason = rule.should_stop(history)
    assert not stop and "val accuracy +0.0015 >= 0.0015" in reason


def test_stop_rule_needs_three_epochs_and_min_epochs():
    flat = _epochs((0.8, 0.5, 1.0), (0.8, 0.5, 1.0), (0.8, 0.5, 1.0), (0.8, 0.5, 1.0))
    rule = ClassifierStopRule()
    assert rule.should_stop([]) == (
        False,
        "continue: 0 epoch(s) so far; the stop rule needs at least 3",
    )
    assert not rule.should_stop(flat[:2])[0]
    assert rule.should_stop(flat[:3])[0]
    late = ClassifierStopRule(min_epochs=4)
    assert not late.should_stop(flat[:3])[0]
    assert late.should_stop(flat)[0]


def test_missing_signals_take_no_part_in_the_vote():
    # Only accuracy is known (hard-label run without rare rows): it alone decides, so the
    # rule keeps going while accuracy improves ...
    improving = [EpochSignals(0.70), EpochSignals(0.75), EpochSignals(0.80)]
    stop, reason = ClassifierStopRule().should_stop(improving)
    assert not stop and "only 0 of 1" in reason
    # ... and stops once accuracy has plateaued for two consecutive epochs.
    flat = [EpochSignals(0.80), EpochSignals(0.801), EpochSignals(0.801)]
    stop, reason = ClassifierStopRule().should_stop(flat)
    assert stop and "at least 1 of 1" in reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_accuracy_gain": -0.1},
        {"min_rare_recall_gain": math.inf},
        {"min_kd_loss_rel_gain": "1%"},
        {"signals_needed": 0},
        {"signals_needed": 4},
        {"consecutive": 0},
        {"min_epochs": 1.5},
    ],
)
def test_stop_rule_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        ClassifierStopRule(**kwargs)


def test_stop_rule_rejects_bad_history():
    with pytest.raises(DataError, match="epoch 2"):
        ClassifierStopRule().should_stop([EpochSignals(0.5), EpochSignals(math.nan)])
