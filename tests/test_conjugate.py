"""vitoolkit.conjugate's lesson computations against independent routes.

Closed forms against quadrature (the ELBO by the Jensen route, the relative variance of
importance weights), Monte Carlo against closed forms with standard-error tolerances
(policy in conftest.py), and the exact fixed point of variational EM.
"""

from __future__ import annotations

import math

import pytest
import torch
from _stats import assert_mc_close
from torch.distributions import Normal

from vitoolkit.conjugate import (
    ConjugateGaussian,
    ElboSurface,
    EvidenceEstimate,
    NormalStatistics,
    independent_copies_relative_variance,
)
from vitoolkit.divergences import kl_divergence

D = torch.float64


def t(x):
    return torch.as_tensor(x, dtype=D)


@pytest.fixture
def model_and_data():
    model = ConjugateGaussian(0.3, 2.0, 1.2)
    _, x = model.sample_data(15, generator=torch.Generator().manual_seed(4))
    return model, x


def test_log_evidence_in_linear_time_equals_the_multivariate_normal(model_and_data):
    model, x = model_and_data
    n = x.shape[0]
    cov = model.noise_scale**2 * torch.eye(n, dtype=D) + model.prior_std**2
    mvn = torch.distributions.MultivariateNormal(model.prior_loc.expand(n), covariance_matrix=cov)
    assert float(model.log_evidence(x)) == pytest.approx(float(mvn.log_prob(x)), abs=1e-10)
    assert torch.isfinite(model.log_evidence(torch.zeros(200_000, dtype=D)))  # no n x n matrix


def test_prior_predictive_is_the_evidence_of_one_observation(model_and_data):
    model, _ = model_and_data
    for v in (-3.0, 0.3, 5.0):
        one = t([v])
        assert float(model.prior_predictive().log_prob(t(v))) == pytest.approx(
            float(model.log_evidence(one)), abs=1e-12)


def test_log_likelihood_by_sufficient_statistics_matches_the_sum_over_data(model_and_data):
    model, x = model_and_data
    z = torch.linspace(-3, 3, 7, dtype=D).reshape(7, 1) + torch.zeros(1, 2, dtype=D)
    direct = Normal(z.unsqueeze(-1), model.noise_scale).log_prob(x).sum(-1)
    torch.testing.assert_close(model.log_likelihood(x, z), direct, rtol=0, atol=1e-11)
    assert model.log_joint(x, z).shape == (7, 2)


def test_elbo_surface_terms_sum_to_the_evidence_and_peak_at_the_posterior(model_and_data):
    model, x = model_and_data
    post = model.posterior(x)
    means = torch.linspace(float(post.loc) - 1, float(post.loc) + 1, 41, dtype=D)
    log_scales = torch.linspace(float(post.scale.log()) - 1, float(post.scale.log()) + 1, 21, dtype=D)
    surf = model.elbo_surface(x, means, log_scales)
    assert isinstance(surf, ElboSurface) and surf.elbo.shape == (21, 41) and surf.kl.shape == (21, 41)
    torch.testing.assert_close(surf.elbo + surf.kl, surf.log_evidence.expand(21, 41), rtol=0, atol=1e-10)
    # Grid point (i, j) is q = N(means[j], exp(log_scales[i])^2), checked against kl_divergence.
    q = Normal(means[7], log_scales[3].exp())
    assert float(surf.kl[3, 7]) == pytest.approx(float(kl_divergence(q, post)), abs=1e-12)
    i, j = divmod(int(torch.argmax(surf.elbo)), 41)
    assert (i, j) == (10, 20)  # the grid is centred on the posterior


def test_elbo_by_quadrature_equals_the_closed_form(model_and_data):
    model, x = model_and_data
    post = model.posterior(x)
    q = Normal(t([float(post.loc), 0.0, 2.0, float(post.loc) + 0.2]), t([float(post.scale), 1.0, 0.1, 0.05]))
    torch.testing.assert_close(model.elbo_quadrature(x, q), model.elbo(x, q), rtol=0, atol=1e-9)
    with pytest.raises(TypeError, match="q must be"):
        model.elbo_quadrature(x, torch.distributions.Laplace(t(0.0), t(1.0)))


