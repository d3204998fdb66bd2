"""Discrete-q estimators, ELBO gradients (incl. sticking the landing), black-box VI and
score/pathwise gradients for generic torch distributions.

Independent routes: enumeration with autograd, closed-form KL gradients, the exact
evidence of a conjugate model written as one multivariate normal, scipy moments.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _stats import assert_mc_close
from torch.distributions import Bernoulli, Categorical, Independent, MultivariateNormal, Normal

from vitoolkit.divergences import kl_divergence
from vitoolkit.gradients.bbvi import BayesianLogisticRegression, ConjugateGaussianModel, run_bbvi
from vitoolkit.gradients.discrete import (
    discrete_expectation,
    discrete_gradients,
    exact_discrete_gradient,
)
from vitoolkit.gradients.elbo import ELBO_ESTIMATORS, elbo_gradients
from vitoolkit.gradients.experiments import bbvi_comparison, gumbel_softmax_sweep
from vitoolkit.gradients.generic import distribution_gradients

D64 = torch.float64
TARGET = torch.tensor([0.45, 0.2, 0.9, 0.6], dtype=D64)


def cost_bits(b):
    return ((b - TARGET[: b.shape[-1]]) ** 2).sum(-1) + 2.0 * b[..., 0] * b[..., -1]


# -- discrete ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_enumeration_matches_autograd_of_the_exact_expectation(family):
    logits = torch.tensor([0.3, -0.5, 1.0, 0.2], dtype=D64, requires_grad=True)
    if family == "bernoulli":
        dist = Independent(Bernoulli(logits=logits), 1)
        support = torch.tensor(list(itertools.product((0.0, 1.0), repeat=4)), dtype=D64)
    else:
        dist = Categorical(logits=logits)
        support = torch.eye(4, dtype=D64)
        dist_lp = dist.log_prob(torch.arange(4))
    lp = dist.log_prob(support) if family == "bernoulli" else dist_lp
    value = (lp.exp() * cost_bits(support)).sum()
    (grad,) = torch.autograd.grad(value, logits)
    ours = exact_discrete_gradient(cost_bits, logits.detach(), family=family)
    torch.testing.assert_close(ours, grad, rtol=1e-12, atol=1e-12)
    got = discrete_expectation(cost_bits, logits.detach(), family=family)
    assert abs(float(got) - float(value.detach())) < 1e-12


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
@pytest.mark.parametrize("estimator", ["score", "score_baseline", "score_loo"])
def test_reinforce_is_unbiased_against_enumeration(family, estimator):
    logits = torch.tensor([[0.3, -0.5, 1.0, 0.2], [-1.0, 0.0, 0.5, 2.0]], dtype=D64)
    exact = exact_discrete_gradient(cost_bits, logits, family=family)
    g = discrete_gradients(cost_bits, logits, family=family, estimator=estimator,
                           num_samples=100_000, generator=torch.Generator().manual_seed(4))
    assert g.shape == (100_000, 2, 4)
    assert_mc_close(g.mean(0), exact, g.std(0) / math.sqrt(g.shape[0]))


def test_baseline_lowers_reinforce_variance():
    logits = torch.tensor([0.3, -0.5, 1.0, 0.2], dtype=D64)
    kw = {"family": "bernoulli", "num_samples": 50_000}
    plain = discrete_gradients(cost_bits, logits, estimator="score",
                               generator=torch.Generator().manual_seed(1), **kw)
    loo = discrete_gradients(cost_bits, logits, estimator="score_loo",
                             generator=torch.Generator().manual_seed(2), **kw)
    assert float(loo.var(0).sum()) < 0.5 * float(plain.var(0).sum())


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_gumbel_softmax_bias_shrinks_as_temperature_falls(family):
    logits = torch.tensor([0.3, -0.5, 1.0, 0.2], dtype=D64)
    sweep = gumbel_softmax_sweep(cost_bits, logits, [2.0, 0.5, 0.1], family=family,
                                 num_samples=100_000, generator=torch.Generator().manual_seed(9),
                                 reference=())
    bias, se = sweep["gumbel_softmax"]["bias_norm"], sweep["gumbel_softmax"]["bias_stderr"]
    for i in range(2):
        # Each decrease is resolved beyond 4.5 combined standard errors.
        assert bias[i] - bias[i + 1] > 4.5 * math.hypot(se[i], se[i + 1]), (bias, se)
    # ... and the biased estimator really is biased at high temperature.
    assert bias[0] > 4.5 * se[0]
    # Its variance grows as the temperature falls.
    var = sweep["gumbel_softmax"]["variance"]
    assert var[0] < var[1] < var[2]


def test_discrete_bad_inputs():
    logits = torch.zeros(3, dtype=D64)
    with pytest.raises(ValueError, match="no rsample"):
        discrete_gradients(cost_bits, logits, family="bernoulli", estimator="pathwise",
                           num_samples=10)
    with pytest.raises(ValueError, match="needs a temperature"):
        discrete_gradients(cost_bits, logits, family="categorical", estimator="gumbel_softmax",
                           num_samples=10)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        discrete_gradients(cost_bits, logits, family="categorical", estimator="gumbel_softmax",
                           num_samples=10, temperature=0.0)
    with pytest.raises(ValueError, match="family must be one of"):
        discrete_gradients(cost_bits, logits, family="poisson", estimator="score", num_samples=10)
    with pytest.raises(ValueError, match="estimator must be one of"):
        discrete_gradients(cost_bits, logits, family="bernoulli", estimator="rebar",
                           num_samples=10)
    with pytest.raises(ValueError, match="num_samples"):
        discrete_gradients(cost_bits, logits, family="bernoulli", estimator="score", num_samples=1)
    with pytest.raises(ValueError, match="2\\^21 outcomes"):
        exact_discrete_gradient(lambda b: b.sum(-1), torch.zeros(21), family="bernoulli")
    with pytest.raises(TypeError, match="temperature must be a real number"):
        discrete_gradients(cost_bits, logits, family="categorical", estimator="gumbel_softmax",
                           num_samples=10, temperature=True)
    with pytest.raises(TypeError, match="logits must hold real numbers, got a boolean"):
        discrete_gradients(cost_bits, [True, False], family="bernoulli", estimator="score",
                           num_samples=10)


def test_discrete_resource_guards():
    from vitoolkit.exceptions import ResourceLimitError

    with pytest.raises(ResourceLimitError, match="num_samples=1000000000000"):
        discrete_gradients(cost_bits, torch.zeros(3, dtype=D64), family="bernoulli",
                           estimator="score", num_samples=10**12)
    # 2^20 outcomes for each of 10,000 problems of 20 bits: 6 TiB of outcomes.
    with pytest.raises(ResourceLimitError, match=r"logits=.*10000, 20.*would need"):
        exact_discrete_gradient(lambda b: b.sum(-1), torch.zeros(10_000, 20), family="bernoulli")


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
@pytest.mark.parametrize("estimator", ["gumbel_softmax", "straight_through"])
def test_relaxed_estimators_tell_a_constant_from_a_step(family, estimator):
    logits = torch.tensor([0.3, -0.5, 1.0, 0.2], dtype=D64)
    kw = {"family": family, "estimator": estimator, "num_samples": 100, "temperature": 0.5}
    for const in (lambda y: 2.0 * torch.ones_like(y[..., 0]), lambda y: 0.0 * y.sum(-1) + 2.0):
        g = discrete_gradients(const, logits, **kw)
        assert g.shape == (100, 4) and bool((g == 0).all())
    # Varying values without a graph (computed outside torch): refused, not returned as zeros.
    with pytest.raises(ValueError, match="carries no gradient"):
        discrete_gradients(lambda y: torch.from_numpy(y.detach().numpy().sum(-1)), logits, **kw)


def test_relaxed_draws_come_from_the_core_gumbel_softmax_sampler():
    # The categorical relaxation is vitoolkit.distributions.gumbel_softmax_sample: the same
    # generator state gives the same y, so f(y) = y . a has per-draw gradient J(y)^T a / tau.
    from vitoolkit.distributions import gumbel_softmax_sample

    logits = torch.tensor([0.3, -0.5, 1.0, 0.2], dtype=D64)
    a = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=D64)
    tau = 0.7
    g = discrete_gradients(lambda y: (y * a).sum(-1), logits, family="categorical",
                           estimator="gumbel_softmax", num_samples=50, temperature=tau,
                           generator=torch.Generator().manual_seed(3))
    y = gumbel_softmax_sample(logits, tau, (50,), generator=torch.Generator().manual_seed(3)).soft
    expected = y * (a - (y * a).sum(-1, keepdim=True)) / tau  # softmax Jacobian, by hand
    torch.testing.assert_close(g, expected, rtol=1e-12, atol=1e-12)


# -- ELBO gradients ------------------------------------------------------------------------------


def _model():
    gen = torch.Generator().manual_seed(0)
    data = 1.5 + torch.randn((15, 2), generator=gen, dtype=D64)
    return ConjugateGaussianModel(data, prior_loc=0.3, prior_std=2.0, noise_scale=1.2)


def test_conjugate_evidence_against_the_marginal_normal():
    m = _model()
    n = m.data.shape[0]
    cov = 1.2**2 * torch.eye(n, dtype=D64) + 2.0**2 * torch.ones((n, n), dtype=D64)
    marginal = MultivariateNormal(torch.full((n,), 0.3, dtype=D64), covariance_matrix=cov)
    exact = float(marginal.log_prob(m.data.T).sum())  # the D coordinates are independent
    assert abs(m.log_evidence() - exact) < 1e-9


def test_stl_is_exactly_zero_at_the_posterior():
    m = _model()
    stl = elbo_gradients(m.log_joint, m.posterior_loc, m.posterior_scale, estimator="stl",
                         num_samples=2_000, generator=torch.Generator().manual_seed(1))
    total = elbo_gradients(m.log_joint, m.posterior_loc, m.posterior_scale, estimator="pathwise",
                           num_samples=2_000, generator=torch.Generator().manual_seed(1))
    # Zero up to float64 rounding of log p(x, z) - log q(z) = log p(x), a constant in z.
    assert float(torch.cat([stl.loc, stl.scale]).abs().max()) < 1e-10
    assert float(total.loc.var(0).min()) > 1.0


@pytest.mark.parametrize("estimator", ELBO_ESTIMATORS)
def test_elbo_gradients_are_unbiased(estimator):
    m = _model()
    loc = torch.tensor([0.5, 2.0], dtype=D64)
    scale = torch.tensor([0.6, 0.3], dtype=D64)
    # Exact: d/dlambda ELBO = -d/dlambda KL(q || posterior), by autograd of the closed form.
    lv, sv = loc.clone().requires_grad_(True), scale.clone().requires_grad_(True)
    kl = kl_divergence(Independent(Normal(lv, sv), 1), m.posterior())
    e_loc, e_scale = torch.autograd.grad(-kl, (lv, sv))
    n = 200_000 if estimator.startswith("score") else 20_000
    s = elbo_gradients(m.log_joint, loc, scale, estimator=estimator, num_samples=n,
                       generator=torch.Generator().manual_seed(2))
    for samples, truth in zip(s, (e_loc, e_scale), strict=True):
        assert_mc_close(samples.mean(0), truth, samples.std(0) / math.sqrt(n))


def test_conjugate_model_is_the_core_model_column_by_column():
    # Independent route: log p(x, z) summed over data points and coordinates by Normal.log_prob.
    m = _model()
    z = torch.randn((5, 3, 2), generator=torch.Generator().manual_seed(7), dtype=D64)
    direct = (Normal(z.unsqueeze(-2), 1.2).log_prob(m.data).sum(-2)
              + Normal(torch.tensor(0.3, dtype=D64), 2.0).log_prob(z)).sum(-1)
    torch.testing.assert_close(m.log_joint(z), direct, rtol=1e-13, atol=1e-11)
    # The posterior per coordinate is the one-dimensional core model's.
    for d in range(2):
        post = m.model.posterior(m.data[:, d])
        assert float(post.loc) == pytest.approx(float(m.posterior_loc[d]), rel=1e-14)
        assert float(post.scale) == pytest.approx(float(m.posterior_scale[d]), rel=1e-14)


def test_elbo_bad_inputs():
    m = _model()
    with pytest.raises(ValueError, match="estimator must be one of"):
        elbo_gradients(m.log_joint, [0.0, 0.0], [1.0, 1.0], estimator="total", num_samples=4)
    with pytest.raises(ValueError, match="scale must be positive"):
        elbo_gradients(m.log_joint, [0.0, 0.0], [1.0, -1.0], estimator="stl", num_samples=4)
    with pytest.raises(ValueError, match="log_joint must map"):
        elbo_gradients(lambda z: z, [0.0, 0.0], [1.0, 1.0], estimator="score", num_samples=4)


# -- black-box VI ------------------------------------------------------------------------------------


def test_bbvi_reaches_the_conjugate_posterior_and_elbo_stays_below_evidence():
    m = _model()
    runs = bbvi_comparison(m, ("stl", "score"), num_iterations=300, num_samples=8,
                           learning_rate=0.05, seed=3)
    log_evidence = m.log_evidence()
    for res in runs.values():
        assert (res.elbo <= log_evidence + 1e-9).all()  # ELBO = log p(x) - KL
        assert res.elbo.shape == (301,) and res.grad_variance.shape == (300,)
    assert runs["stl"].distance[-1] < 1e-2
    assert runs["score"].distance[-1] > 10 * runs["stl"].distance[-1]


def test_logistic_regression_reference_and_elbo():
    model = BayesianLogisticRegression.synthetic(60, 2, generator=torch.Generator().manual_seed(5),
                                                 reference_samples=40_000, seed=1)
    assert model.effective_sample_size > 10_000
    sd = torch.diagonal(model.posterior_covariance).sqrt()
    # The posterior mean sits near the Laplace mode (well within a posterior s.d.).
    assert float(((model.posterior_mean - model.laplace_mode) / sd).abs().max()) < 0.5
    # The quadrature ELBO agrees with a plain Monte Carlo estimate.
    loc = torch.tensor([0.2, -0.4], dtype=D64)
    scale = torch.tensor([0.3, 0.5], dtype=D64)
    z = loc + scale * torch.randn((200_000, 2), generator=torch.Generator().manual_seed(6),
                                  dtype=D64)
    terms = model.log_joint(z) - Independent(Normal(loc, scale), 1).log_prob(z)
    assert_mc_close(terms.mean(), model.elbo(loc, scale), terms.std() / math.sqrt(len(terms)))
    res = run_bbvi(model, estimator="pathwise", num_iterations=200, num_samples=8,
                   generator=torch.Generator().manual_seed(0))
    assert res.elbo[-1] > res.elbo[0] and res.distance[-1] < 0.5


def test_bbvi_bad_inputs():
    m = _model()
    with pytest.raises(ValueError, match="num_iterations"):
        run_bbvi(m, estimator="stl", num_iterations=0, num_samples=4)
    with pytest.raises(ValueError, match="learning_rate"):
        run_bbvi(m, estimator="stl", num_iterations=5, num_samples=4, learning_rate=-1.0)
    with pytest.raises(ValueError, match=r"init_loc and init_scale must have shape \(2,\)"):
        run_bbvi(m, estimator="stl", num_iterations=5, num_samples=4, init_loc=[0.0, 0.0, 0.0],
                 init_scale=[1.0])
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        BayesianLogisticRegression(torch.zeros((3, 2)), torch.tensor([0.0, 2.0, 1.0]))
    from vitoolkit.exceptions import ResourceLimitError

    with pytest.raises(ResourceLimitError, match="num_samples=1000000000000"):
        run_bbvi(m, estimator="stl", num_iterations=5, num_samples=10**12)
    with pytest.raises(ResourceLimitError, match="num_samples"):
        elbo_gradients(m.log_joint, [0.0, 0.0], [1.0, 1.0], estimator="score",
                       num_samples=10**12)
    with pytest.raises(ResourceLimitError, match="reference_samples=10000000000"):
        BayesianLogisticRegression(torch.zeros((3, 2)), torch.tensor([0.0, 1.0, 1.0]),
                                   reference_samples=10**10)
    with pytest.raises(TypeError, match="num_iterations must be an integer"):
        run_bbvi(m, estimator="stl", num_iterations=5.0, num_samples=4)
    with pytest.raises(TypeError, match="learning_rate must be a real number"):
        run_bbvi(m, estimator="stl", num_iterations=5, num_samples=4, learning_rate="0.1")
    with pytest.raises(ValueError, match=r"baseline_decay must be < 1"):
        run_bbvi(m, estimator="score_baseline", num_iterations=5, num_samples=4, baseline_decay=1.0)
    with pytest.raises(TypeError, match="data must"):
        ConjugateGaussianModel([["a", "b"]])
    with pytest.raises(ValueError, match="prior_std must be > 0"):
        ConjugateGaussianModel(torch.zeros(3, 2), prior_std=0.0)


# -- generic distributions -------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["score", "pathwise"])
def test_generic_gamma_gradients_are_unbiased(estimator):
    # E[x] = a / b for Gamma(a, b): d/da = 1/b, d/db = -a/b^2.
    a, b = 2.0, 3.0
    g_a, g_b = distribution_gradients(lambda x: x.sum(-1), lambda a, b: torch.distributions.Gamma(a, b),
                                      [a, b], estimator=estimator, num_samples=100_000,
                                      generator=torch.Generator().manual_seed(8))
    assert_mc_close(g_a.mean(), 1 / b, g_a.std() / math.sqrt(len(g_a)))
    assert_mc_close(g_b.mean(), -a / b**2, g_b.std() / math.sqrt(len(g_b)))


def test_generic_pathwise_refuses_a_distribution_without_rsample():
    with pytest.raises(ValueError, match="Poisson has no rsample"):
        distribution_gradients(lambda x: x.sum(-1), torch.distributions.Poisson, [2.0],
                               estimator="pathwise", num_samples=10)
    from vitoolkit.exceptions import ResourceLimitError

    with pytest.raises(ResourceLimitError, match="num_samples"):
        distribution_gradients(lambda x: x.sum(-1), torch.distributions.Poisson, [2.0],
                               estimator="score", num_samples=10**12)
    with pytest.raises(TypeError, match=r"params\[0\] must"):
        distribution_gradients(lambda x: x.sum(-1), torch.distributions.Poisson, ["2"],
                               estimator="score", num_samples=10)


def test_generic_pathwise_tells_a_constant_from_a_step():
    gamma = lambda a, b: torch.distributions.Gamma(a, b)  # noqa: E731
    kw = {"estimator": "pathwise", "num_samples": 50}
    g_a, g_b = distribution_gradients(lambda x: 2.0 * torch.ones_like(x[..., 0]), gamma, [2.0, 3.0], **kw)
    assert bool((g_a == 0).all()) and bool((g_b == 0).all())
    with pytest.raises(ValueError, match="carries no gradient"):
        distribution_gradients(lambda x: (x[..., 0] > 0.5).to(x.dtype), gamma, [2.0, 3.0], **kw)


def test_gumbel_softmax_sweep_variance_stderr_matches_the_spread_of_repeated_estimates():
    """The reported standard error of the summed variance agrees with the standard deviation of
    that variance over independent repeats (an independent route: replication)."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.tensor([0.5, -0.3, 1.0], dtype=torch.float64)
    target = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)

    def cost(b):
        return ((b - target) ** 2).sum(-1)

    reps = [gumbel_softmax_sweep(cost, logits, [0.5], num_samples=500, generator=gen,
                                 reference=("score",)) for _ in range(60)]
    for est in ("gumbel_softmax", "score"):
        variances = np.array([float(np.ravel(r[est]["variance"])[0]) for r in reps])
        stderrs = np.array([float(np.ravel(r[est]["variance_stderr"])[0]) for r in reps])
        # 60 repeats: the sample sd is within about 20% of the truth (3 x its own 9% error).
        assert variances.std(ddof=1) == pytest.approx(stderrs.mean(), rel=0.3)
