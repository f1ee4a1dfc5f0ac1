from __future__ import annotations

import json

import numpy as np
import pytest

from kdedge.distill.calibration import (
    CalibrationResult,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    plot_reliability,
    reliability_bins,
)
from kdedge.distill.probability import softmax
from kdedge.errors import ConfigError, DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sample_labels(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row drawn from that row's distribution."""
    u = rng.random((len(probs), 1))
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


@pytest.fixture(scope="module")
def synthetic():
    """Labels drawn from softmax(z): z is calibrated, z * 3 is overconfident by T = 3."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20_000, 5)) * 2.0
    return z, _sample_labels(softmax(z), rng)


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.45, 0.55]])
    gold = np.array([0, 1, 1, 0])
    # 5 bins of width 0.2; N = 4
    # (0.8, 1.0]: rows 0, 1: accuracy 1/2, confidence 0.9 -> 2/4 * |0.5 - 0.9|  = 0.2
    # (0.6, 0.8]: row 2:     accuracy 1,   confidence 0.7 -> 1/4 * |1 - 0.7|    = 0.075
    # (0.4, 0.6]: row 3:     accuracy 0,   confidence 0.55 -> 1/4 * |0 - 0.55| = 0.1375
    # ECE = 0.2 + 0.075 + 0.1375 = 0.4125
    assert expected_calibration_error(probs, gold, n_bins=5) == pytest.approx(0.4125)


def test_ece_single_bin_is_gap_between_accuracy_and_mean_confidence():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    gold = np.array([0, 1, 1])
    # one bin: accuracy 2/3, mean confidence (0.9 + 0.6 + 0.8) / 3 = 2.3/3 -> |2/3 - 2.3/3| = 0.1
    assert expected_calibration_error(probs, gold, n_bins=1) == pytest.approx(0.1)


def test_ece_of_perfect_calibration_is_zero():
    # confidence 0.7 with 7 of 10 right, confidence 0.9 with 9 of 10 right
    probs = np.array([[0.7, 0.3]] * 10 + [[0.1, 0.9]] * 10)
    gold = np.array([0] * 7 + [1] * 3 + [1] * 9 + [0])
    assert expected_calibration_error(probs, gold) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_calibrated_synthetic_data_is_small(synthetic):
    z, gold = synthetic
    assert expected_calibration_error(softmax(z), gold) < 0.02


def test_reliability_bins_edges_and_empty_bins():
    # confidences 0.2, 0.6, 1.0 sit on bin edges and belong to the bin they close
    probs = np.array([[0.2] * 5, [0.6, 0.4, 0, 0, 0], [1.0, 0, 0, 0, 0]])
    gold = np.array([0, 1, 0])
    bins = reliability_bins(probs, gold, n_bins=5)
    assert [b.count for b in bins] == [1, 0, 1, 0, 1]
    assert (bins[0].lower, bins[0].upper) == (0.0, pytest.approx(0.2))
    assert bins[1].accuracy is None and bins[1].confidence is None
    assert bins[2].accuracy == 0.0 and bins[2].confidence == pytest.approx(0.6)
    assert bins[4].accuracy == 1.0 and bins[4].confidence == 1.0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_bin_count(bad):
    with pytest.raises(ConfigError, match="n_bins"):
        expected_calibration_error(np.array([[0.5, 0.5]]), np.array([0]), n_bins=bad)


def test_fit_temperature_recovers_known_temperature(synthetic):
    z, gold = synthetic
    assert fit_temperature(z * 3.0, gold) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(z, gold) == pytest.approx(1.0, rel=0.1)


def test_calibrate_improves_overconfident_logits(synthetic):
    z, gold = synthetic
    result = calibrate(z * 3.0, gold)
    assert isinstance(result, CalibrationResult)
    assert result.temperature > 2.0
    assert result.ece_after <= result.ece_before
    assert result.nll_after <= result.nll_before
    assert result.n == len(gold) and result.n_bins == 15
    d = json.loads(json.dumps(result.to_dict()))
    assert d["temperature"] == round(result.temperature, 6)


def test_fit_temperature_rejects_empty_input():
    with pytest.raises(DataError, match="empty"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(DataError, match="empty"):
        calibrate(np.array([]), np.array([], dtype=int))


@pytest.mark.parametrize("bounds", [(0.0, 5.0), (5.0, 1.0), (0.1, float("inf"))])
def test_fit_temperature_rejects_bad_bounds(bounds):
    with pytest.raises(ConfigError, match="bounds"):
        fit_temperature(np.zeros((2, 2)), np.array([0, 1]), bounds=bounds)


def test_fit_temperature_rejects_bad_logits():
    with pytest.raises(DataError, match="2-D"):
        fit_temperature(np.zeros(4), np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="NaN"):
        fit_temperature(np.array([[0.0, np.inf]]), np.array([0]))
    with pytest.raises(DataError, match="outside"):
        fit_temperature(np.zeros((1, 2)), np.array([5]))


def test_plot_reliability_writes_png_atomically(tmp_path, synthetic):
    pytest.importorskip("matplotlib")
    z, gold = synthetic
    z, gold = z[:2000], gold[:2000]
    path = tmp_path / "plots" / "reliability.png"
    out = plot_reliability(softmax(z * 3.0), softmax(z), gold, path, title="Student")
    assert out == path
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in path.parent.iterdir()] == ["reliability.png"]  # no temp file left


def test_plot_reliability_rejects_non_png_path(tmp_path):
    probs = np.array([[0.5, 0.5]])
    with pytest.raises(ConfigError, match=r"\.png"):
        plot_reliability(probs, probs, np.array([0]), tmp_path / "diagram.pdf")
    assert list(tmp_path.iterdir()) == []
