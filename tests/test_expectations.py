"""vitoolkit.expectations: one array-API implementation, checked on NumPy and on torch against
independent routes (scipy.stats, torch.distributions, scipy.special, Monte Carlo)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from _stats import assert_mc_close
from torch.distributions import Dirichlet, Wishart, kl_divergence

import vitoolkit.expectations as ex

BACKENDS = ["numpy", "torch"]


def arr(x, backend, dtype=np.float64):
    x = np.asarray(x, dtype=dtype)
    return torch.from_numpy(x.copy()) if backend == "torch" else x


def val(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.5 * np.eye(d))


@pytest.mark.parametrize("backend", BACKENDS)
def test_result_lives_in_the_namespace_of_the_input(backend):
    a = arr([0.5, 1.0, 2.0], backend)
    out = ex.expected_log_dirichlet(a)
    assert type(out) is type(a)
    if backend == "torch":
        out32 = ex.expected_log_dirichlet(torch.tensor([0.5, 1.0], dtype=torch.float32))
        assert out32.dtype == torch.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_functions_match_scipy(backend):
    x = np.array([0.3, 1.0, 2.5, 7.0, 40.0])
    np.testing.assert_allclose(val(ex.digamma(arr(x, backend))), scipy.special.digamma(x),
                               rtol=1e-13)
    np.testing.assert_allclose(val(ex.gammaln(arr(x, backend))), scipy.special.gammaln(x),
                               rtol=1e-13)
    for d in (1, 2, 4):
        xd = x + (d - 1) / 2
        want = np.array([scipy.special.multigammaln(v, d) for v in xd])
        np.testing.assert_allclose(val(ex.multivariate_gammaln(arr(xd, backend), d)), want,
                                   rtol=1e-13)
        # psi_D is the derivative of log Gamma_D: central difference of scipy's multigammaln
        h = 1e-5
        fd = np.array([(scipy.special.multigammaln(v + h, d)
                        - scipy.special.multigammaln(v - h, d)) / (2 * h) for v in xd])
        np.testing.assert_allclose(val(ex.multivariate_digamma(arr(xd, backend), d)), fd,
                                   rtol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dirichlet_log_normalizer_matches_scipy_logpdf(backend):
    alpha = np.array([0.4, 1.5, 3.0, 0.9])
    x = np.array([0.1, 0.2, 0.3, 0.4])
    log_c = val(ex.dirichlet_log_normalizer(arr(alpha, backend)))
    np.testing.assert_allclose(log_c + np.sum((alpha - 1) * np.log(x)),
                               scipy.stats.dirichlet.logpdf(x, alpha), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_expected_log_dirichlet_monte_carlo(backend):
    alpha = np.array([0.3, 2.0, 5.0])
    draws = np.log(np.random.default_rng(0).dirichlet(alpha, size=400_000))
    exact = val(ex.expected_log_dirichlet(arr(alpha, backend)))
    assert_mc_close(draws.mean(0), exact, draws.std(0, ddof=1) / np.sqrt(len(draws)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_kl_dirichlet_matches_torch(backend):
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 4, size=(5, 4)), rng.uniform(0.1, 4, size=(5, 4))
    want = kl_divergence(Dirichlet(torch.from_numpy(a)), Dirichlet(torch.from_numpy(b))).numpy()
    got = val(ex.kl_dirichlet(arr(a, backend), arr(b, backend)))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(val(ex.kl_dirichlet(arr(a, backend), arr(a, backend))), 0,
                               atol=1e-12)


def _wishart_case(d, seed=2):
    rng = np.random.default_rng(seed)
    W = np.stack([spd(rng, d, s) for s in (0.3, 1.0, 4.0)])
    nu = np.array([d - 0.5, d + 1.0, d + 10.0])  # first one: D - 1 < nu < D
    return W, nu


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d", [1, 3])
def test_wishart_entropy_matches_torch_and_scipy(backend, d):
    W, nu = _wishart_case(d)
    log_det = np.linalg.slogdet(W)[1]
    got = val(ex.wishart_entropy(arr(nu, backend), arr(log_det, backend), d))
    with warnings.catch_warnings():  # torch warns that nu < D makes singular *samples* likely
        warnings.filterwarnings("ignore", message="Low df values")
        tw = Wishart(torch.from_numpy(nu), covariance_matrix=torch.from_numpy(W),
                     validate_args=False)
    np.testing.assert_allclose(got, tw.entropy().numpy(), rtol=1e-12)
    sp = [scipy.stats.wishart(df=v, scale=w).entropy() for v, w in zip(nu, W, strict=True)]
    np.testing.assert_allclose(got, sp, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wishart_log_normalizer_matches_scipy_logpdf(backend):
    d = 3
    W, nu = _wishart_case(d)
    lam = spd(np.random.default_rng(3), d)
    log_b = val(ex.wishart_log_normalizer(arr(nu, backend), arr(np.linalg.slogdet(W)[1], backend),
                                          d))
    for i in range(3):
        # log W(Lam | W, nu) = log B + (nu - D - 1)/2 log|Lam| - tr(W^{-1} Lam)/2  (PRML B.78)
        rest = (0.5 * (nu[i] - d - 1) * np.linalg.slogdet(lam)[1]
                - 0.5 * np.trace(np.linalg.solve(W[i], lam)))
        if nu[i] > d - 1:
            np.testing.assert_allclose(log_b[i] + rest,
                                       scipy.stats.wishart.logpdf(lam, df=nu[i], scale=W[i]),
                                       rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_expected_log_det_wishart_monte_carlo_and_both_forms(backend):
    d = 3
    W, nu = _wishart_case(d)
    tril = np.linalg.cholesky(W)
    a = val(ex.expected_log_det_wishart(arr(nu, backend), arr(tril, backend)))
    b = val(ex.expected_log_det_wishart(arr(nu, backend),
                                        log_det_scale=arr(np.linalg.slogdet(W)[1], backend), dim=d))
    np.testing.assert_allclose(a, b, rtol=1e-13)
    rng = np.random.default_rng(4)
    for i in (1, 2):  # nu < D (case 0) draws underflowing chi-squares: log det of -inf
        lam = scipy.stats.wishart(df=nu[i], scale=W[i]).rvs(200_000, random_state=rng)
        logdet = np.linalg.slogdet(lam)[1]
        assert_mc_close(logdet.mean(), a[i], logdet.std(ddof=1) / np.sqrt(len(logdet)))
    with pytest.raises(ValueError, match="exactly one"):
        ex.expected_log_det_wishart(arr(nu, backend))


def _torch_wishart(nu, W):
    return Wishart(torch.tensor(nu, dtype=torch.float64), covariance_matrix=torch.from_numpy(W))


def _wishart_draws(nu, W, S, seed):
    """scipy's Wishart sampler (seeded); the densities below are torch's: two libraries."""
    lam = scipy.stats.wishart(df=nu, scale=W).rvs(S, random_state=np.random.default_rng(seed))
    lam = torch.from_numpy(lam)
    return 0.5 * (lam + lam.mT)


def test_kl_wishart_matches_torch_registry_and_monte_carlo():
    import vitoolkit.divergences  # noqa: F401  (registers Wishart || Wishart)

    d = 2
    rng = np.random.default_rng(5)
    Wp, Wq = spd(rng, d), spd(rng, d, 2.0)
    nu_p, nu_q = 4.5, 3.0
    trace = np.trace(np.linalg.solve(Wq, Wp))
    p, q = _torch_wishart(nu_p, Wp), _torch_wishart(nu_q, Wq)
    ref = float(kl_divergence(p, q))
    lam = _wishart_draws(nu_p, Wp, 100_000, seed=8)
    terms = (p.log_prob(lam) - q.log_prob(lam)).numpy()
    for backend in BACKENDS:
        got = float(val(ex.kl_wishart(arr(nu_p, backend), arr(np.linalg.slogdet(Wp)[1], backend),
                                      nu_q, arr(np.linalg.slogdet(Wq)[1], backend),
                                      arr(trace, backend), d)))
        np.testing.assert_allclose(got, ref, rtol=1e-12)
        assert_mc_close(terms.mean(), got, terms.std(ddof=1) / np.sqrt(len(terms)))


def test_kl_normal_wishart_monte_carlo():
    d = 2
    rng = np.random.default_rng(6)
    Wp, Wq = spd(rng, d), spd(rng, d, 0.5)
    m_p, m_q = np.array([0.5, -1.0]), np.array([0.0, 0.3])
    beta_p, beta_q, nu_p, nu_q = 3.0, 0.7, 5.0, 2.5
    S = 100_000
    lam = _wishart_draws(nu_p, Wp, S, seed=9)
    g = torch.Generator().manual_seed(10)
    normal_p = torch.distributions.MultivariateNormal(
        torch.from_numpy(m_p), precision_matrix=beta_p * lam)
    eps = torch.randn(S, d, generator=g, dtype=torch.float64)
    mu = normal_p.loc + (normal_p.scale_tril @ eps[..., None])[..., 0]
    normal_q = torch.distributions.MultivariateNormal(
        torch.from_numpy(m_q), precision_matrix=beta_q * lam)
    terms = (normal_p.log_prob(mu) + _torch_wishart(nu_p, Wp).log_prob(lam)
             - normal_q.log_prob(mu) - _torch_wishart(nu_q, Wq).log_prob(lam)).numpy()
    diff = m_p - m_q
    for backend in BACKENDS:
        got = float(val(ex.kl_normal_wishart(
            arr(beta_p, backend), arr(nu_p, backend), arr(np.linalg.slogdet(Wp)[1], backend),
            beta_q, nu_q, arr(np.linalg.slogdet(Wq)[1], backend),
            arr(np.trace(np.linalg.solve(Wq, Wp)), backend), arr(diff @ Wp @ diff, backend), d)))
        assert_mc_close(terms.mean(), got, terms.std(ddof=1) / np.sqrt(S))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gaussian_entropy_and_expected_log_density(backend):
    rng = np.random.default_rng(7)
    d = 3
    cov = spd(rng, d)
    got = float(val(ex.gaussian_entropy(arr(np.linalg.slogdet(cov)[1], backend), d)))
    np.testing.assert_allclose(got, scipy.stats.multivariate_normal(np.zeros(d), cov).entropy(),
                               rtol=1e-13)
    # E_{mu, Lambda}[log N(x | mu, Lambda^{-1})] under a Normal-Wishart, by Monte Carlo, against
    # the expected log det (PRML 10.65) and expected Mahalanobis term (10.64)
    W, nu, beta, m, x = spd(rng, d), 6.0, 2.0, np.array([0.3, 0.0, -0.4]), np.array([1.0, 0.5, 0.0])
    e_logdet = ex.expected_log_det_wishart(arr(nu, backend), arr(np.linalg.cholesky(W), backend))
    e_maha = d / beta + nu * (x - m) @ W @ (x - m)
    got = float(val(ex.expected_gaussian_log_density(e_logdet, arr(e_maha, backend), d)))
    S = 200_000
    lam = scipy.stats.wishart(df=nu, scale=W).rvs(S, random_state=rng)
    chol_cov = np.linalg.cholesky(np.linalg.inv(beta * lam))
    mu = m + np.einsum("sij,sj->si", chol_cov, rng.normal(size=(S, d)))
    dev = x - mu
    terms = 0.5 * (np.linalg.slogdet(lam)[1] - d * np.log(2 * np.pi)
                   - np.einsum("si,sij,sj->s", dev, lam, dev))
    assert_mc_close(terms.mean(), got, terms.std(ddof=1) / np.sqrt(S))


def test_torch_gradients_flow_through_the_shared_code():
    # d/dalpha_1 KL(Dir(alpha) || Dir(b)) by autograd against a central difference (float64)
    a = torch.tensor([0.7, 1.3, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    (grad,) = torch.autograd.grad(ex.kl_dirichlet(a, b), a)
    h = 1e-6
    e = np.eye(3)[1] * h
    a0 = a.detach().numpy()
    fd = (ex.kl_dirichlet(a0 + e, b.numpy()) - ex.kl_dirichlet(a0 - e, b.numpy())) / (2 * h)
    np.testing.assert_allclose(grad[1].item(), fd, rtol=1e-7)
    nu = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    (g_nu,) = torch.autograd.grad(ex.wishart_entropy(nu, torch.tensor(0.3, dtype=torch.float64),
                                                     2), nu)
    fd = (ex.wishart_entropy(np.asarray(4.0 + h), np.asarray(0.3), 2)
          - ex.wishart_entropy(np.asarray(4.0 - h), np.asarray(0.3), 2)) / (2 * h)
    np.testing.assert_allclose(g_nu.item(), fd, rtol=1e-7)


def test_unknown_namespace_is_rejected():
    with pytest.raises(TypeError):
        ex.digamma([1.0, 2.0])


def test_python_numbers_alone_are_rejected():
    with pytest.raises(TypeError, match="at least one argument"):
        ex.kl_wishart(4.0, 0.1, 3.0, 0.2, 2.0, 2)
