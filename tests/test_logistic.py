"""Bayesian logistic regression as a VI target (vitoolkit.fitting.logistic).

Independent routes: the log likelihood against scikit-learn's ``log_loss``; gradient and
Hessian against torch's autograd; the MAP against scikit-learn's ``LogisticRegression``
with C = s^2; the predictive against quadrature; the fitted Gaussians against the exact
posterior on a grid (mean-field variance <= full-rank variance, mean-field variances
= 1 / Lambda_ii as Bishop 10.1.2 predicts for a Gaussian).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from torch.distributions import Independent, MultivariateNormal, Normal

from vitoolkit.fitting import fit_gaussian
from vitoolkit.fitting.laplace import laplace_approximation
from vitoolkit.fitting.logistic import (
    LogisticPosterior,
    make_toy_data,
    predictive,
    probit_predictive,
    sklearn_map,
)
from vitoolkit.fitting.reference import grid_reference

F64 = torch.float64


def _data(n=60, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w + 0.3)))).astype(int)
    return X, y


@pytest.fixture
def toy():
    X, y = make_toy_data(40, weights=(1.5, 1.5), correlation=0.97,
                         generator=torch.Generator().manual_seed(0))
    return LogisticPosterior(X, y, prior_std=3.0, fit_intercept=False)


# ----------------------------------------------------------------------- the target
def test_log_likelihood_is_sklearns_log_loss():
    X, y = _data()
    post = LogisticPosterior(X, y, prior_std=2.0)
    w = torch.tensor([0.3, -0.5, 1.0, 0.2], dtype=F64)
    p = torch.sigmoid(post.design @ w).numpy()
    expected = -log_loss(y, p, normalize=False)
    assert float(post.log_likelihood(w)) == pytest.approx(expected, rel=1e-12)


def test_log_prob_is_log_joint_with_every_constant():
    X, y = _data()
    s = 1.7
    post = LogisticPosterior(X, y, prior_std=s)
    w = torch.linspace(-1, 1, post.dim, dtype=F64)
    prior = Normal(torch.zeros(post.dim, dtype=F64), s).log_prob(w).sum()
    lik = torch.distributions.Bernoulli(logits=post.design @ w).log_prob(post.labels).sum()
    assert float(post.log_prob(w)) == pytest.approx(float(prior + lik), rel=1e-12)


def test_log_prob_is_batched_over_draws():
    X, y = _data()
    post = LogisticPosterior(X, y)
    w = torch.randn(5, 7, post.dim, dtype=F64, generator=torch.Generator().manual_seed(1))
    batched = post.log_prob(w)
    assert batched.shape == (5, 7)
    one_by_one = torch.stack([torch.stack([post.log_prob(w[i, j]) for j in range(7)]) for i in range(5)])
    torch.testing.assert_close(batched, one_by_one)


def test_gradient_and_hessian_match_autograd():
    X, y = _data()
    post = LogisticPosterior(X, y, prior_std=0.8)
    w = torch.tensor([0.1, -0.4, 0.7, 0.3], dtype=F64)
    grad_auto = torch.func.grad(post.log_prob)(w)
    torch.testing.assert_close(post.grad_log_prob(w), grad_auto)
    hess_auto = torch.autograd.functional.hessian(lambda v: -post.log_prob(v), w)
    torch.testing.assert_close(post.hessian(w), hess_auto)


def test_design_matrix_and_intercept():
    X, y = _data(d=2)
    with_b = LogisticPosterior(X, y)
    without = LogisticPosterior(X, y, fit_intercept=False)
    assert with_b.dim == 3 and without.dim == 2
    assert bool((with_b.design[:, 0] == 1).all())
    torch.testing.assert_close(with_b.design[:, 1:], without.design)
    assert with_b.logits(torch.zeros(3, dtype=F64), X[:4]).shape == (4,)


@pytest.mark.parametrize("bad, match", [
    (dict(X=np.ones(5), y=np.ones(5)), "X must have shape"),
    (dict(X=np.ones((5, 2)), y=np.ones(4)), "y must have shape"),
    (dict(X=np.ones((5, 2)), y=np.full(5, 2)), "labels 0 and 1"),
    (dict(X=np.ones((5, 2)), y=np.ones(5), prior_std=0.0), "prior_std"),
    (dict(X=np.full((5, 2), np.nan), y=np.ones(5)), "X contains 10 NaN or inf"),
])
def test_invalid_arguments_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        LogisticPosterior(**bad)


def test_wrong_weight_shape_and_no_sampler():
    X, y = _data()
    post = LogisticPosterior(X, y)
    with pytest.raises(ValueError, match=r"w must have shape \(\.\.\., 4\)"):
        post.log_prob(torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="3 features"):
        post.design_matrix(np.ones((2, 5)))
    with pytest.raises(NotImplementedError, match="nuts_reference"):
        post.sample()


# ----------------------------------------------------------------- MAP vs scikit-learn
@pytest.mark.parametrize("prior_std", [0.3, 1.0, 4.0])
def test_map_equals_sklearn_with_C_equal_prior_variance(prior_std):
    """-log p(y, w) = sum loss + |w|^2 / (2 s^2) is sklearn's objective / C with C = s^2."""
    X, y = _data(n=120, d=4, seed=3)
    post = LogisticPosterior(X, y, prior_std=prior_std)
    lap = laplace_approximation(post, hessian=post.hessian)
    # sklearn directly (not through sklearn_map): the intercept is a penalised design column
    clf = LogisticRegression(C=prior_std**2, fit_intercept=False, tol=1e-12, max_iter=10_000)
    clf.fit(post.design.numpy(), y)
    np.testing.assert_allclose(lap.loc.numpy(), clf.coef_[0], atol=1e-6)
    np.testing.assert_allclose(sklearn_map(post).coef_[0], clf.coef_[0], atol=1e-6)
    assert post.sklearn_C == pytest.approx(prior_std**2)


