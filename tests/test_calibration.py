"""Calibration metrics (vitoolkit.calibration) against a hand computation and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from vitoolkit.calibration import expected_calibration_error, reliability


def test_ece_by_hand():
    # two uniform bins [0, 0.5) and [0.5, 1]
    y_prob = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    y_true = np.array([0, 1, 0, 1, 1])
    # bin 1: mean prediction 0.2, fraction positive 1/3, 3 cases; bin 2: 0.85, 1.0, 2 cases
    expected = 3 / 5 * abs(1 / 3 - 0.2) + 2 / 5 * abs(1.0 - 0.85)
    assert expected_calibration_error(y_true, y_prob, n_bins=2) == pytest.approx(expected, rel=1e-12)
    rel = reliability(y_true, y_prob, n_bins=2)
    np.testing.assert_allclose(rel.prob_pred, [0.2, 0.85])
    np.testing.assert_allclose(rel.prob_true, [1 / 3, 1.0])
    np.testing.assert_array_equal(rel.counts, [3, 2])
    np.testing.assert_allclose(rel.bin_edges, [0.0, 0.5, 1.0])


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [3, 5, 10])
def test_bins_are_calibration_curves(strategy, n_bins):
    rng = np.random.default_rng(n_bins)
    y_prob = rng.beta(0.5, 0.5, size=300)
    y_true = (rng.random(300) < y_prob**1.5).astype(int)
    prob_true, prob_pred = calibration_curve(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    rel = reliability(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    np.testing.assert_allclose(rel.prob_true, prob_true, rtol=1e-12)
    np.testing.assert_allclose(rel.prob_pred, prob_pred, rtol=1e-12)
    assert rel.counts.sum() == 300
    ece = expected_calibration_error(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    weights = rel.counts / 300
    assert ece == pytest.approx(float(np.sum(weights * np.abs(prob_true - prob_pred))), rel=1e-12)


def test_calibrated_predictions_have_small_ece_and_biased_ones_large():
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(200_000) < p).astype(int)
    # calibrated: each bin's gap is sampling noise, ~ sqrt(p(1-p)/n_b) ~ 0.004
    assert expected_calibration_error(y, p) < 0.01
    # overconfident: p -> p^3 / (p^3 + (1-p)^3) pushes predictions towards 0 and 1
    sharp = p**3 / (p**3 + (1 - p) ** 3)
    assert expected_calibration_error(y, sharp) > 0.08


def test_extremes_and_edges():
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    assert expected_calibration_error([1, 0], [0.0, 1.0]) == 1.0
    # a prediction exactly on an interior edge goes to the lower bin, as in calibration_curve
    rel = reliability([1, 0, 1], [0.5, 0.2, 0.7], n_bins=2)
    np.testing.assert_array_equal(rel.counts, [2, 1])
    np.testing.assert_allclose(rel.prob_pred, [0.35, 0.7])
    prob_true, prob_pred = calibration_curve([1, 0, 1], [0.5, 0.2, 0.7], n_bins=2)
    np.testing.assert_allclose(rel.prob_pred, prob_pred)
    np.testing.assert_allclose(rel.prob_true, prob_true)


@pytest.mark.parametrize("y_true, y_prob, match", [
    ([0, 1], [0.5], "same length"),
    ([], [], "empty"),
    ([0, 2], [0.1, 0.2], "labels 0 and 1"),
    ([0, 1], [0.1, 1.2], r"probabilities in \[0, 1\]"),
    ([0, 1], [0.1, np.nan], r"probabilities in \[0, 1\]"),
])
def test_invalid_inputs_are_named(y_true, y_prob, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(y_true, y_prob)


def test_inputs_are_not_coerced():
    with pytest.raises(ValueError, match="y_true must have 1 dimension"):  # was flattened
        expected_calibration_error([[0, 1]], [0.2, 0.8])
    with pytest.raises(ValueError, match="y_prob must have 1 dimension"):
        expected_calibration_error([0, 1], [[0.2], [0.8]])
    with pytest.raises(TypeError, match="y_prob must hold real numbers"):
        expected_calibration_error([0, 1], ["0.2", "0.8"])
    with pytest.raises(TypeError, match="n_bins must be an integer"):
        reliability([0, 1], [0.1, 0.9], n_bins=2.0)
    with pytest.raises(TypeError, match="n_bins must be an integer"):
        reliability([0, 1], [0.1, 0.9], n_bins=True)
    # bool labels are labels: the same as 0/1
    assert expected_calibration_error(np.array([False, True]), [0.3, 0.6]) == pytest.approx(
        expected_calibration_error([0, 1], [0.3, 0.6]))


def test_oversized_bin_count_is_refused_before_allocating(monkeypatch):
    from vitoolkit.exceptions import ResourceLimitError

    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "1M")
    with pytest.raises(ResourceLimitError, match="n_bins=1000000000000 would need"):
        reliability([0, 1], [0.1, 0.9], n_bins=10**12)


def test_invalid_bins_and_strategy():
    with pytest.raises(ValueError, match="n_bins"):
        reliability([0, 1], [0.1, 0.9], n_bins=0)
    with pytest.raises(ValueError, match="strategy"):
        reliability([0, 1], [0.1, 0.9], strategy="kmeans")
