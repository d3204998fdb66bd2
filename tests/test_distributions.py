"""vitoolkit.distributions and vitoolkit.conjugate against scipy and exact identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from _stats import assert_mc_close
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Normal

from vitoolkit.conjugate import ConjugateGaussian
from vitoolkit.distributions import (
    MultivariateStudentT,
    expected_log_det_wishart,
    expected_log_dirichlet,
    sample,
)
from vitoolkit.divergences import kl_divergence

D = torch.float64
SIGMA = np.array([[1.5, 0.4], [0.4, 0.8]])


def test_student_t_log_prob_matches_scipy_and_moments_match_samples():
    t = MultivariateStudentT(torch.tensor(5.0, dtype=D), torch.tensor([0.3, -1.0], dtype=D),
                             torch.linalg.cholesky(torch.tensor(SIGMA, dtype=D)))
    x = np.array([[0.0, 0.0], [2.0, -3.0], [10.0, 4.0]])
    expected = scipy.stats.multivariate_t(loc=[0.3, -1.0], shape=SIGMA, df=5.0).logpdf(x)
    np.testing.assert_allclose(t.log_prob(torch.tensor(x, dtype=D)).numpy(), expected, rtol=1e-12)
    draws = sample(t, (200_000,), generator=torch.Generator().manual_seed(0))
    assert_mc_close(draws.mean(0), t.mean, draws.std(0) / math.sqrt(draws.shape[0]))


def test_expected_log_dirichlet_and_wishart_against_monte_carlo():
    conc = torch.tensor([0.5, 2.0, 3.0], dtype=D)
    draws = sample(torch.distributions.Dirichlet(conc), (200_000,),
                   generator=torch.Generator().manual_seed(1)).log()
    assert_mc_close(draws.mean(0), expected_log_dirichlet(conc),
                    draws.std(0) / math.sqrt(draws.shape[0]))
    w = scipy.stats.wishart(df=4.5, scale=SIGMA).rvs(size=200_000, random_state=2)
    logdet = np.linalg.slogdet(w)[1]
    exact = expected_log_det_wishart(torch.tensor(4.5, dtype=D),
                                     torch.linalg.cholesky(torch.tensor(SIGMA, dtype=D)))
    assert_mc_close(logdet.mean(), exact, logdet.std(ddof=1) / math.sqrt(len(logdet)))


def test_sample_with_generator_is_deterministic():
    n = Normal(torch.zeros(3, dtype=D), 1.0)
    a = sample(n, (4,), generator=torch.Generator().manual_seed(9))
    b = sample(n, (4,), generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and a.shape == (4, 3)


# ------------------------------------------------------------------ the conjugate model
@given(m0=st.floats(-2, 2), s0=st.floats(0.3, 3), s=st.floats(0.3, 3),
       qm=st.floats(-3, 3), qs=st.floats(0.05, 3), seed=st.integers(0, 1000))
def test_elbo_plus_kl_equals_log_evidence_for_every_q(m0, s0, s, qm, qs, seed):
    model = ConjugateGaussian(m0, s0, s)
    _, x = model.sample_data(7, generator=torch.Generator().manual_seed(seed))
    q = Normal(torch.tensor(qm, dtype=D), torch.tensor(qs, dtype=D))
    total = model.elbo(x, q) + kl_divergence(q, model.posterior(x))
    assert float(total) == pytest.approx(float(model.log_evidence(x)), abs=1e-9)
    assert float(model.elbo(x, q)) <= float(model.log_evidence(x)) + 1e-12


def test_posterior_and_evidence_against_brute_force_quadrature():
    model = ConjugateGaussian(0.5, 1.5, 0.8)
    x = torch.tensor([0.1, 1.2, -0.4, 0.9], dtype=D)
    z = torch.linspace(-12, 12, 40001, dtype=D)
    joint = model.log_joint(x, z).exp()
    evidence = torch.trapezoid(joint, z)
    assert float(model.log_evidence(x)) == pytest.approx(math.log(float(evidence)), abs=1e-10)
    post = model.posterior(x)
    mean = torch.trapezoid(z * joint, z) / evidence
    var = torch.trapezoid((z - mean) ** 2 * joint, z) / evidence
    assert float(post.loc) == pytest.approx(float(mean), abs=1e-10)
    assert float(post.scale) ** 2 == pytest.approx(float(var), abs=1e-10)


def test_monte_carlo_elbo_matches_closed_form():
    model = ConjugateGaussian(0.0, 2.0, 1.0)
    _, x = model.sample_data(10, generator=torch.Generator().manual_seed(0))
    q = Normal(torch.tensor(0.3, dtype=D), torch.tensor(0.5, dtype=D))
    est = model.elbo_monte_carlo(x, q, 50_000, generator=torch.Generator().manual_seed(1))
    assert_mc_close(est.value, model.elbo(x, q), est.stderr)


def test_conjugate_model_rejects_bad_input():
    with pytest.raises(ValueError, match="prior_std"):
        ConjugateGaussian(0.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="noise_scale"):
        ConjugateGaussian(0.0, 1.0, float("nan"))
    model = ConjugateGaussian()
    with pytest.raises(ValueError, match="x must have shape"):
        model.log_evidence(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="NaN"):
        model.posterior([0.0, float("nan")])
    with pytest.raises(ValueError, match="num_samples"):
        model.elbo_monte_carlo([0.0], model.prior, 1)


def test_reparameterise_is_the_gaussian_sample_and_its_pathwise_derivatives():
    """z = loc + scale * eps: N(loc, scale^2) draws (moments within 4.5 standard errors) whose
    derivatives are dz/dloc = 1 and dz/dscale = eps (Kingma & Welling 2013, section 2.4)."""
    from vitoolkit.distributions import reparameterise

    g = torch.Generator().manual_seed(4)
    loc = torch.tensor([0.5, -2.0], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([1.5, 0.2], dtype=torch.float64, requires_grad=True)
    eps = torch.randn(40_000, 2, generator=g, dtype=torch.float64)
    z = reparameterise(loc, scale, eps)
    n = z.shape[0]
    se_mean = scale.detach() / n**0.5
    assert bool(((z.detach().mean(0) - loc.detach()).abs() <= 4.5 * se_mean).all())
    se_var = scale.detach() ** 2 * (2 / (n - 1)) ** 0.5
    assert bool(((z.detach().var(0) - scale.detach() ** 2).abs() <= 4.5 * se_var).all())
    z[:3].sum().backward()
    torch.testing.assert_close(loc.grad, torch.full((2,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(scale.grad, eps[:3].sum(0))