def test_em_climbs_the_evidence_to_the_marginal_maximum_likelihood(model_and_data):
    model, x = model_and_data
    thetas = model.em_prior_loc(x, -4.0, 6)
    assert thetas.shape == (7,)
    evid = torch.stack([model.with_prior_loc(th).log_evidence(x) for th in thetas])
    assert bool((evid[1:] >= evid[:-1] - 1e-12).all())  # never down (Neal & Hinton 1998)
    assert float(thetas[-1]) == pytest.approx(float(x.mean()), abs=1e-8)  # theta* = mean(x)
    # The M-step is the argmax over theta of ELBO(q; theta): check against a fine grid.
    q = model.with_prior_loc(thetas[0]).posterior(x)
    grid = torch.linspace(-5, 5, 20001, dtype=D)
    elbos = torch.stack([model.with_prior_loc(g).elbo(x, q) for g in grid[::100]])
    best = float(grid[::100][torch.argmax(elbos)])
    assert abs(best - float(thetas[1])) <= 0.05 + 1e-12
    with pytest.raises(ValueError, match="num_steps"):
        model.em_prior_loc(x, 0.0, -1)


def test_descending_minus_elbo_is_ascending_the_elbo_bit_for_bit(model_and_data):
    model, x = model_and_data
    up = model.gradient_fit(x, init=(1.0, 0.0, 2.0), num_steps=150, lr=0.02)
    down = model.gradient_fit(x, init=(1.0, 0.0, 2.0), num_steps=150, lr=0.02,
                              objective="minimize_negative_elbo")
    for a, b in zip(up, down, strict=True):
        assert torch.equal(a, b)
    # -ELBO is an upper bound on -log p(x; theta) at every iterate, and the gap closes.
    assert bool((-up.elbo >= -up.log_evidence - 1e-12).all())
    gap = up.log_evidence - up.elbo
    assert float(gap[-1]) < 1e-3 * float(gap[0])
    with pytest.raises(ValueError, match="objective"):
        model.gradient_fit(x, objective="minimise")


def _quadrature_relative_variance(model, x, proposal):
    post = model.posterior(x)
    lo = float(post.loc) - 15 * float(post.scale)
    hi = float(post.loc) + 15 * float(post.scale)
    z = torch.linspace(lo, hi, 200_001, dtype=D)
    integrand = torch.exp(2 * post.log_prob(z) - proposal.log_prob(z))
    return float(torch.trapezoid(integrand, z)) - 1


def test_weight_relative_variance_closed_form_against_quadrature(model_and_data):
    model, x = model_and_data
    post = model.posterior(x)
    proposals = [model.prior, Normal(post.loc + 0.5 * post.scale, 1.5 * post.scale),
                 Normal(post.loc - 0.2, 0.8 * post.scale)]
    for prop in proposals:
        exact = float(model.weight_relative_variance(x, prop))
        assert exact == pytest.approx(_quadrature_relative_variance(model, x, prop), rel=1e-7)
    assert float(model.weight_relative_variance(x, post)) == pytest.approx(0.0, abs=1e-10)
    # Too narrow (sigma^2 <= sigma_post^2 / 2): integral p^2/q diverges.
    assert math.isinf(float(model.weight_relative_variance(x, Normal(post.loc, 0.7 * post.scale))))


