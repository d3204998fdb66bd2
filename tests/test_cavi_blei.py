"""UnitVarianceGMM and exact_log_evidence (Blei, Kucukelbir & McAuliffe 2017, section 3)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _stats import assert_mc_close
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning

from vitoolkit.cavi import (
    UnitVarianceGMM,
    assignment_update,
    exact_log_evidence,
    mean_update,
    unit_variance_elbo,
)
from vitoolkit.divergences import mean_and_stderr

X3 = np.array([-1.0, 0.5, 2.0])
M3 = np.array([[-1.0], [1.5]])
S3 = np.array([0.5, 0.25])
SIGMA3 = 2.0


def test_updates_match_hand_computation_on_three_points():
    # phi_ik ~ exp(x_i m_k - (s_k^2 + m_k^2)/2), written out point by point.
    expected_phi = []
    for x in X3:
        a = math.exp(x * -1.0 - (0.5 + 1.0) / 2)
        b = math.exp(x * 1.5 - (0.25 + 2.25) / 2)
        expected_phi.append([a / (a + b), b / (a + b)])
    phi = assignment_update(X3, M3, S3)
    np.testing.assert_allclose(phi, expected_phi, rtol=1e-13)
    # s_k^2 = 1 / (1/sigma^2 + sum_i phi_ik), m_k = s_k^2 sum_i phi_ik x_i.
    for k in range(2):
        n_k = sum(row[k] for row in expected_phi)
        s2 = 1.0 / (1.0 / 4.0 + n_k)
        m = s2 * sum(row[k] * x for row, x in zip(expected_phi, X3, strict=True))
        mk, s2k = mean_update(X3, phi, SIGMA3, component=k)
        assert s2k == pytest.approx(s2, rel=1e-13)
        assert mk[0] == pytest.approx(m, rel=1e-13)
    means, variances = mean_update(X3, phi, SIGMA3)
    assert means.shape == (2, 1) and variances.shape == (2,)


def _elbo_by_parts(X, phi, means, variances, sigma):
    """The ELBO as -KL(q(mu)||p(mu)) (torch's closed form) + expected log-likelihood + H[q(c)]."""
    X = np.atleast_2d(X.T).T
    n, d = X.shape
    K = means.shape[0]
    q = torch.distributions.Normal(torch.tensor(means), torch.tensor(np.sqrt(variances))[:, None])
    p = torch.distributions.Normal(torch.zeros(K, d, dtype=torch.float64), sigma)
    kl = float(torch.distributions.kl_divergence(q, p).sum())
    total = -kl - n * math.log(K)
    for i in range(n):
        for k in range(K):
            ll = multivariate_normal(means[k], np.eye(d)).logpdf(X[i]) - 0.5 * d * variances[k]
            total += phi[i, k] * (ll - math.log(phi[i, k]))
    return total


def test_elbo_equals_sum_of_kl_and_expected_log_likelihood():
    phi = assignment_update(X3, M3, S3)
    value = unit_variance_elbo(X3, phi, M3, S3, SIGMA3)
    assert value == pytest.approx(_elbo_by_parts(X3, phi, M3, S3, SIGMA3), rel=1e-12)


@pytest.mark.parametrize("d", [1, 2])
def test_elbo_matches_monte_carlo_from_samples_of_q(d):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6, d)) * 2
    means = rng.normal(size=(3, d))
    variances = rng.uniform(0.2, 1.0, size=3)
    phi = rng.dirichlet(np.ones(3), size=6)
    sigma = 1.5
    exact = unit_variance_elbo(X, phi, means, variances, sigma)
    # log p(x, c, mu) - log q(c, mu) at draws (c, mu) ~ q
    S = 200_000
    mu = means[None] + np.sqrt(variances)[None, :, None] * rng.normal(size=(S, 3, d))
    u = rng.random(size=(S, 6, 1))
    c = (u > np.cumsum(phi, axis=1)[None]).sum(-1)  # inverse-CDF draw of each c_i
    mu_c = np.take_along_axis(mu, c[:, :, None], axis=1)  # (S, n, d)
    log_p = (-0.5 * np.sum(mu**2, axis=(1, 2)) / sigma**2 - 3 * d * 0.5 * math.log(2 * math.pi
             * sigma**2) - 6 * math.log(3)
             - 0.5 * np.sum((X[None] - mu_c) ** 2, axis=(1, 2)) - 6 * d * 0.5 * math.log(2
             * math.pi))
    log_q = (np.sum(np.log(phi[np.arange(6)[None], c]), axis=1)
             - 0.5 * np.sum((mu - means[None]) ** 2 / variances[None, :, None], axis=(1, 2))
             - 0.5 * d * np.sum(np.log(2 * math.pi * variances)))
    est = mean_and_stderr(torch.from_numpy(log_p - log_q))
    assert_mc_close(est.value, exact, est.stderr)


