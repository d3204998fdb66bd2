r"""Calibration of predicted probabilities for a binary outcome.

A classifier is calibrated when, among the cases it gives probability p, a fraction p
are positive. The reliability diagram bins the predictions and plots the fraction of
positives against the mean prediction in each bin (DeGroot & Fienberg 1983;
Niculescu-Mizil & Caruana 2005); the expected calibration error (ECE) is the
count-weighted mean gap between the two (Naeini, Cooper & Hauskrecht 2015, AAAI,
"Obtaining well calibrated probabilities using Bayesian binning", section 3;
Guo, Pleiss, Sun & Weinberger 2017, ICML, eq. 3):

.. math::

    \mathrm{ECE} = \sum_b \frac{n_b}{n} \, \big\lvert \mathrm{pos}(B_b) - \mathrm{conf}(B_b) \big\rvert,

with :math:`n_b` the number of predictions in bin :math:`B_b`, :math:`\mathrm{pos}(B_b)`
the fraction of positives among them and :math:`\mathrm{conf}(B_b)` their mean prediction.

The bins are exactly those of scikit-learn's ``sklearn.calibration.calibration_curve``
(``strategy="uniform"``: equal widths on [0, 1]; ``"quantile"``: equal counts), so the
ECE is the weighted gap between the points that function returns. This is the
positive-class form for binary problems; Guo et al.'s multi-class form bins the
confidence :math:`\max(p, 1 - p)` instead.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .validation import as_float_array, check_choice, check_int, check_memory

__all__ = ["Reliability", "reliability", "expected_calibration_error"]


class Reliability(NamedTuple):
    """A reliability diagram's numbers, non-empty bins only (as ``calibration_curve``).

    prob_true : ndarray of shape (n_nonempty,), fraction of positives per bin
    prob_pred : ndarray of shape (n_nonempty,), mean predicted probability per bin
    counts : ndarray of shape (n_nonempty,), cases per bin
    bin_edges : ndarray of shape (n_bins + 1,)
    """

    prob_true: np.ndarray
    prob_pred: np.ndarray
    counts: np.ndarray
    bin_edges: np.ndarray


def _check(y_true, y_prob):
    """1-D labels in {0, 1} (bools too) and probabilities in [0, 1] of the same length."""
    if type(y_true).__module__.startswith("torch"):
        y_true = y_true.detach().cpu().numpy()
    if isinstance(y_true, np.ndarray) and y_true.dtype.kind == "b":
        y_true = y_true.astype(np.float64)
    y_true = as_float_array(y_true, "y_true", ndim=1)
    y_prob = as_float_array(y_prob, "y_prob", ndim=1, finite=False)
    if y_true.shape != y_prob.shape:
        raise ValueError(f"y_true and y_prob must have the same length, got {y_true.shape[0]} "
                         f"and {y_prob.shape[0]}")
    if y_true.size == 0:
        raise ValueError("y_true is empty")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must hold labels 0 and 1 only")
    if not (np.isfinite(y_prob).all() and (y_prob >= 0).all() and (y_prob <= 1).all()):
        raise ValueError("y_prob must hold probabilities in [0, 1]")
    return y_true.astype(float), y_prob


def reliability(y_true, y_prob, *, n_bins: int = 10, strategy: str = "uniform") -> Reliability:
    """Per-bin fraction of positives, mean prediction and count.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,), labels 0/1
    y_prob : array-like of shape (n_samples,), predicted probabilities of class 1
    n_bins : int >= 1
    strategy : {"uniform", "quantile"}, as ``sklearn.calibration.calibration_curve``

    Returns
    -------
    Reliability (``prob_true`` and ``prob_pred`` equal ``calibration_curve``'s output)
    """
    y_true, y_prob = _check(y_true, y_prob)
    n_bins = check_int(n_bins, "n_bins", minimum=1)
    strategy = check_choice(strategy, ("uniform", "quantile"), "strategy")
    check_memory(8 * 6 * (n_bins + 1), "n_bins", n_bins, "the bin edges and per-bin sums")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.percentile(y_prob, np.linspace(0, 100, n_bins + 1))
    # the same assignment as calibration_curve: the interior edges, right-closed search
    ids = np.searchsorted(edges[1:-1], y_prob)
    sums_pred = np.bincount(ids, weights=y_prob, minlength=len(edges))
    sums_true = np.bincount(ids, weights=y_true, minlength=len(edges))
    totals = np.bincount(ids, minlength=len(edges))
    nonzero = totals != 0
    return Reliability(prob_true=sums_true[nonzero] / totals[nonzero],
                       prob_pred=sums_pred[nonzero] / totals[nonzero],
                       counts=totals[nonzero], bin_edges=edges)


def expected_calibration_error(y_true, y_prob, *, n_bins: int = 10, strategy: str = "uniform") -> float:
    r"""The expected calibration error: the count-weighted mean gap of the reliability diagram.

    .. math::

        \mathrm{ECE} = \sum_b \frac{n_b}{n} \, \big\lvert \mathrm{pos}(B_b) - \mathrm{conf}(B_b) \big\rvert

    (Guo et al. 2017, eq. 3; the bins and symbols are those of the module docstring).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,), labels 0/1
    y_prob : array-like of shape (n_samples,), predicted probabilities of class 1
    n_bins : int
    strategy : {"uniform", "quantile"}

    Returns
    -------
    float in [0, 1]
    """
    rel = reliability(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    weights = rel.counts / rel.counts.sum()
    return float(np.sum(weights * np.abs(rel.prob_true - rel.prob_pred)))
