"""The shared divergence core against independent routes (quadrature, scipy, Monte Carlo)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from _stats import assert_mc_close
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import (
    Categorical,
    Dirichlet,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    StudentT,
    Wishart,
)

from vitoolkit.distributions import NormalWishart
from vitoolkit.divergences import (
    KHAT_THRESHOLD,
    Estimate,
    UnreliableEstimateWarning,
    alpha_divergence,
    cross_entropy,
    entropy,
    grid_divergence,
    kl_divergence,
    mean_and_stderr,
    monte_carlo_kl,
    renyi_divergence,
)

D = torch.float64


def t(x):
    return torch.as_tensor(x, dtype=D)


def normal(m, s):
    return Normal(t(m), t(s))


def mvn(m, cov):
    return MultivariateNormal(t(m), covariance_matrix=t(cov))


def diag(m, s):
    return Independent(Normal(t(m), t(s)), 1)


COV_A = [[2.0, 0.6], [0.6, 1.0]]
COV_B = [[1.0, -0.3], [-0.3, 0.5]]


# --------------------------------------------------------------------------- KL closed forms
def test_normal_kl_matches_scipy_quadrature():
    p, q = normal(0.3, 1.2), normal(-0.5, 0.7)
    f = lambda x: scipy.stats.norm.pdf(x, 0.3, 1.2) * (  # noqa: E731
        scipy.stats.norm.logpdf(x, 0.3, 1.2) - scipy.stats.norm.logpdf(x, -0.5, 0.7))
    expected, _ = scipy.integrate.quad(f, -30, 30, epsabs=1e-13)
    assert float(kl_divergence(p, q)) == pytest.approx(expected, abs=1e-10)


def test_full_vs_diagonal_gaussian_pairs_match_the_full_route_and_quadrature():
    p = mvn([0.5, -0.2], COV_A)
    q = diag([0.0, 0.3], [1.1, 0.8])
    q_full = mvn([0.0, 0.3], np.diag([1.1**2, 0.8**2]))
    assert float(kl_divergence(p, q)) == pytest.approx(float(kl_divergence(p, q_full)), abs=1e-12)
    assert float(kl_divergence(q, p)) == pytest.approx(float(kl_divergence(q_full, p)), abs=1e-12)
    grid = grid_divergence(p, q, bounds=[(-12, 12), (-12, 12)], num_points=801)
    assert float(kl_divergence(p, q)) == pytest.approx(float(grid), abs=1e-6)


def test_batched_gaussians_broadcast():
    p = MultivariateNormal(torch.zeros(3, 2, dtype=D), covariance_matrix=t(COV_A).expand(3, 2, 2))
    q = diag(torch.zeros(2), torch.ones(2))
    kl = kl_divergence(p, q)
    assert kl.shape == (3,)
    assert torch.allclose(kl, kl[0].expand(3))


def _wishart_logpdf_scipy(df, scale, x):
    return scipy.stats.wishart(df=df, scale=scale).logpdf(x)


def test_wishart_kl_against_monte_carlo_with_scipy_densities():
    df_p, df_q = 5.0, 4.0
    vp, vq = np.array(COV_A), np.array([[1.0, 0.2], [0.2, 0.7]])
    p = Wishart(t(df_p), covariance_matrix=t(vp))
    q = Wishart(t(df_q), covariance_matrix=t(vq))
    exact = float(kl_divergence(p, q))
    # 20,000 draws: 4.5 standard errors is about 0.03 nats, far below a dropped log 2 or log-gamma term.
    draws = scipy.stats.wishart(df=df_p, scale=vp).rvs(size=20_000, random_state=1)
    terms = _wishart_logpdf_scipy(df_p, vp, draws.T) - _wishart_logpdf_scipy(df_q, vq, draws.T)
    assert_mc_close(terms.mean(), exact, terms.std(ddof=1) / math.sqrt(len(terms)))
    # 1x1 Wishart is a Gamma(df/2, rate 1/(2v)): an exact second route.
    p1 = Wishart(t(3.0), covariance_matrix=t([[0.5]]))
    q1 = Wishart(t(6.0), covariance_matrix=t([[0.2]]))
    gp = torch.distributions.Gamma(t(1.5), t(1 / (2 * 0.5)))
    gq = torch.distributions.Gamma(t(3.0), t(1 / (2 * 0.2)))
    assert float(kl_divergence(p1, q1)) == pytest.approx(float(kl_divergence(gp, gq)), abs=1e-12)


def _normal_wishart(m, beta, nu, w):
    return NormalWishart(t(m), beta, nu, scale_matrix=t(w))


def test_normal_wishart_kl_against_monte_carlo_and_chain_rule():
    p = _normal_wishart([0.0, 0.5], 2.0, 5.0, COV_A)
    q = _normal_wishart([1.0, -0.5], 0.7, 3.5, [[1.0, 0.0], [0.0, 2.0]])
    exact = kl_divergence(p, q)
    est = monte_carlo_kl(p, q, 100_000, generator=torch.Generator().manual_seed(3))
    assert_mc_close(est.value, exact, est.stderr)
    # Same mean-precision, same loc: only the Wishart part remains.
    p2 = _normal_wishart([0.0, 0.0], 1.0, 5.0, COV_A)
    q2 = _normal_wishart([0.0, 0.0], 1.0, 3.5, COV_B)
    assert float(kl_divergence(p2, q2)) == pytest.approx(
        float(kl_divergence(p2.wishart, q2.wishart)), abs=1e-12)
    assert float(kl_divergence(p, p)) == pytest.approx(0.0, abs=1e-12)


def test_normal_wishart_log_prob_and_entropy_are_consistent():
    nw = _normal_wishart([0.3, -0.2], 1.5, 4.0, COV_B)
    mean, prec = nw.sample((50_000,))
    assert mean.shape == (50_000, 2) and prec.shape == (50_000, 2, 2)
    terms = -nw.log_prob((mean, prec))
    assert_mc_close(terms.mean(), nw.entropy(), terms.std() / math.sqrt(terms.numel()))
    # E[Lambda] = nu W  (PRML B.80)
    emp = prec.mean(0)
    se = prec.std(0) / math.sqrt(prec.shape[0])
    assert_mc_close(emp, nw.expected_precision, se)
    logdet = torch.linalg.slogdet(prec)[1]
    assert_mc_close(logdet.mean(), nw.expected_log_det_precision,
                    logdet.std() / math.sqrt(logdet.numel()))


def test_dirichlet_kl_via_torch_registry_matches_monte_carlo():
    p = Dirichlet(t([2.0, 3.0, 0.7]))
    q = Dirichlet(t([1.0, 1.0, 1.0]))
    est = monte_carlo_kl(p, q, 100_000, generator=torch.Generator().manual_seed(0))
    assert_mc_close(est.value, kl_divergence(p, q), est.stderr)


def test_unknown_pair_names_both_types_and_points_to_monte_carlo():
    p = StudentT(t(3.0), t(0.0), t(1.0))
    with pytest.raises(NotImplementedError, match=r"StudentT.*Normal.*monte_carlo_kl"):
        kl_divergence(p, normal(0, 1))


def test_kl_rejects_bad_input_with_named_arguments():
    with pytest.raises(TypeError, match="p must be a torch.distributions"):
        kl_divergence("not a distribution", normal(0, 1))
    with pytest.raises(ValueError, match="event_shape"):
        kl_divergence(normal(0, 1), diag([0, 0], [1, 1]))
    with pytest.raises(ValueError, match="do not broadcast"):
        kl_divergence(Normal(torch.zeros(3, dtype=D), 1.0), Normal(torch.zeros(4, dtype=D), 1.0))
    with pytest.raises(ValueError, match="scale"):
        Normal(t(0.0), t(-1.0))
    with pytest.raises(ValueError, match="loc"):
        Normal(t(float("nan")), t(1.0))
    with pytest.raises(ValueError, match="df must exceed"):
        _normal_wishart([0, 0], 1.0, 0.5, COV_A)
    with pytest.raises(ValueError, match="scale_matrix must be symmetric positive definite"):
        _normal_wishart([0, 0], 1.0, 3.0, [[1.0, 2.0], [2.0, 1.0]])


# --------------------------------------------------------------------------- Monte Carlo KL
def _mixture():
    return MixtureSameFamily(Categorical(t([0.3, 0.7])), Normal(t([-2.0, 1.5]), t([0.6, 1.0])))


@pytest.mark.parametrize("estimator", ["log_ratio", "k3"])
def test_monte_carlo_kl_is_unbiased_for_a_mixture_against_quadrature(estimator):
    mix = _mixture()
    # E_p[r^2] = integral q^2 / p is finite iff sigma_q^2 < 2 sigma^2 of p's widest
    # component (1.0 here): q = N(0.5, 1.2^2) gives the k3 terms a finite variance
    # (ratio tail shape 1 - 1/1.2^2 = 0.31 < 1/2), so the standard error is meaningful.
    q = normal(0.5, 1.2)
    exact = grid_divergence(mix, q, bounds=[(-25, 25)], num_points=20001)
    est = monte_carlo_kl(mix, q, 50_000, estimator=estimator,
                         generator=torch.Generator().manual_seed(11))
    assert_mc_close(est.value, exact, est.stderr)
    assert float(est.khat) < 0.5


def test_monte_carlo_kl_k3_warns_when_q_is_too_wide_for_a_finite_variance():
    # q = N(0.5, 2.5^2) against the mixture: r = q/p grows like exp(0.42 x^2) in the tails,
    # integral q^2/p diverges, and the k3 standard error is meaningless (k-hat > 0.7).
    mix, q = _mixture(), normal(0.5, 2.5)
    with pytest.warns(UnreliableEstimateWarning, match="standard error cannot be trusted"):
        est = monte_carlo_kl(mix, q, 50_000, estimator="k3", generator=torch.Generator().manual_seed(11))
    assert float(est.khat) > KHAT_THRESHOLD
    # The log-ratio terms are log r, quadratic in x: finite variance whatever r's tail, no
    # warning (k-hat is the ratio's, the same pair, the same value).
    est2 = monte_carlo_kl(mix, q, 50_000, generator=torch.Generator().manual_seed(11))
    assert float(est2.khat) == float(est.khat)
    assert_mc_close(est2.value, grid_divergence(mix, q, bounds=[(-25, 25)], num_points=20001), est2.stderr)


def test_monte_carlo_kl_is_reproducible_and_leaves_global_state_alone():
    p, q = normal(0, 1), normal(1, 2)
    state = torch.random.get_rng_state()
    a = monte_carlo_kl(p, q, 100, generator=torch.Generator().manual_seed(5))
    b = monte_carlo_kl(p, q, 100, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.value, b.value) and torch.equal(a.stderr, b.stderr)
    assert torch.equal(state, torch.random.get_rng_state())


def test_k3_has_lower_variance_than_log_ratio_when_q_is_close_to_p():
    p, q = normal(0, 1), normal(0.1, 1.05)
    g = torch.Generator().manual_seed(2)
    a = monte_carlo_kl(p, q, 20_000, estimator="log_ratio", generator=g)
    b = monte_carlo_kl(p, q, 20_000, estimator="k3", generator=g)
    assert float(b.stderr) < 0.2 * float(a.stderr)


def test_estimate_is_one_named_tuple_value_stderr_khat():
    est = monte_carlo_kl(normal(0, 1), normal(0.2, 1.1), 1000, generator=torch.Generator().manual_seed(1))
    value, stderr = est  # course material's unpacking stays valid; k-hat is read by name
    khat = est.khat
    assert isinstance(est, Estimate) and isinstance(est, tuple) and len(est) == 3
    assert est._fields == ("value", "stderr", "khat")
    assert torch.equal(value, est.value) and torch.equal(stderr, est.stderr) and torch.equal(khat, est[2])
    assert est[0] is est.value and est[1] is est.stderr
    assert set(est._asdict()) == {"value", "stderr", "khat"}
    import pickle

    again = pickle.loads(pickle.dumps(est))
    assert all(torch.equal(getattr(again, f), getattr(est, f)) for f in ("value", "stderr", "khat"))
    assert est.khat.shape == value.shape and float(est.khat) < 0.5
    assert "khat=" in repr(est)
    # khat is a field: NaN (same shape as value) where not computed, kept by _replace.
    plain = Estimate(t([1.0, 2.0]), t([0.1, 0.2]))
    assert plain.khat.shape == (2,) and bool(plain.khat.isnan().all())
    assert torch.equal(plain._replace(value=t([3.0, 4.0])).khat.isnan(), plain.khat.isnan())
    assert bool(mean_and_stderr(t([1.0, 2.0, 4.0])).khat.isnan())
    both = Estimate.concatenate([plain, Estimate(t([3.0]), t([0.3]), t([0.5]))])
    assert torch.equal(both.value, t([1.0, 2.0, 3.0])) and float(both.khat[2]) == 0.5
    # The importance and evidence summaries are the same type.
    from vitoolkit.conjugate import EvidenceEstimate
    from vitoolkit.divergences import ImportanceEstimate, importance_estimate

    assert ImportanceEstimate is Estimate
    assert isinstance(importance_estimate(t([[0.0], [1.0]]), warn=False), Estimate)
    assert issubclass(EvidenceEstimate, Estimate)
    # Batched pairs: one k-hat per pair; fewer than 25 draws: NaN (no tail to fit), no warning.
    est = monte_carlo_kl(Normal(t([0.0, 0.0]), t([1.0, 1.0])), Normal(t([0.1, 0.5]), t([1.0, 2.0])),
                         2000, generator=torch.Generator().manual_seed(2))
    assert est.khat.shape == (2,)
    est = monte_carlo_kl(normal(0, 1), normal(1, 2), 10, generator=torch.Generator().manual_seed(2))
    assert bool(torch.isnan(est.khat))


def test_monte_carlo_kl_rejects_bad_arguments():
    p, q = normal(0, 1), normal(1, 2)
    for bad in (1, 0, -3):
        with pytest.raises(ValueError, match="num_samples must be an integer >= 2"):
            monte_carlo_kl(p, q, bad)
    for bad in (2.5, 4.0, True, "10"):  # the package rule: a count is an int, never coerced
        with pytest.raises(TypeError, match="num_samples must be an integer >= 2"):
            monte_carlo_kl(p, q, bad)
    assert float(monte_carlo_kl(p, q, np.int64(10), generator=torch.Generator().manual_seed(0)).stderr) > 0
    with pytest.raises(ValueError, match="estimator must be one of"):
        monte_carlo_kl(p, q, 10, estimator="k2")


# --------------------------------------------------------------------------- properties
finite = st.floats(-3, 3)
scales = st.floats(0.2, 3)


@given(m1=finite, s1=scales, m2=finite, s2=scales)
def test_kl_is_nonnegative_and_zero_on_the_diagonal(m1, s1, m2, s2):
    p, q = normal(m1, s1), normal(m2, s2)
    assert float(kl_divergence(p, q)) >= 0
    assert float(kl_divergence(p, p)) == pytest.approx(0.0, abs=1e-12)


@given(m1=finite, s1=scales, m2=finite, s2=scales, rho=st.floats(-0.9, 0.9))
def test_monte_carlo_within_standard_errors_of_closed_form(m1, s1, m2, s2, rho):
    p = mvn([m1, m2], [[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])
    q = diag([m2, m1], [s2, s1])
    est = monte_carlo_kl(p, q, 4000, generator=torch.Generator().manual_seed(7))
    assert_mc_close(est.value, kl_divergence(p, q), est.stderr)


@given(m1=finite, s1=scales, m2=finite, s2=scales)
def test_alpha_divergence_limits_approach_the_two_kls(m1, s1, m2, s2):
    p, q = normal(m1, s1), normal(m2, s2)
    forward, reverse = float(kl_divergence(p, q)), float(kl_divergence(q, p))
    assert float(alpha_divergence(p, q, 1e-7)) == pytest.approx(reverse, rel=1e-4, abs=1e-6)
    assert float(alpha_divergence(p, q, 1 - 1e-7)) == pytest.approx(forward, rel=1e-4, abs=1e-6)
    assert float(alpha_divergence(p, q, 0.0)) == pytest.approx(reverse, abs=1e-12)
    assert float(alpha_divergence(p, q, 1.0)) == pytest.approx(forward, abs=1e-12)
    assert float(renyi_divergence(p, q, 1 - 1e-7)) == pytest.approx(forward, rel=1e-4, abs=1e-6)
    assert float(alpha_divergence(p, q, 0.5)) >= 0


# --------------------------------------------------------------------------- alpha / Renyi
@pytest.mark.parametrize("alpha", [-0.5, 0.25, 0.5, 0.8, 1.5, 2.0])
def test_gaussian_alpha_and_renyi_closed_forms_match_quadrature(alpha):
    p, q = normal(0.4, 1.3), normal(-0.3, 1.1)
    if alpha > 1:  # finiteness needs q wider than p for alpha > 1
        p, q = q, p
    if alpha < 0:
        pass  # p wider than q: finite
    grid_a = grid_divergence(p, q, "alpha", alpha=alpha)
    grid_r = grid_divergence(p, q, "renyi", alpha=alpha)
    assert float(alpha_divergence(p, q, alpha)) == pytest.approx(float(grid_a), abs=1e-9)
    assert float(renyi_divergence(p, q, alpha)) == pytest.approx(float(grid_r), abs=1e-9)


def test_alpha_half_is_twice_the_squared_l2_distance_of_root_densities():
    p, q = normal(0.0, 1.0), normal(1.0, 1.5)

    def f(x):
        return (np.sqrt(scipy.stats.norm.pdf(x, 0, 1)) - np.sqrt(scipy.stats.norm.pdf(x, 1, 1.5)))**2

    expected = 2 * scipy.integrate.quad(f, -30, 30, epsabs=1e-13)[0]
    assert float(alpha_divergence(p, q, 0.5)) == pytest.approx(expected, abs=1e-10)


def test_two_dimensional_alpha_closed_form_matches_grid():
    p, q = mvn([0.2, 0.0], COV_A), mvn([-0.3, 0.4], COV_B)
    for alpha in (0.3, 0.7):
        grid = grid_divergence(p, q, "alpha", alpha=alpha, num_points=701)
        assert float(alpha_divergence(p, q, alpha)) == pytest.approx(float(grid), abs=1e-6)


@pytest.mark.parametrize("sample_from", ["q", "p"])
def test_monte_carlo_alpha_and_renyi_match_closed_form(sample_from):
    p, q = normal(0.0, 1.0), normal(0.5, 1.3)
    g = torch.Generator().manual_seed(4)
    for alpha in (0.3, 0.6):
        est = alpha_divergence(p, q, alpha, method="monte_carlo", num_samples=100_000,
                               generator=g, sample_from=sample_from)
        assert_mc_close(est.value, alpha_divergence(p, q, alpha), est.stderr)
        est_r = renyi_divergence(p, q, alpha, method="monte_carlo", num_samples=100_000,
                                 generator=g, sample_from=sample_from)
        assert_mc_close(est_r.value, renyi_divergence(p, q, alpha), est_r.stderr)


def test_alpha_divergence_of_a_mixture_uses_monte_carlo_and_matches_the_grid():
    mix = MixtureSameFamily(Categorical(t([0.5, 0.5])), Normal(t([-2.0, 2.0]), t([0.7, 0.7])))
    q = normal(0.0, 2.0)
    exact = grid_divergence(mix, q, "alpha", alpha=0.5, bounds=[(-20, 20)], num_points=8001)
    est = alpha_divergence(mix, q, 0.5, num_samples=50_000, generator=torch.Generator().manual_seed(1))
    assert_mc_close(est.value, exact, est.stderr)
    with pytest.raises(ValueError, match="num_samples"):
        alpha_divergence(mix, q, 0.5)


def test_alpha_divergence_rejects_undefined_alpha():
    p, q = normal(0.0, 1.0), normal(0.0, 2.0)
    with pytest.raises(ValueError, match="alpha=3.0 gives an infinite divergence"):
        alpha_divergence(q, p, 3.0)  # alpha > 1 with q narrower than p
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        alpha_divergence(p, q, float("nan"))
    with pytest.raises(TypeError, match="alpha must be a real number"):
        alpha_divergence(p, q, "half")
    with pytest.raises(ValueError, match="method must be one of"):
        alpha_divergence(p, q, 0.5, method="exact")
    with pytest.raises(ValueError, match="alpha is required"):
        grid_divergence(p, q, "alpha")


# --------------------------------------------------------------------------- entropies
def test_entropy_and_cross_entropy_against_monte_carlo_and_formula():
    q, p = mvn([0.1, 0.2], COV_A), mvn([0.0, 0.0], COV_B)
    d = 2
    closed = 0.5 * d * (1 + math.log(2 * math.pi)) + 0.5 * math.log(np.linalg.det(COV_A))
    assert float(entropy(q)) == pytest.approx(closed, abs=1e-12)
    z = q.sample((200_000,))
    terms = -p.log_prob(z)
    assert_mc_close(terms.mean(), cross_entropy(q, p), terms.std() / math.sqrt(terms.numel()))
    with pytest.raises(NotImplementedError, match="no closed-form entropy"):
        entropy(MixtureSameFamily(Categorical(t([0.5, 0.5])), Normal(t([0.0, 1.0]), t([1.0, 1.0]))))


def test_grid_rejects_bad_input():
    p = normal(0, 1)
    with pytest.raises(ValueError, match="num_points"):
        grid_divergence(p, p, num_points=2)
    with pytest.raises(ValueError, match="bounds"):
        grid_divergence(p, p, bounds=[(1.0, -1.0)])
    with pytest.raises(ValueError, match="1-D and 2-D"):
        grid_divergence(diag([0, 0, 0], [1, 1, 1]), diag([0, 0, 0], [1, 1, 1]))


def test_warn_if_unreliable_speaks_of_importance_weights_when_asked():
    from vitoolkit.divergences import warn_if_unreliable
    from vitoolkit.exceptions import UnreliableEstimateWarning

    bad = Estimate(torch.tensor([1.0, -math.inf]), torch.tensor([0.1, math.nan]),
                   torch.tensor([0.9, math.nan]))
    with pytest.warns(UnreliableEstimateWarning) as plain:
        warn_if_unreliable(bad, "plain")
    with pytest.warns(UnreliableEstimateWarning) as weights:
        warn_if_unreliable(bad, "weights", importance=True)
    assert len(plain) == 1 and "p(x, z)/q(z|x)" not in str(plain[0].message)
    assert len(weights) == 2 and "every importance weight zero" in str(weights[0].message)
    assert "p(x, z)/q(z|x)" in str(weights[1].message)
    warn_if_unreliable(Estimate(torch.tensor(1.0), torch.tensor(0.1), torch.tensor(0.2)), "fine",
                       importance=True)  # k-hat 0.2: silent (warnings are errors in the tests)