def _evidence_by_full_covariance(X, K, sigma):
    """logsumexp over assignments of log N(x; 0, I + sigma^2 [c_i == c_j]) per dimension."""
    X = np.atleast_2d(X.T).T
    n, d = X.shape
    terms = []
    for c in itertools.product(range(K), repeat=n):
        c = np.array(c)
        cov = np.eye(n) + sigma**2 * (c[:, None] == c[None, :])
        terms.append(sum(multivariate_normal(np.zeros(n), cov).logpdf(X[:, j])
                         for j in range(d)) - n * math.log(K))
    return logsumexp(terms)


@pytest.mark.parametrize("K, d", [(1, 1), (2, 1), (3, 2)])
def test_exact_log_evidence_against_full_covariance_route(K, d):
    X = np.random.default_rng(K + d).normal(size=(4, d)) * 2
    assert exact_log_evidence(X, K, 1.3, chunk_size=7) == pytest.approx(
        _evidence_by_full_covariance(X, K, 1.3), rel=1e-12)


@pytest.mark.parametrize("d", [1, 3])
def test_one_component_elbo_equals_exact_evidence(d):
    X = np.random.default_rng(d).normal(size=(7, d)) + 1.0
    model = UnitVarianceGMM(1, prior_std=2.5, max_iter=50).fit(X)
    exact = exact_log_evidence(X, 1, 2.5)
    assert model.elbo_history_[-1] == pytest.approx(exact, abs=1e-10)
    assert model.elbo(X) == pytest.approx(exact, abs=1e-10)


@given(n=st.integers(2, 6), K=st.integers(1, 3), d=st.integers(1, 2),
       sigma=st.floats(0.3, 6.0), seed=st.integers(0, 10_000))
def test_elbo_never_exceeds_exact_evidence(n, K, d, sigma, seed):
    X = np.random.default_rng(seed).normal(size=(n, d)) * 3
    K = min(K, n)
    model = UnitVarianceGMM(K, prior_std=sigma, random_state=seed, max_iter=500).fit(X)
    exact = exact_log_evidence(X, K, sigma)
    assert max(model.elbo_history_) <= exact + 1e-9 * abs(exact)
    assert model.elbo(X) <= exact + 1e-9 * abs(exact)


@given(seed=st.integers(0, 10_000), K=st.integers(2, 5), d=st.integers(1, 3))
def test_elbo_rises_at_every_coordinate_step(seed, K, d):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, d)) + rng.normal(scale=4, size=(1, d)) * rng.integers(0, 2, (40, 1))
    model = UnitVarianceGMM(K, prior_std=4.0, random_state=seed, record_steps=True,
                            max_iter=300).fit(X)
    values = np.array([v for _, _, v in model.step_elbo_])
    assert np.all(np.diff(values) >= -1e-10 * np.abs(values[:-1]))
    names = [name for it, name, _ in model.step_elbo_ if it == 1]
    assert names == ["c"] + [f"mu_{k + 1}" for k in range(K)]
    # the per-iteration history is the value after the last factor of each iteration
    last = [v for it, name, v in model.step_elbo_ if name == f"mu_{K}"]
    np.testing.assert_allclose(last, model.elbo_history_, rtol=1e-13)