def test_sklearn_with_a_different_C_is_not_the_map():
    """The mapping is C = s^2, not C = s or 1 / s^2 (a check that the test above can fail)."""
    X, y = _data(n=120, d=4, seed=3)
    post = LogisticPosterior(X, y, prior_std=0.5)
    lap = laplace_approximation(post, hessian=post.hessian)
    for wrong_c in (0.5, 4.0):
        clf = LogisticRegression(C=wrong_c, fit_intercept=False, tol=1e-12, max_iter=10_000)
        clf.fit(post.design.numpy(), y)
        assert np.abs(lap.loc.numpy() - clf.coef_[0]).max() > 1e-2


# ---------------------------------------------------------------------- predictions
def test_probit_approximation_is_close_to_the_exact_gaussian_average():
    """E[sigmoid(a)], a ~ N(mu, s2), by Gauss-Hermite quadrature vs MacKay's probit formula;
    the approximation's error is below 0.02 over a wide range (Bishop fig. 4.9)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    for mu in (-3.0, -0.5, 0.0, 1.0, 4.0):
        for var in (0.01, 1.0, 9.0, 100.0):
            exact = float(np.sum(weights / (1 + np.exp(-(mu + math.sqrt(var) * nodes)))))
            design = torch.tensor([[1.0]], dtype=F64)
            approx = float(probit_predictive(design, torch.tensor([mu], dtype=F64),
                                             torch.tensor([[var]], dtype=F64)))
            assert abs(approx - exact) < 0.02, (mu, var, approx, exact)


def test_monte_carlo_predictive_matches_quadrature_within_its_error():
    X, y = _data(d=1)
    post = LogisticPosterior(X, y, fit_intercept=False)
    q = MultivariateNormal(torch.tensor([0.8], dtype=F64), torch.tensor([[0.5]], dtype=F64))
    X_new = np.array([[-2.0], [0.3], [1.5]])
    pred = predictive(post, X_new, q, num_samples=200_000, generator=torch.Generator().manual_seed(0))
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    w = 0.8 + math.sqrt(0.5) * nodes
    for i, x in enumerate(X_new[:, 0]):
        probs = 1 / (1 + np.exp(-x * w))
        exact = float(np.sum(weights * probs))
        sd = math.sqrt(float(np.sum(weights * (probs - exact) ** 2)))
        # 5 standard errors: a false failure has probability ~6e-7 per point
        assert abs(float(pred.prob[i]) - exact) < 5 * sd / math.sqrt(200_000)
        assert float(pred.std[i]) == pytest.approx(sd, rel=0.02)
    assert pred.method == "monte_carlo"


def test_predictive_routes_agree_on_a_diagonal_gaussian():
    X, y = _data(d=2)
    post = LogisticPosterior(X, y)
    q = Independent(Normal(torch.tensor([0.2, -0.3, 0.5], dtype=F64),
                           torch.tensor([0.3, 0.2, 0.4], dtype=F64)), 1)
    X_new = X[:10]
    mc = predictive(post, X_new, q, num_samples=100_000, generator=torch.Generator().manual_seed(2))
    probit = predictive(post, X_new, q, method="probit")
    draws = q.sample((100_000,))
    from_draws = predictive(post, X_new, draws)
    assert probit.std is None and probit.method == "probit" and from_draws.method == "samples"
    assert float((mc.prob - probit.prob).abs().max()) < 0.02
    assert float((mc.prob - from_draws.prob).abs().max()) < 0.01


def test_predictive_rejects_unknown_inputs():
    X, y = _data(d=2)
    post = LogisticPosterior(X, y)
    q = MultivariateNormal(torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match="method"):
        predictive(post, X, q, method="laplace")
    with pytest.raises(TypeError, match="Gaussian"):
        predictive(post, X, torch.distributions.StudentT(3.0), method="probit")
    with pytest.raises(ValueError, match="num_samples"):
        predictive(post, X, q, num_samples=1)


def test_quadrature_predictive_equals_a_direct_sum(toy):
    lap = laplace_approximation(toy, hessian=toy.hessian)
    ref = grid_reference(toy, toy.box(lap.loc, lap.scale, 9.0), num_points=61)
    X_new = torch.tensor([[0.5, -0.5], [2.0, 1.0]], dtype=F64)
    pred = predictive(toy, X_new, ref)
    probs = torch.sigmoid(ref.points @ X_new.mT)
    torch.testing.assert_close(pred.prob, ref.weights @ probs)
    assert pred.method == "quadrature"


# ------------------------------------------------------ VI fits against the exact posterior
def test_mean_field_variance_is_below_full_rank_and_the_exact_variance(toy):
    """Bishop 10.1.2 on a real posterior: the mean-field reverse fit is narrower than the
    full-rank one, whose moments are close to the exact (grid) moments."""
    lap = laplace_approximation(toy, hessian=toy.hessian)
    bounds = toy.box(lap.loc, lap.scale, 9.0)
    exact = grid_reference(toy, bounds, num_points=121)
    init = {"loc": lap.loc, "scale": lap.scale}
    mf = fit_gaussian(toy, "reverse", family="diagonal", bounds=bounds, init=init)
    fr = fit_gaussian(toy, "reverse", family="full", bounds=bounds, init=init)
    assert bool((torch.diagonal(mf.covariance) <= torch.diagonal(fr.covariance)).all())
    assert bool((mf.scale < 0.8 * exact.std).all())
    torch.testing.assert_close(fr.scale, exact.std, rtol=0.05, atol=0)
    torch.testing.assert_close(fr.loc, exact.mean, rtol=0, atol=0.05 * float(exact.std.min()))
    # mean-field variances are 1 / Lambda_ii of the (near-Gaussian) posterior's precision
    lam = torch.linalg.inv(fr.covariance)
    torch.testing.assert_close(mf.scale, lam.diagonal().rsqrt(), rtol=0.1, atol=0)
    # the ELBOs order as the families nest, below the exact log evidence
    assert -mf.value < -fr.value < exact.log_normaliser


def test_toy_data_is_seeded_and_correlated():
    a = make_toy_data(5000, correlation=0.9, generator=torch.Generator().manual_seed(4))
    b = make_toy_data(5000, correlation=0.9, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a[0], b[0])
    corr = float(torch.corrcoef(a[0].mT)[0, 1])
    assert corr == pytest.approx(0.9, abs=0.02)
    assert set(a[1].unique().tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="correlation"):
        make_toy_data(10, correlation=1.0)
    with pytest.raises(ValueError, match="n must be"):
        make_toy_data(1)


@pytest.mark.parametrize("bad,err,name", [
    (dict(prior_std="1"), TypeError, "prior_std"),
    (dict(prior_std=True), TypeError, "prior_std"),
    (dict(fit_intercept=1), TypeError, "fit_intercept"),
    (dict(X=[["a", "b"]] * 5), TypeError, "X"),
    (dict(X=np.ones((5, 2)) + 1j), TypeError, "X"),
    (dict(y=np.ones((5, 1))), ValueError, "y must have shape"),
])
def test_posterior_refuses_bad_values_naming_the_argument(bad, err, name):
    args = {"X": np.ones((5, 2)), "y": np.array([0, 1, 0, 1, 1]), **bad}
    with pytest.raises(err, match=name):
        LogisticPosterior(**args)


def test_boolean_labels_are_labels():
    X = np.ones((4, 2))
    a = LogisticPosterior(X, np.array([True, False, True, True]))
    b = LogisticPosterior(X, np.array([1, 0, 1, 1]))
    assert torch.equal(a.labels, b.labels)


def test_predictions_and_toy_data_refuse_bad_values(monkeypatch):
    from vitoolkit.exceptions import ResourceLimitError

    X, y = _data(d=2)
    post = LogisticPosterior(X, y)
    q = MultivariateNormal(torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64))
    with pytest.raises(TypeError, match="num_samples"):
        predictive(post, X, q, num_samples=100.0)
    with pytest.raises(TypeError, match="generator"):
        predictive(post, X, q, generator=1)
    with pytest.raises(TypeError, match="posterior"):
        predictive(q, X, q)
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "1G")
    with pytest.raises(ResourceLimitError, match="num_samples=10000000000"):
        predictive(post, X, q, num_samples=10**10)
    with pytest.raises(ResourceLimitError, match="n=10000000000"):
        make_toy_data(10**10)
    with pytest.raises(TypeError, match="n must be"):
        make_toy_data(10.0)
    with pytest.raises(ValueError, match="weights"):
        make_toy_data(10, weights=[[1.0, 2.0]])
    with pytest.raises(ValueError, match="covariance"):
        probit_predictive(post.design, torch.zeros(3, dtype=F64), torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="loc"):
        post.box(torch.zeros(2, dtype=F64), 1.0)
    with pytest.raises(TypeError, match="tol"):
        sklearn_map(post, tol="small")


def test_one_logistic_model_serves_fitting_and_gradients():
    """bbvi's BayesianLogisticRegression is the models package's LogisticPosterior (no intercept):
    the same log joint, and its Laplace mode is scikit-learn's MAP (an independent optimiser)."""
    import warnings

    from vitoolkit.fitting.logistic import LogisticPosterior as FittingPosterior
    from vitoolkit.gradients.bbvi import BayesianLogisticRegression
    from vitoolkit.models.logistic import LogisticPosterior as ModelPosterior

    assert FittingPosterior is ModelPosterior
    X, y = _data(n=40, d=2, seed=3)
    X, y = torch.as_tensor(X, dtype=F64), torch.as_tensor(y, dtype=F64)
    blr = BayesianLogisticRegression(X, y, prior_std=1.5, reference_samples=2000)
    post = ModelPosterior(X, y, prior_std=1.5, fit_intercept=False)
    w = torch.randn(7, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    eta = w @ X.T  # the log joint written out: sum_n y a - softplus(a) + log N(w; 0, 1.5^2 I)
    prior = Normal(torch.tensor(0.0, dtype=F64), torch.tensor(1.5, dtype=F64))
    direct = (y * eta - torch.nn.functional.softplus(eta)).sum(-1) + prior.log_prob(w).sum(-1)
    torch.testing.assert_close(blr.log_joint(w), direct, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(post.log_prob(w), direct, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(blr.laplace_mode.numpy(), sklearn_map(post).coef_[0], atol=1e-6)
    with pytest.warns(DeprecationWarning, match="prior_std"):
        old = BayesianLogisticRegression(X, y, prior_scale=1.5, reference_samples=2000)
    assert old.prior_std == old.prior_scale == 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(old.posterior_mean, blr.posterior_mean, rtol=0, atol=0)