def test_importance_evidence_is_unbiased_and_its_error_matches_the_closed_form(model_and_data):
    model, x = model_and_data
    post = model.posterior(x)
    log_p = float(model.log_evidence(x))
    S = 40_000
    for prop in (model.prior, Normal(post.loc + 0.5 * post.scale, 1.5 * post.scale)):
        est = model.importance_evidence(x, prop, S, generator=torch.Generator().manual_seed(9))
        assert isinstance(est, EvidenceEstimate)
        rel_var = float(model.weight_relative_variance(x, prop))
        exact_rel_se = math.sqrt(rel_var / S)
        # p_hat / p(x) is a mean of S iid draws with mean 1 and sd sqrt(rel_var).
        assert_mc_close(math.exp(float(est.log_evidence) - log_p), 1.0, exact_rel_se)
        assert float(est.relative_stderr) == pytest.approx(exact_rel_se, rel=0.2)
        assert float(est.ess) == pytest.approx(S / (1 + rel_var), rel=0.2)
        assert 1 <= float(est.ess) <= S
        assert float(est.khat) < 0.5  # Gaussian weights here have light tails
    # Batched proposals: one estimate each; the exact posterior gives constant weights.
    batch = Normal(torch.stack([post.loc, post.loc]), torch.stack([post.scale, 2 * post.scale]))
    est = model.importance_evidence(x, batch, 1000, generator=torch.Generator().manual_seed(1))
    assert est.log_evidence.shape == (2,)
    assert float(est.log_evidence[0]) == pytest.approx(log_p, abs=1e-10)
    assert float(est.ess[0]) == pytest.approx(1000.0, rel=1e-10)
    assert float(est.relative_stderr[0]) < 1e-6


def test_the_prior_as_proposal_loses_effective_samples_as_the_data_grow():
    model = ConjugateGaussian(0.0, 2.0, 1.0)
    _, x = model.sample_data(10_000, generator=torch.Generator().manual_seed(0))
    rel = [float(model.weight_relative_variance(x[:n], model.prior)) for n in (1, 10, 100, 1000, 10_000)]
    assert all(b > a for a, b in zip(rel, rel[1:], strict=False))
    # rel_var + 1 = s0 / (s_n sqrt(2 - s_n^2 / s0^2)) * exp((m_n - m0)^2 / (2 s0^2 - s_n^2))
    # >= s0 / (sqrt(2) s_n): it grows at least like sqrt(n).
    s_n = float(model.posterior(x).scale)
    assert rel[-1] >= 2.0 / (math.sqrt(2) * s_n) - 1 - 1e-9


def test_independent_copies_multiply_the_second_moment_of_the_weights():
    # d copies of the model: the d-dim weight is the product of d independent 1-D weights.
    model = ConjugateGaussian(0.0, 2.0, 1.0)
    _, x = model.sample_data(30, generator=torch.Generator().manual_seed(2))
    v = model.weight_relative_variance(x, model.prior)
    d = 3
    v3 = independent_copies_relative_variance(v, d)
    assert float(v3) == pytest.approx((1 + float(v)) ** d - 1, rel=1e-12)
    # Monte Carlo: E[prod_j w_j^2] / (E prod_j w_j)^2 - 1 with independent prior draws per copy.
    log_w = model.importance_log_weights(x, Normal(model.prior.loc.expand(d), model.prior.scale.expand(d)),
                                         400_000, generator=torch.Generator().manual_seed(3))
    w = torch.exp(log_w.sum(-1) - model.log_evidence(x) * d)  # normalised: E[w] = 1
    assert_mc_close(w.pow(2).mean() - 1, v3, w.pow(2).std() / math.sqrt(w.numel()))
    with pytest.raises(ValueError, match="num_copies"):
        independent_copies_relative_variance(v, 0)


def test_bad_arguments_are_named(model_and_data):
    model, x = model_and_data
    with pytest.raises(TypeError, match="proposal must be"):
        model.importance_evidence(x, torch.distributions.Laplace(t(0.0), t(1.0)), 10)
    with pytest.raises(ValueError, match="num_samples"):
        model.importance_evidence(x, model.prior, 1)
    with pytest.raises(ValueError, match="lr"):
        model.gradient_fit(x, lr=-1.0)


