"""Gradient estimators for expectations under q: score function, pathwise, measure-valued.

Public: :func:`gaussian_gradients` (per-sample estimates, one batched call),
:func:`exact_gaussian_gradient` (closed form or Gauss-Hermite quadrature), the
test costs in :mod:`~vitoolkit.gradients.costs`, discrete estimators in
:mod:`~vitoolkit.gradients.discrete`, ELBO gradients in
:mod:`~vitoolkit.gradients.elbo`, black-box VI in :mod:`~vitoolkit.gradients.bbvi`
and the experiments of tutorial 04 in :mod:`~vitoolkit.gradients.experiments`.
"""

from .costs import COSTS, Cosine, Cost, GaussianBump, Linear, Quadratic, Step, make_cost
from .exact import exact_gaussian_gradient, gauss_hermite_expectation
from .gaussian import ESTIMATORS, GAUSSIAN_ESTIMATORS, GradientEstimator, GradientSamples, gaussian_gradients

__all__ = [
    "COSTS",
    "ESTIMATORS",
    "GAUSSIAN_ESTIMATORS",
    "Cosine",
    "Cost",
    "GaussianBump",
    "GradientEstimator",
    "GradientSamples",
    "Linear",
    "Quadratic",
    "Step",
    "exact_gaussian_gradient",
    "gauss_hermite_expectation",
    "gaussian_gradients",
    "make_cost",
]