def test_restarts_keep_the_best_elbo_and_fit_predict_is_consistent():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(m, 1.0, 60) for m in (-8, 0, 7)])
    singles = [UnitVarianceGMM(3, random_state=s).fit(X).elbo_history_[-1] for s in range(5)]
    best = UnitVarianceGMM(3, n_init=5, random_state=0).fit(X)
    assert best.elbo_history_[-1] >= singles[0] - 1e-9
    assert best.converged_ and best.resp_.shape == (180, 3)
    np.testing.assert_array_equal(best.predict(X), np.argmax(best.resp_, axis=1))
    np.testing.assert_allclose(np.sort(best.means_[:, 0]), [-8, 0, 7], atol=0.5)
    assert len(best.means_history_) == best.n_iter_ + 1


def test_not_converging_warns():
    X = np.random.default_rng(1).normal(size=50)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        UnitVarianceGMM(3, max_iter=1, random_state=0).fit(X)


@pytest.mark.parametrize("X, kwargs, match", [
    (np.array([0.0, np.nan, 1.0]), {}, r"X contains 1 NaN or inf"),
    (np.array([0.0, np.inf, 1.0]), {}, r"X contains 1 NaN or inf"),
    (np.zeros(2), {"n_components": 3}, "n_components=3"),
    (np.zeros(5), {"prior_std": 0.0}, "prior_std"),
    (np.zeros(5), {"prior_std": -1.0}, "prior_std"),
    (np.zeros((2, 2, 2)), {}, r"X must have 1 or 2 dimension\(s\), got shape \(2, 2, 2\)"),
    (np.zeros(5), {"n_init": 0}, "n_init"),
])
def test_bad_input_names_the_argument(X, kwargs, match):
    kwargs = {"n_components": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        UnitVarianceGMM(**kwargs).fit(X)


def test_predict_checks_dimensions_and_evidence_refuses_large_problems():
    model = UnitVarianceGMM(2, random_state=0).fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(ValueError, match="X has 3 features, but UnitVarianceGMM is expecting 2"):
        model.predict(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="max_assignments"):
        exact_log_evidence(np.zeros(30), 3, 1.0)
    with pytest.raises(ValueError, match="n_components"):
        exact_log_evidence(np.zeros(3), 0, 1.0)


def test_exact_evidence_refuses_oversized_chunks_before_allocating():
    import tracemalloc

    from vitoolkit.exceptions import ResourceLimitError

    tracemalloc.start()
    with pytest.raises(ResourceLimitError, match="chunk_size=1000000000000 would need"):
        exact_log_evidence(np.zeros(30), 3, 1.0, max_assignments=3**30, chunk_size=10**12)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20
    with pytest.raises(ValueError, match="max_assignments must be an integer <="):
        exact_log_evidence(np.zeros(3), 3, 1.0, max_assignments=2**70)  # K**n past int64


@pytest.mark.parametrize("call, match", [
    (lambda: assignment_update(np.zeros(20), np.zeros((2, 2)), np.ones(2)),
     r"means must have shape \(K, 1\), one row per component with the 1 feature\(s\) of X"),
    (lambda: assignment_update(np.zeros((5, 2)), np.zeros((0, 2)), np.ones(0)),
     "means must have at least one component"),
    (lambda: assignment_update(np.zeros((5, 2)), np.full((2, 2), 1e300), np.ones(2)),
     "means has entries as large as 1e\\+300"),
    (lambda: mean_update(np.zeros(2), np.full((20, 2), 0.5), 1.0),
     r"resp must have one row per sample of X \(2 rows"),
    (lambda: unit_variance_elbo(np.zeros((4, 2)), np.full((4, 2), 0.5), np.zeros((2, 2)),
                                np.array([1.0, -1.0]), 1.0), "mean_variances must be positive"),
])
def test_update_functions_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
