"""Fitting a Gaussian to a target: forward vs reverse KL and Minka's alpha family.

:func:`fit_gaussian` fits the same target under every divergence with one call
(``"reverse"`` KL(q||p), ``"forward"`` KL(p||q), ``"alpha"`` D_alpha), with a
full or mean-field Gaussian, by quadrature, reparameterised Monte Carlo, exact
samples, self-normalised importance sampling (with its Pareto k-hat diagnostic,
``GaussianFit.khat``) or moment matching.
:mod:`vitoolkit.fitting.targets` holds the demonstration targets.
"""

from .gaussian_fit import (
    DIVERGENCES,
    METHODS,
    ConvergenceWarning,
    GaussianFit,
    UnreliableEstimateWarning,
    fit_alpha_sweep,
    fit_gaussian,
)
from .moments import target_moments
from .objectives import NonFiniteTargetError
from .targets import Banana, LogProbOnly, Ring, bimodal_1d, correlated_gaussian, mixture_2d

__all__ = [
    "DIVERGENCES",
    "METHODS",
    "Banana",
    "ConvergenceWarning",
    "GaussianFit",
    "LogProbOnly",
    "NonFiniteTargetError",
    "Ring",
    "UnreliableEstimateWarning",
    "bimodal_1d",
    "correlated_gaussian",
    "fit_alpha_sweep",
    "fit_gaussian",
    "mixture_2d",
    "target_moments",
]
