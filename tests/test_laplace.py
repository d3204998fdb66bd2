"""The Laplace approximation (vitoolkit.fitting.laplace) against independent routes:
closed forms for a Gaussian target, grid integration for 1-D and 2-D logistic posteriors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Distribution, MultivariateNormal, constraints

from vitoolkit.fitting.laplace import laplace_approximation
from vitoolkit.fitting.logistic import LogisticPosterior, make_toy_data
from vitoolkit.fitting.optimise import ConvergenceWarning
from vitoolkit.fitting.reference import grid_reference

F64 = torch.float64


class _Scaled(Distribution):
    """exp(c) * target: an unnormalised density with a known normaliser e^c."""

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, target, log_c):
        self.target, self.log_c = target, log_c
        super().__init__(torch.Size(), target.event_shape, validate_args=False)

    def log_prob(self, value):
        return self.target.log_prob(value) + self.log_c


def test_gaussian_target_is_recovered_exactly():
    cov = torch.tensor([[2.0, 0.9, 0.1], [0.9, 1.0, -0.3], [0.1, -0.3, 0.5]], dtype=F64)
    loc = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    target = _Scaled(MultivariateNormal(loc, cov), log_c=3.7)
    fit = laplace_approximation(target)
    torch.testing.assert_close(fit.loc, loc, atol=1e-8, rtol=0)
    torch.testing.assert_close(fit.covariance, cov, atol=1e-8, rtol=1e-8)
    # log Z = log integral e^c N = c, exactly (PRML eq. 4.135 is exact for a Gaussian)
    assert fit.log_evidence == pytest.approx(3.7, abs=1e-8)
    assert fit.converged and fit.seconds >= 0
    torch.testing.assert_close(fit.scale, cov.diagonal().sqrt(), atol=1e-8, rtol=0)


def _posterior_1d(n, seed):
    X, y = make_toy_data(n, weights=(1.0, 0.0), correlation=0.0,
                         generator=torch.Generator().manual_seed(seed))
    return LogisticPosterior(X[:, :1], y, prior_std=2.0, fit_intercept=False)


@pytest.mark.parametrize("seed", [0, 1])
def test_mode_and_curvature_match_the_grid_in_1d(seed):
    post = _posterior_1d(60, seed)
    fit = laplace_approximation(post)
    ref = grid_reference(post, post.box(fit.loc, fit.scale, 12.0), num_points=20_001)
    # the mode is the grid's argmax (to the grid's spacing)
    axis = ref.axes[0]
    argmax = float(axis[int(ref.density.argmax())])
    assert abs(argmax - float(fit.loc)) <= float(axis[1] - axis[0])
    # the curvature by finite differences of log p on the grid at the mode
    h = 1e-4
    w = fit.loc.reshape(1)
    second = (post.log_prob(w + h) - 2 * post.log_prob(w) + post.log_prob(w - h)) / h**2
    assert float(fit.hessian[0, 0]) == pytest.approx(-float(second), rel=1e-5)


def test_laplace_evidence_error_shrinks_with_the_data():
    """log Z by Laplace vs the grid: the error is O(1/n) (the posterior becomes Gaussian;
    Bernstein-von Mises), so it falls as n grows."""
    errors = []
    for n in (10, 100, 1000):
        post = _posterior_1d(n, seed=3)
        fit = laplace_approximation(post)
        ref = grid_reference(post, post.box(fit.loc, fit.scale, 12.0), num_points=4001)
        errors.append(abs(fit.log_evidence - ref.log_normaliser))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 5e-3


def test_2d_laplace_against_the_grid():
    X, y = make_toy_data(200, weights=(1.5, -0.5), correlation=0.5,
                         generator=torch.Generator().manual_seed(5))
    post = LogisticPosterior(X, y, prior_std=3.0, fit_intercept=False)
    fit = laplace_approximation(post, hessian=post.hessian)
    ref = grid_reference(post, post.box(fit.loc, fit.scale, 10.0), num_points=201)
    # with 200 points the posterior is nearly Gaussian: the mode-mean gap (the skew, which
    # shrinks like n^-1/2 in posterior stds) is a small fraction of a std
    assert float(((fit.loc - ref.mean) / ref.std).abs().max()) < 0.2
    torch.testing.assert_close(fit.scale, ref.std, rtol=0.05, atol=0)
    assert abs(fit.log_evidence - ref.log_normaliser) < 0.05
    # the closed-form Hessian and autograd's give the same fit
    auto = laplace_approximation(post)
    torch.testing.assert_close(auto.loc, fit.loc, atol=1e-9, rtol=0)
    torch.testing.assert_close(auto.covariance, fit.covariance, atol=1e-9, rtol=1e-9)


class _Saddle(Distribution):
    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self):
        super().__init__(torch.Size(), torch.Size((2,)), validate_args=False)

    def log_prob(self, value):
        return -value[..., 0] ** 2 + 0.0 * value[..., 1]


def test_flat_direction_raises():
    with pytest.raises(ValueError, match="not positive definite"):
        laplace_approximation(_Saddle())


def test_too_few_iterations_warn():
    post = _posterior_1d(60, 0)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        laplace_approximation(post, init=[25.0], max_iter=1)


def test_bad_arguments():
    with pytest.raises(TypeError, match="torch.distributions"):
        laplace_approximation(lambda w: -w @ w)
    post = _posterior_1d(20, 0)
    with pytest.raises(ValueError, match=r"init must have shape \(1,\)"):
        laplace_approximation(post, init=np.zeros(2))
    with pytest.raises(ValueError, match="event shape"):
        laplace_approximation(torch.distributions.Normal(0.0, 1.0))


def test_log_evidence_formula():
    """log Z = log p~(mode) + D/2 log 2 pi - 1/2 log|A| (PRML eq. 4.135), from the fit's parts."""
    post = _posterior_1d(30, 2)
    fit = laplace_approximation(post)
    expected = (fit.log_prob_at_mode + 0.5 * math.log(2 * math.pi)
                - 0.5 * math.log(float(fit.hessian[0, 0])))
    assert fit.log_evidence == pytest.approx(expected, rel=1e-12)


