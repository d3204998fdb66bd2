r"""Bayesian logistic regression as a target for variational inference.

The model (Bishop PRML 4.5, MacKay 1992), with a design matrix Phi of shape (n, D)
(the inputs, with a leading column of ones when ``fit_intercept``) and labels
y_n in {0, 1}::

    w ~ N(0, s^2 I_D),      y_n | w ~ Bernoulli(sigmoid(phi_n^T w)).

Its posterior p(w | y) = p(y, w) / p(y) has no closed form. :class:`LogisticPosterior`
is that posterior as an *unnormalised* target: ``log_prob(w)`` returns the log
joint log p(y, w) = log p(w | y) + log p(y), which is all that reverse-KL
variational inference (:func:`vitoolkit.fitting.fit_gaussian`), the Laplace
approximation (:mod:`vitoolkit.fitting.laplace`) and MCMC
(:mod:`vitoolkit.fitting.reference`) need. It is batched over parameter draws:
``w`` of shape (..., D) gives (...).

Predictions average the likelihood over an approximation of the posterior
(PRML eq. 4.145): p(y* = 1 | x*) = E_q[sigmoid(phi*^T w)], by Monte Carlo or by
MacKay's probit approximation (PRML eq. 4.153-4.155).

The point-estimate baseline is scikit-learn's L2-penalised ``LogisticRegression``:
it minimises ``1/2 |w|^2 + C sum_n loss_n``, and ``-log p(y, w) = sum_n loss_n + |w|^2 / (2 s^2)
+ const`` is that objective divided by C = s^2. So the MAP under the prior N(0, s^2 I)
is ``LogisticRegression(C=s**2, fit_intercept=False)`` fitted to the design matrix
(the intercept is then penalised like every weight, as the prior says; scikit-learn's
own ``fit_intercept=True`` leaves it unpenalised, a flat prior).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from ..distributions import sample as _sample
from ..models.logistic import LogisticPosterior
from ..validation import (
    as_float_tensor,
    check_choice,
    check_finite,
    check_int,
    check_positive,
    check_real,
    check_shape,
)
from ._checks import check_draws_memory, check_generator

__all__ = [
    "LogisticPosterior",
    "Predictive",
    "predictive",
    "probit_predictive",
    "sklearn_map",
    "make_toy_data",
]

_F64 = torch.float64
#: MacKay's probit constant: sigmoid(a) ~ Phi(lambda a) with lambda^2 = pi / 8 (PRML eq. 4.154).
_LAMBDA_SQ = math.pi / 8



# ---------------------------------------------------------------------- predictions
class Predictive(NamedTuple):
    """Predictive probabilities of class 1.

    Fields::

        prob : Tensor of shape (m,), p(y* = 1 | x*) = E[sigmoid(a*)] under the approximation
        std : Tensor of shape (m,) or None, the standard deviation of sigmoid(a*) under it
            (how uncertain the probability itself is); None for the probit approximation
        method : str, "monte_carlo", "probit", "samples" or "quadrature"
    """

    prob: torch.Tensor
    std: torch.Tensor | None
    method: str


def _gaussian_moments(approx):
    if isinstance(approx, MultivariateNormal):
        return approx.loc, approx.covariance_matrix
    if isinstance(approx, Independent) and isinstance(approx.base_dist, Normal):
        return approx.mean, torch.diag_embed(approx.variance)
    raise TypeError(f"the probit approximation needs a Gaussian (MultivariateNormal or "
                    f"Independent(Normal, 1)), got {type(approx).__name__}")


def probit_predictive(design, loc, covariance) -> torch.Tensor:
    r"""MacKay's probit approximation of E_{N(w; loc, covariance)}[sigmoid(phi^T w)].

    With a = phi^T w ~ N(mu_a, sigma_a^2), mu_a = phi^T loc, sigma_a^2 = phi^T Sigma phi
    (PRML eq. 4.149-4.150): p ~ sigmoid(kappa(sigma_a^2) mu_a),
    kappa(s2) = (1 + pi s2 / 8)^(-1/2) (PRML eq. 4.153-4.155; MacKay 1992).

    Parameters
    ----------
    design : Tensor of shape (m, D)
    loc : Tensor of shape (D,)
    covariance : Tensor of shape (D, D)

    Returns
    -------
    Tensor of shape (m,)
    """
    design = as_float_tensor(design, "design", dtype=_F64, ndim=2)
    d = design.shape[1]
    loc = as_float_tensor(loc, "loc", dtype=_F64)
    check_shape(loc.shape, (d,), "loc")
    covariance = as_float_tensor(covariance, "covariance", dtype=_F64)
    check_shape(covariance.shape, (d, d), "covariance")
    asym = float((covariance - covariance.mT).abs().max()) if d else 0.0
    if asym > 1e-10 * max(float(covariance.abs().max()), 1e-300) or (
            d and int(torch.linalg.cholesky_ex(covariance)[1]) != 0):
        raise ValueError("covariance must be symmetric positive definite")
    mu_a = design @ loc
    var_a = ((design @ covariance) * design).sum(-1)
    kappa = (1 + _LAMBDA_SQ * var_a).rsqrt()
    return torch.sigmoid(kappa * mu_a)


def predictive(posterior: LogisticPosterior, X, approx, *, method: str = "monte_carlo",
               num_samples: int = 4000, generator=None) -> Predictive:
    r"""p(y* = 1 | x*) under an approximation of the posterior (PRML eq. 4.145).

    Parameters
    ----------
    posterior : LogisticPosterior (for the design matrix of X)
    X : array-like of shape (m, n_features)
    approx : a Gaussian torch distribution (``MultivariateNormal`` or ``Independent(Normal)``,
        e.g. ``GaussianFit.distribution``); or a Tensor of shape (S, D) of finite posterior
        draws (averaged as they are: "samples"); or a weighted point set with finite
        ``points`` (M, D) and normalised ``weights`` (M,), such as
        :class:`vitoolkit.fitting.reference.GridReference` (exact quadrature: "quadrature").
        With draws or a point set, ``method``, ``num_samples`` and ``generator`` do not
        apply and are refused unless left at their defaults (``num_samples`` and
        ``generator`` likewise with ``method="probit"``).
    method : {"monte_carlo", "probit"}
        Monte Carlo average of sigmoid(phi^T w) over ``num_samples`` draws of the Gaussian
        (with its standard deviation), or MacKay's probit approximation
        (:func:`probit_predictive`, deterministic, no ``std``).
    num_samples : int
    generator : torch.Generator, optional

    Returns
    -------
    Predictive
    """
    if not isinstance(posterior, LogisticPosterior):
        raise TypeError(f"posterior must be a LogisticPosterior, got {type(posterior).__name__}")
    method = check_choice(method, ("monte_carlo", "probit"), "method")
    check_generator(generator)
    design = posterior.design_matrix(X)
    points = hasattr(approx, "points") and hasattr(approx, "weights")
    if points or isinstance(approx, torch.Tensor) or method == "probit":
        # Arguments that would be ignored are refused (draws and point sets are averaged as
        # they are; the probit approximation draws nothing).
        what = ("a weighted point set" if points else "posterior draws" if
                isinstance(approx, torch.Tensor) else "method='probit'")
        unused = [f"{k}={v!r}" for k, v, default in (
            ("method", method, method == "monte_carlo" or what == "method='probit'"),
            ("num_samples", num_samples, num_samples == 4000),
            ("generator", generator, generator is None)) if not default]
        if unused:
            raise ValueError(f"{', '.join(unused)} would be ignored with {what}: they apply to "
                             "Monte Carlo draws of a Gaussian approx")
    if points:
        weights = approx.weights.to(_F64)
        check_finite(weights, "approx.weights")
        check_finite(approx.points, "approx.points")
        mean, var = _weighted_sigmoid_moments(posterior._weights(approx.points), weights, design)
        return Predictive(mean, var.sqrt(), "quadrature")
    if isinstance(approx, torch.Tensor):
        if approx.dim() != 2 or approx.shape[-1] != posterior.dim or approx.shape[0] < 1:
            raise ValueError(f"approx (posterior draws) must have shape (S, {posterior.dim}), S >= 1,"
                             f" got {tuple(approx.shape)}")
        check_finite(approx.detach(), "approx (posterior draws)")
        draws = posterior._weights(approx)
        s = draws.shape[0]
        weights = torch.full((s,), 1.0 / s, dtype=_F64)
        mean, var = _weighted_sigmoid_moments(draws, weights, design)
        return Predictive(mean, (var * s / max(s - 1, 1)).sqrt(), "samples")
    if method == "probit":
        loc, cov = _gaussian_moments(approx)
        return Predictive(probit_predictive(design, loc, cov), None, "probit")
    if not isinstance(approx, Distribution):
        raise TypeError(f"approx must be a Gaussian torch distribution, a Tensor of draws or a "
                        f"weighted point set (GridReference), got {type(approx).__name__}")
    num_samples = check_int(num_samples, "num_samples", minimum=2)
    check_draws_memory(num_samples, posterior.dim, "num_samples", "the posterior draws")
    with torch.no_grad():
        draws = _sample(approx, (num_samples,), generator=generator).to(_F64)
    weights = torch.full((num_samples,), 1.0 / num_samples, dtype=_F64)
    mean, var = _weighted_sigmoid_moments(draws, weights, design)
    return Predictive(mean, (var * num_samples / (num_samples - 1)).sqrt(), "monte_carlo")


def _weighted_sigmoid_moments(points, weights, design, max_elements: int = 2**22):
    """sum_m weights_m sigmoid(a_m) and the weighted variance, a_m = design @ points_m, computed
    in chunks of inputs so that no (M, m) array exceeds ``max_elements`` entries."""
    step = max(1, max_elements // max(points.shape[0], 1))
    if design.shape[0] == 0:  # no inputs: no predictions
        empty = torch.zeros(0, dtype=_F64)
        return empty, empty
    means, variances = [], []
    with torch.no_grad():
        for lo in range(0, design.shape[0], step):
            probs = torch.sigmoid(points @ design[lo:lo + step].mT)  # (M, chunk)
            m = weights @ probs
            means.append(m)
            variances.append((weights @ (probs - m).pow(2)).clamp_min(0))
    return torch.cat(means), torch.cat(variances)


def sklearn_map(posterior: LogisticPosterior, *, tol: float = 1e-10, max_iter: int = 10_000):
    """scikit-learn's point estimate with the penalty that matches the prior.

    ``LogisticRegression(C=s**2, fit_intercept=False)`` fitted to ``posterior.design`` (the
    intercept column, if any, is part of the design and penalised like the prior says):
    its ``coef_[0]`` is the MAP of ``posterior`` (see the module docstring).

    Returns
    -------
    sklearn.linear_model.LogisticRegression, fitted.
    """
    if not isinstance(posterior, LogisticPosterior):
        raise TypeError(f"posterior must be a LogisticPosterior, got {type(posterior).__name__}")
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=posterior.sklearn_C, fit_intercept=False, tol=tol, max_iter=max_iter)
    return clf.fit(posterior.design.numpy(), posterior.labels.numpy().astype(int))


def make_toy_data(n: int, *, weights=(2.0, 2.0), correlation: float = 0.9, generator=None):
    r"""A 2-D classification toy without intercept: x ~ N(0, [[1, rho], [rho, 1]]),
    y ~ Bernoulli(sigmoid(w^T x)).

    Correlated inputs make the posterior over (w_1, w_2) correlated (its precision is
    Phi^T R Phi + I / s^2), which is where a mean-field Gaussian underestimates the
    posterior's variance (Bishop PRML 10.1.2). Two weights, so the posterior can be drawn
    and integrated exactly on a grid.

    Parameters
    ----------
    n : int >= 2
    weights : two numbers, the true w
    correlation : float in (-1, 1)
    generator : torch.Generator, optional

    Returns
    -------
    (X, y) : Tensors of shapes (n, 2) and (n,), float64; y holds 0 and 1.
    """
    n = check_int(n, "n", minimum=2)
    check_draws_memory(n, 2, "n", "the inputs")
    rho = check_real(correlation, "correlation", minimum=-1.0, maximum=1.0, strict_minimum=True,
                     strict_maximum=True)
    w = as_float_tensor(weights, "weights", dtype=_F64)
    check_shape(w.shape, (2,), "weights")
    check_generator(generator)
    chol = torch.linalg.cholesky(torch.tensor([[1.0, rho], [rho, 1.0]], dtype=_F64))
    X = torch.randn(n, 2, generator=generator, dtype=_F64) @ chol.mT
    u = torch.rand(n, generator=generator, dtype=_F64)
    y = (u < torch.sigmoid(X @ w)).to(_F64)
    return X, y
