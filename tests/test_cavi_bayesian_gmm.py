"""BayesianGMM (Bishop PRML section 10.2): exact evidence, monotone CAVI, Monte Carlo ELBO,
scikit-learn agreement, the Student-t predictive, and bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _stats import assert_mc_close
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import gammaln, logsumexp, multigammaln
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import BayesianGaussianMixture

from vitoolkit.cavi import BayesianGMM, ELBODecreaseError
from vitoolkit.cavi import _gauss_wishart as gw
from vitoolkit.distributions import sample
from vitoolkit.divergences import evaluate_on_grid, make_grid, mean_and_stderr


def log_marginal_nw(X, m0, beta0, nu0, W0_inv):
    """log p(X) of N(x | mu, Lambda^-1) under a Normal-Wishart prior, Bishop's form of the
    posterior (xbar, S) and Murphy (2007, eq. 266): an independent route to the evidence."""
    n, d = X.shape
    if n == 0:
        return 0.0
    xbar = X.mean(axis=0)
    S = (X - xbar).T @ (X - xbar)
    beta_n, nu_n = beta0 + n, nu0 + n
    diff = (xbar - m0)[:, None]
    Wn_inv = W0_inv + S + beta0 * n / beta_n * (diff @ diff.T)
    return (-0.5 * n * d * math.log(math.pi) + multigammaln(nu_n / 2, d)
            - multigammaln(nu0 / 2, d) + 0.5 * nu0 * np.linalg.slogdet(W0_inv)[1]
            - 0.5 * nu_n * np.linalg.slogdet(Wn_inv)[1] + 0.5 * d * math.log(beta0 / beta_n))


def log_marginal(X, m0, beta0, nu0, cov0, diag):
    if diag:  # independent Normal-Gamma per dimension
        return sum(log_marginal_nw(X[:, [j]], m0[[j]], beta0, nu0, np.array([[cov0[j]]]))
                   for j in range(X.shape[1]))
    return log_marginal_nw(X, m0, beta0, nu0, cov0)


def brute_force_evidence(X, K, alpha0, m0, beta0, nu0, cov0, diag):
    """sum over all K^n assignments of Dirichlet-multinomial p(Z) prod_k p(X_k)."""
    n = X.shape[0]
    terms = []
    for z in itertools.product(range(K), repeat=n):
        z = np.array(z)
        counts = np.bincount(z, minlength=K)
        log_pz = (gammaln(K * alpha0) - gammaln(n + K * alpha0)
                  + np.sum(gammaln(alpha0 + counts) - gammaln(alpha0)))
        terms.append(log_pz + sum(log_marginal(X[z == k], m0, beta0, nu0, cov0, diag)
                                  for k in range(K)))
    return logsumexp(terms)


def blobs(seed, n_per=200, d=2, k=3, scale=6.0, spread=0.7):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=scale, size=(k, d))
    return np.concatenate([c + spread * rng.normal(size=(n_per, d)) for c in centres])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_one_component_elbo_is_the_exact_evidence(covariance_type):
    X = blobs(0, n_per=15, k=2)
    model = BayesianGMM(1, covariance_type=covariance_type, mean_precision_prior=0.5,
                        degrees_of_freedom_prior=3.0).fit(X)
    diag = covariance_type == "diag"
    exact = log_marginal(X, model.mean_prior_, 0.5, 3.0, model.covariance_prior_, diag)
    assert model.lower_bound_ == pytest.approx(exact, rel=1e-12)
    # the K = 1 predictive is the exact posterior predictive p(x, X) / p(X)
    x_new = np.array([[0.3, -1.2], [4.0, 2.0]])
    by_ratio = [log_marginal(np.vstack([X, x[None]]), model.mean_prior_, 0.5, 3.0,
                             model.covariance_prior_, diag) - exact for x in x_new]
    np.testing.assert_allclose(model.score_samples(x_new), by_ratio, rtol=1e-10)


@given(n=st.integers(2, 6), K=st.integers(1, 3), seed=st.integers(0, 10_000),
       alpha0=st.floats(0.05, 3.0), diag=st.booleans())
def test_elbo_never_exceeds_brute_force_evidence(n, K, seed, alpha0, diag):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) * rng.uniform(0.5, 3.0)
    K = min(K, n)
    cov0 = np.array([1.5, 0.7]) if diag else np.array([[1.5, 0.3], [0.3, 0.7]])
    model = BayesianGMM(K, covariance_type="diag" if diag else "full",
                        weight_concentration_prior=alpha0, mean_prior=[0.1, -0.2],
                        degrees_of_freedom_prior=2.5, covariance_prior=cov0,
                        init_params="random", random_state=seed, tol=1e-10, max_iter=300,
                        check_monotonic=True).fit(X)
    exact = brute_force_evidence(X, K, alpha0, np.array([0.1, -0.2]), 1.0, 2.5, cov0, diag)
    assert max(v for _, _, v in model.step_elbo_) <= exact + 1e-9 * abs(exact)


@given(seed=st.integers(0, 10_000), init=st.sampled_from(["kmeans", "random",
       "random_from_data", "k-means++"]), covariance_type=st.sampled_from(["full", "diag"]),
       K=st.integers(2, 6))
def test_elbo_rises_at_every_factor_update(seed, init, covariance_type, K):
    X = blobs(seed % 97, n_per=40, d=2 + seed % 2, k=3)
    model = BayesianGMM(K, covariance_type=covariance_type, init_params=init, random_state=seed,
                        max_iter=60, tol=1e-8, check_monotonic=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    names = [name for it, name, _ in model.step_elbo_ if it == 1]
    assert names == ["q(Z)", "q(pi)", "q(mu,Lambda)"]
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.covariances_))


def test_monotonicity_check_catches_a_wrong_update(monkeypatch):
    def wrong_weights(post, stats, prior):
        post.alpha = prior.alpha + stats.nk[::-1]  # counts given to the wrong components

    rng = np.random.default_rng(1)
    X = np.concatenate([c + rng.normal(size=(m, 2)) for c, m in (((-5, 0), 10), ((5, 0), 90))])
    monkeypatch.setattr(gw, "update_weights", wrong_weights)
    with pytest.raises(ELBODecreaseError, match=r"after updating q\(pi\)"):
        BayesianGMM(2, check_monotonic=True, random_state=0).fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_closed_form_elbo_matches_monte_carlo_from_q(covariance_type):
    X = blobs(4, n_per=6, k=2)
    model = BayesianGMM(3, covariance_type=covariance_type, random_state=0, max_iter=3,
                        tol=0.0)
    with pytest.warns(ConvergenceWarning):
        model.fit(X)
    post, prior = model._post, model._prior
    exact = model.elbo(X)
    Xc = torch.from_numpy(X - model.mean_prior_)
    resp = torch.from_numpy(model.predict_proba(X))
    n, d = X.shape
    K = 3
    S = 20_000
    g = torch.Generator().manual_seed(7)
    q_pi = gw._dirichlet(post.alpha)
    p_pi = gw._dirichlet(prior.alpha)
    q_nw, p_nw = gw.normal_wishart(post, K, d), gw.normal_wishart(prior, K, d)
    pi = sample(q_pi, (S,), generator=g)
    mu, lam = sample(q_nw, (S,), generator=g)
    z = sample(torch.distributions.Categorical(probs=resp), (S,), generator=g)  # (S, n)
    if covariance_type == "diag":  # (S, K, d, 1), (S, K, d, 1, 1) -> per-dimension precisions
        mu, lam = mu[..., 0], lam[..., 0, 0]
        log_prior = p_nw.log_prob((mu[..., None], lam[..., None, None])).sum((-1, -2))
        log_q = q_nw.log_prob((mu[..., None], lam[..., None, None])).sum((-1, -2))
        lam = torch.diag_embed(lam)
    else:
        log_prior = p_nw.log_prob((mu, lam)).sum(-1)
        log_q = q_nw.log_prob((mu, lam)).sum(-1)
    idx = z[..., None].expand(S, n, d)
    mu_z = torch.gather(mu, 1, idx)
    lam_z = lam[torch.arange(S)[:, None], z]  # (S, n, d, d)
    log_lik = torch.distributions.MultivariateNormal(mu_z, precision_matrix=lam_z,
                                                     validate_args=False).log_prob(Xc).sum(-1)
    log_pz = torch.log(torch.gather(pi, 1, z)).sum(-1)
    log_qz = torch.log(torch.gather(resp.expand(S, n, K), 2, z[..., None])[..., 0]).sum(-1)
    terms = (log_lik + log_pz + p_pi.log_prob(pi) + log_prior
             - log_qz - q_pi.log_prob(pi) - log_q)
    est = mean_and_stderr(terms)
    assert_mc_close(est.value, exact, est.stderr)


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_agrees_with_scikit_learn_full(init_params):
    X = blobs(2, n_per=300, k=4)
    kw = dict(weight_concentration_prior=0.1, mean_precision_prior=0.5, tol=1e-6,
              max_iter=500, init_params=init_params, random_state=3)
    ours = BayesianGMM(6, **kw).fit(X)
    ref = BayesianGaussianMixture(n_components=6, reg_covar=0.0,
                                  weight_concentration_prior_type="dirichlet_distribution",
                                  **kw).fit(X)
    np.testing.assert_allclose(ours.weights_, ref.weights_, atol=1e-7)
    np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-6)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, atol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    np.testing.assert_array_equal(ours.fit_predict(X), ours.predict(X))


def test_diag_close_to_scikit_learn():
    # scikit-learn's diag E-step uses the full-Wishart digamma sum; ours a Normal-Gamma per
    # dimension, so the fits agree closely but not to round-off.
    X = blobs(5, n_per=300, k=3)
    kw = dict(covariance_type="diag", tol=1e-6, max_iter=500, random_state=0)
    ours = BayesianGMM(3, **kw).fit(X)
    ref = BayesianGaussianMixture(n_components=3, reg_covar=0.0,
                                  weight_concentration_prior_type="dirichlet_distribution",
                                  **kw).fit(X)
    np.testing.assert_allclose(ours.weights_, ref.weights_, atol=1e-4)
    np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-3)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-2)


@pytest.mark.parametrize("d, covariance_type", [(1, "full"), (2, "full"), (2, "diag")])
def test_predictive_density_integrates_to_one(d, covariance_type):
    X = blobs(6, n_per=25, d=d, k=2, scale=3.0)
    model = BayesianGMM(3, covariance_type=covariance_type, random_state=0, tol=1e-8,
                        max_iter=300).fit(X)
    lo, hi = X.min() - 40, X.max() + 40
    grid = make_grid([(lo, hi)] * d, 6001 if d == 1 else 401)
    log_p = model.score_samples(grid.points.reshape(-1, d).numpy())
    mass = float(grid.integrate(torch.from_numpy(np.exp(log_p)).reshape(grid.shape)))
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_score_samples_against_grid_helper_for_one_student_t():
    # evaluate_on_grid on the same t as a torch distribution: the mixture of one component
    X = blobs(8, n_per=20, d=2, k=1)
    model = BayesianGMM(1).fit(X)
    post = model._post
    df = post.nu + 1 - 2
    tril = np.linalg.cholesky((1 + post.beta) / (df * post.beta) * post.W_inv)
    from vitoolkit.distributions import MultivariateStudentT

    t = MultivariateStudentT(torch.tensor(df[0]), torch.from_numpy(model.means_[0]),
                             torch.from_numpy(tril[0]))
    grid = make_grid([(-5, 5), (-5, 5)], 9)
    np.testing.assert_allclose(model.score_samples(grid.points.reshape(-1, 2).numpy()),
                               evaluate_on_grid(t, grid).reshape(-1).numpy(), rtol=1e-12)


def test_vb_switches_off_unused_components_and_restarts_keep_the_best():
    X = blobs(9, n_per=200, k=3)
    model = BayesianGMM(10, weight_concentration_prior=1e-3, random_state=0, n_init=3,
                        max_iter=500).fit(X)
    assert model.effective_n_components() == 3
    single = BayesianGMM(10, weight_concentration_prior=1e-3, random_state=0,
                         max_iter=500).fit(X)
    assert model.lower_bound_ >= single.lower_bound_ - 1e-9


def test_not_converging_warns_and_parameters_stay_finite_on_duplicates():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 2.0], [1.0, 2.0]]), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        BayesianGMM(2, max_iter=1, covariance_prior=np.eye(2)).fit(X)
    model = BayesianGMM(5, covariance_prior=np.eye(2), init_params="random",
                        random_state=0, max_iter=500).fit(X)
    for value in (model.weights_, model.means_, model.covariances_, model.lower_bound_):
        assert np.all(np.isfinite(value))


@pytest.mark.parametrize("X, kwargs, match", [
    (np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 3.0]]), {}, r"X contains 1 NaN or inf"),
    (np.array([[0.0, 1.0], [np.inf, 1.0], [2.0, 3.0]]), {}, r"X contains 1 NaN or inf"),
    (np.zeros((2, 2)), {"n_components": 3}, "n_components=3"),
    (None, {"covariance_prior": [[1.0, 2.0], [2.0, 1.0]]}, "covariance_prior must be positive"),
    (None, {"covariance_prior": [[1.0, 0.5], [0.0, 1.0]]}, "covariance_prior must be symmetric"),
    (None, {"covariance_prior": np.eye(3)}, r"covariance_prior must have shape \(2, 2\)"),
    (None, {"covariance_prior": [1.0, -1.0], "covariance_type": "diag"}, "covariance_prior"),
    (None, {"weight_concentration_prior": 0.0}, "weight_concentration_prior"),
    (None, {"mean_precision_prior": -1.0}, "mean_precision_prior"),
    (None, {"degrees_of_freedom_prior": 0.5}, "degrees_of_freedom_prior must be > 1"),
    (None, {"mean_prior": [0.0, 0.0, 0.0]}, "mean_prior"),
    (None, {"covariance_type": "tied"}, "covariance_type"),
    (None, {"init_params": "nope"}, "init_params"),
    (None, {"weight_concentration_prior_type": "dirichlet_process"}, "dirichlet_process"),
    (np.ones((5, 2)), {}, r"covariance_prior \(default: covariance of X\)"),
])
def test_bad_input_names_the_argument(X, kwargs, match):
    X = blobs(0, n_per=10) if X is None else X
    with pytest.raises(ValueError, match=match):
        BayesianGMM(**{"n_components": 2, **kwargs}).fit(X)


def test_predict_checks_dimensions():
    model = BayesianGMM(2, random_state=0).fit(blobs(0, n_per=10))
    with pytest.raises(ValueError, match="X has 3 features, but BayesianGMM is expecting 2"):
        model.predict(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="X contains 1 NaN or inf"):
        model.score_samples(np.array([[np.nan, 0.0]]))
    with pytest.raises(NotFittedError, match="not fitted"):
        BayesianGMM(2).predict(np.zeros((3, 2)))
