"""Fitting a Gaussian to a target: forward vs reverse KL and Minka's alpha family.

:func:`fit_gaussian` fits the same target under every divergence with one call
(``"reverse"`` KL(q||p), ``"forward"`` KL(p||q), ``"alpha"`` D_alpha), with a
full or mean-field Gaussian, by quadrature, reparameterised Monte Carlo, exact
samples, self-normalised importance sampling (with its Pareto k-hat diagnostic,
``GaussianFit.khat``) or moment matching.
:mod:`vitoolkit.fitting.targets` holds the demonstration targets.
Richer families: :func:`fit_flow` fits a normalizing flow (:class:`FlowDistribution`,
layers from :func:`make_layers`; :mod:`~vitoolkit.fitting.flows`) by the same reverse-KL
objective and optimiser loop; :func:`check_fit` judges any fitted q by the Pareto k-hat of
p/q and PSIS (:mod:`~vitoolkit.fitting.diagnose`); :class:`EightSchools` and
:func:`eight_schools_reference` are the eight-schools model and its exact posterior
(:mod:`~vitoolkit.fitting.eight_schools`).
Bayesian logistic regression (:mod:`~vitoolkit.fitting.logistic`) is a target like
any other; :mod:`~vitoolkit.fitting.laplace` gives the Laplace approximation and
:mod:`~vitoolkit.fitting.reference` reference posteriors (exact grid, NUTS).
"""

from .. import exceptions as _exceptions
from ..exceptions import LocalOptimumWarning, UnreliableEstimateWarning
from .diagnose import FitCheck, check_fit, draws_with_log_prob
from .eight_schools import (
    SCHOOLS_SIGMA,
    SCHOOLS_Y,
    EightSchools,
    SchoolsReference,
    eight_schools_reference,
    to_centred,
)
from .flow_fit import FlowFit, fit_flow
from .flows import FLOW_KINDS, FlowDistribution, make_layers, planar_layer, push_forward
from .gaussian_fit import (
    DIVERGENCES,
    METHODS,
    GaussianFit,
    fit_alpha_sweep,
    fit_gaussian,
)
from .laplace import LaplaceFit, laplace_approximation
from .logistic import (
    LogisticPosterior,
    Predictive,
    make_toy_data,
    predictive,
    probit_predictive,
    sklearn_map,
)
from .moments import target_moments
from .objectives import NonFiniteTargetError
from .optimise import OptimiserDivergedError
from .reference import GridReference, Reference, grid_reference, nuts_reference
from .routes import OBJECTIVES
from .settings import FitSettings, GridSettings, OptimiserSettings, SamplingSettings, StartSettings
from .targets import Banana, Funnel, LogProbOnly, Ring, bimodal_1d, correlated_gaussian, mixture_2d


def __getattr__(name):
    # ConvergenceWarning is vitoolkit.exceptions.ConvergenceWarning, which that module builds on
    # first use (it subclasses scikit-learn's, whose import costs about a second)
    if name == "ConvergenceWarning":
        return _exceptions.ConvergenceWarning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [  # noqa: F822 - ConvergenceWarning is resolved on first use (__getattr__)
    "Banana",
    "ConvergenceWarning",
    "DIVERGENCES",
    "EightSchools",
    "FLOW_KINDS",
    "FitCheck",
    "FitSettings",
    "FlowDistribution",
    "FlowFit",
    "Funnel",
    "GaussianFit",
    "GridReference",
    "GridSettings",
    "LaplaceFit",
    "LogProbOnly",
    "LogisticPosterior",
    "METHODS",
    "NonFiniteTargetError",
    "OBJECTIVES",
    "OptimiserDivergedError",
    "OptimiserSettings",
    "Predictive",
    "Reference",
    "Ring",
    "SCHOOLS_SIGMA",
    "SCHOOLS_Y",
    "SamplingSettings",
    "SchoolsReference",
    "StartSettings",
    "LocalOptimumWarning",
    "UnreliableEstimateWarning",
    "bimodal_1d",
    "check_fit",
    "correlated_gaussian",
    "draws_with_log_prob",
    "eight_schools_reference",
    "fit_alpha_sweep",
    "fit_flow",
    "fit_gaussian",
    "grid_reference",
    "laplace_approximation",
    "make_layers",
    "make_toy_data",
    "mixture_2d",
    "nuts_reference",
    "planar_layer",
    "predictive",
    "probit_predictive",
    "push_forward",
    "sklearn_map",
    "target_moments",
    "to_centred",
]