class _NanAway(Distribution):
    """N(0, 1) near the origin, NaN beyond |w| > 3: a broken log density."""

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self):
        super().__init__(torch.Size(), torch.Size((1,)), validate_args=False)

    def log_prob(self, value):
        lp = -0.5 * value[..., 0] ** 2
        return torch.where(value[..., 0].abs() > 3, torch.full_like(lp, math.nan), lp)


@pytest.mark.parametrize("kwargs,err,name", [
    (dict(init=np.zeros((1, 1))), ValueError, "init"),
    (dict(init=["0"]), TypeError, "init"),
    (dict(init=[math.inf]), ValueError, "init"),
    (dict(gtol=True), TypeError, "gtol"),
    (dict(gtol=0.0), ValueError, "gtol"),
    (dict(max_iter=5.0), TypeError, "max_iter"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(hessian="exact"), TypeError, "hessian"),
])
def test_laplace_refuses_bad_values_naming_the_argument(kwargs, err, name):
    with pytest.raises(err, match=name):
        laplace_approximation(_posterior_1d(20, 0), **kwargs)


def test_laplace_reports_a_non_finite_log_density():
    from vitoolkit.exceptions import NonFiniteError

    with pytest.raises(NonFiniteError, match="log_prob"):
        laplace_approximation(_NanAway(), init=[5.0])
    post = _posterior_1d(20, 0)
    with pytest.raises(NonFiniteError, match="Hessian"):
        laplace_approximation(post, hessian=lambda w: torch.full((1, 1), math.nan, dtype=F64))
    with pytest.raises(ValueError, match=r"hessian\(w\) must return shape \(1, 1\)"):
        laplace_approximation(post, hessian=lambda w: torch.ones(2, 2, dtype=F64))