def test_sufficient_statistics_stand_in_for_the_data(model_and_data):
    model, x = model_and_data
    st = model.statistics(x)
    assert isinstance(st, NormalStatistics) and st.count == 15
    assert float(st.mean) == pytest.approx(float(x.mean()), rel=1e-15)
    q = Normal(t([0.1, 1.0]), t([0.5, 0.2]))
    z = t([-1.0, 0.4, 2.0])
    for method, args in (("log_evidence", ()), ("log_likelihood", (z,)), ("log_joint", (z,)),
                         ("elbo", (q,)), ("expected_log_likelihood", (q,))):
        torch.testing.assert_close(getattr(model, method)(st, *args), getattr(model, method)(x, *args),
                                   rtol=1e-14, atol=1e-12)
    post = model.posterior(st)
    assert float(post.loc) == pytest.approx(float(model.posterior(x).loc), rel=1e-14)
    # Statistics of an (n, D) array: D independent copies, one per column.
    cols = torch.stack([x, 2 * x - 1], -1)
    st2 = model.statistics(cols)
    ev = model.log_evidence(st2)
    assert ev.shape == (2,)
    assert float(ev[1]) == pytest.approx(float(model.log_evidence(2 * x - 1)), rel=1e-13)
    # E_q[log p(x | z)] by its definition (a sum over the data) against the statistics route.
    direct = (-0.5 * torch.log(2 * math.pi * model.noise_scale**2)
              - ((x - q.loc.unsqueeze(-1)) ** 2 + q.scale.unsqueeze(-1) ** 2)
              / (2 * model.noise_scale**2)).sum(-1)
    torch.testing.assert_close(model.expected_log_likelihood(x, q), direct, rtol=1e-13, atol=1e-11)


def test_no_silent_coercion_and_oversized_requests_are_refused(model_and_data):
    from vitoolkit.exceptions import ResourceLimitError

    model, x = model_and_data
    with pytest.raises(TypeError, match="n must be an integer"):
        model.sample_data(5.0)
    with pytest.raises(TypeError, match="prior_std must be a real number"):
        ConjugateGaussian(0.0, True, 1.0)
    with pytest.raises(TypeError, match="prior_loc must be a real number"):
        ConjugateGaussian("0.5")
    with pytest.raises(TypeError, match="num_samples must be an integer"):
        model.importance_evidence(x, model.prior, 100.0)
    with pytest.raises(ValueError, match="means must have 1 dimension"):
        model.elbo_surface(x, torch.zeros(3, 4), torch.zeros(5))
    with pytest.raises(ValueError, match=r"init must be a sequence"):
        model.gradient_fit(x, init=(0.0, 0.0))
    with pytest.raises(TypeError, match=r"x must hold real numbers"):
        model.log_evidence([True, False])
    with pytest.raises(ResourceLimitError, match="num_samples=1000000000000"):
        model.importance_evidence(x, model.prior, 10**12)
    with pytest.raises(ResourceLimitError, match="num_samples=1000000000000"):
        model.elbo_monte_carlo(x, model.prior, 10**12)
    with pytest.raises(ResourceLimitError, match="num_points=10000000000"):
        model.elbo_quadrature(x, model.prior, num_points=10**10)
    with pytest.raises(ResourceLimitError, match="n=1000000000000"):
        model.sample_data(10**12)


def test_prior_scale_is_the_deprecated_former_name_of_prior_std():
    from vitoolkit.gradients.bbvi import ConjugateGaussianModel

    new = ConjugateGaussian(prior_loc=0.3, prior_std=2.0, noise_scale=1.2)
    with pytest.warns(DeprecationWarning, match="prior_std") as rec:
        old = ConjugateGaussian(prior_loc=0.3, prior_scale=2.0, noise_scale=1.2)
    assert rec[0].filename == __file__
    x = torch.tensor([0.5, 1.0, -0.3], dtype=torch.float64)
    assert float(old.log_evidence(x)) == float(new.log_evidence(x))
    assert float(new.prior_scale) == float(new.prior_std) == 2.0
    with pytest.warns(DeprecationWarning, match="ConjugateGaussianModel"):
        model = ConjugateGaussianModel(torch.zeros(3, 2, dtype=torch.float64), prior_scale=2.0)
    assert model.prior_std == model.prior_scale == 2.0
