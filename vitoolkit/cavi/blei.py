r"""CAVI for the unit-variance Gaussian mixture of Blei, Kucukelbir & McAuliffe (2017), section 3.

Model (the d-dimensional generalisation of the paper's running example)::

    mu_k ~ N(0, sigma^2 I_d),  c_i ~ Cat(1/K),  x_i | c_i, mu ~ N(mu_{c_i}, I_d).

Mean-field family (sections 2.3 and 3): q(mu, c) = prod_k N(mu_k; m_k, s_k^2 I_d) prod_i Cat(c_i; phi_i).
"Mean-field" because each factor is updated against the *average* (expected)
effect of all the others, like a particle in the mean field of its neighbours.
The coordinate updates (sections 3.1 and 3.2, Algorithm 2)::

    phi_ik  proportional to  exp{ x_i . m_k - (d s_k^2 + m_k^T m_k) / 2 }
    s_k^2 = 1 / (1 / sigma^2 + sum_i phi_ik)
    m_k   = s_k^2 sum_i phi_ik x_i

and the ELBO in nats with every constant (section 3, E[log p(mu, c, x)] - E[log q]
written out term by term)::

    ELBO = sum_k [ -d/2 log(2 pi sigma^2) - (m_k^T m_k + d s_k^2) / (2 sigma^2) ]      E log p(mu)
           - n log K                                                                E log p(c)
           + sum_ik phi_ik [ -d/2 log 2pi - (x_i^T x_i - 2 x_i.m_k + m_k^T m_k + d s_k^2)/2 ]
           - sum_ik phi_ik log phi_ik                                               H[q(c)]
           + sum_k d/2 [ log(2 pi s_k^2) + 1 ]                                      H[q(mu)]

For tiny problems :func:`exact_log_evidence` sums p(x, c) over all K^n
assignments, each a Gaussian integral in closed form, so the gap
log p(x) - ELBO = KL(q || p(mu, c | x)) can be measured.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.special import logsumexp, xlogy
from sklearn.exceptions import ConvergenceWarning

from ._validation import as_data, check_features, check_int, check_positive, check_random_state

__all__ = [
    "UnitVarianceGMM",
    "assignment_update",
    "mean_update",
    "unit_variance_elbo",
    "exact_log_evidence",
]

_LOG_2PI = math.log(2 * math.pi)


def _log_assignment_scores(X: np.ndarray, means: np.ndarray, mean_variances: np.ndarray):
    d = X.shape[1]
    # section 3.1: the terms of E[log p(x_i | c_i = k, mu)] that depend on k.
    return X @ means.T - 0.5 * (d * mean_variances + np.sum(means**2, axis=1))[None, :]


def assignment_update(X, means, mean_variances) -> np.ndarray:
    r"""The CAVI update of every q(c_i) (Blei et al. 2017, section 3.1, d-dimensional).

    phi_ik proportional to exp{x_i . m_k - (d s_k^2 + m_k^T m_k) / 2}.

    Parameters
    ----------
    X : array-like of shape (n,) or (n, d)
    means : array-like of shape (K, d)
        Variational means m_k.
    mean_variances : array-like of shape (K,)
        Variational variances s_k^2 (q(mu_k) = N(m_k, s_k^2 I)).

    Returns
    -------
    resp : ndarray of shape (n, K), rows summing to one.
    """
    X = as_data(X)
    means, mean_variances = _check_factors(means, mean_variances, X.shape[1])
    scores = _log_assignment_scores(X, means, mean_variances)
    return np.exp(scores - logsumexp(scores, axis=1, keepdims=True))


def mean_update(X, resp, prior_std, component=None):
    r"""The CAVI update of q(mu_k) (Blei et al. 2017, section 3.2).

    s_k^2 = 1 / (1/sigma^2 + sum_i phi_ik),  m_k = s_k^2 sum_i phi_ik x_i.

    Parameters
    ----------
    X : array-like of shape (n,) or (n, d)
    resp : array-like of shape (n, K)
        The assignment factors phi.
    prior_std : float
        sigma, the prior standard deviation of each mean.
    component : int, optional
        Update only this k (returns its (d,) mean and scalar variance);
        by default all components, returning arrays of shape (K, d) and (K,).
    """
    X = as_data(X)
    resp = _check_resp(resp, X.shape[0])
    sigma = check_positive(prior_std, "prior_std")
    if component is not None:
        k = check_int(component, "component", 0)
        if k >= resp.shape[1]:
            raise ValueError(f"component must be < K = {resp.shape[1]}, got {k}")
        resp = resp[:, k : k + 1]
    nk = resp.sum(axis=0)
    variances = 1.0 / (1.0 / sigma**2 + nk)
    means = variances[:, None] * (resp.T @ X)
    if component is not None:
        return means[0], float(variances[0])
    return means, variances


def unit_variance_elbo(X, resp, means, mean_variances, prior_std) -> float:
    """The full ELBO in nats (module docstring; Blei et al. 2017, section 3).

    Parameters
    ----------
    X : array-like of shape (n,) or (n, d)
    resp : array-like of shape (n, K)
    means : array-like of shape (K, d)
    mean_variances : array-like of shape (K,)
    prior_std : float
    """
    X = as_data(X)
    sigma = check_positive(prior_std, "prior_std")
    means, mean_variances = _check_factors(means, mean_variances, X.shape[1])
    resp = _check_resp(resp, X.shape[0], means.shape[0])
    return _elbo(X, resp, means, mean_variances, sigma)


def _elbo(X, resp, means, variances, sigma) -> float:
    n, d = X.shape
    K = means.shape[0]
    sq_m = np.sum(means**2, axis=1)
    log_p_mu = np.sum(-0.5 * d * math.log(2 * math.pi * sigma**2)
                      - (sq_m + d * variances) / (2 * sigma**2))
    log_p_c = -n * math.log(K)
    nk = resp.sum(axis=0)
    cross = np.sum((resp.T @ X) * means)  # sum_ik phi_ik x_i . m_k
    log_lik = (-0.5 * d * _LOG_2PI * n - 0.5 * np.sum(resp.sum(axis=1) * np.sum(X**2, axis=1))
               + cross - 0.5 * np.sum(nk * (sq_m + d * variances)))
    ent_c = -np.sum(xlogy(resp, resp))
    ent_mu = np.sum(0.5 * d * (np.log(2 * math.pi * variances) + 1.0))
    return float(log_p_mu + log_p_c + log_lik + ent_c + ent_mu)


def _check_factors(means, mean_variances, d):
    means = np.asarray(means, dtype=np.float64)
    if means.ndim == 1 and d == 1:
        means = means[:, None]
    if means.ndim != 2 or means.shape[1] != d:
        raise ValueError(f"means must have shape (K, {d}), got {means.shape}")
    variances = np.asarray(mean_variances, dtype=np.float64).reshape(-1)
    if variances.shape != (means.shape[0],):
        raise ValueError(
            f"mean_variances must have shape ({means.shape[0]},), got {variances.shape}"
        )
    if not (np.all(np.isfinite(means)) and np.all(np.isfinite(variances))
            and np.all(variances > 0)):
        raise ValueError("means must be finite and mean_variances finite and positive")
    return means, variances


def _check_resp(resp, n, K=None):
    resp = np.asarray(resp, dtype=np.float64)
    if resp.ndim != 2 or resp.shape[0] != n or (K is not None and resp.shape[1] != K):
        want = f"({n}, {K if K is not None else 'K'})"
        raise ValueError(f"resp must have shape {want}, got {resp.shape}")
    if not (np.all(np.isfinite(resp)) and np.all(resp >= 0)
            and np.allclose(resp.sum(axis=1), 1.0, atol=1e-8)):
        raise ValueError("resp must be finite, non-negative, with rows summing to one")
    return resp


class UnitVarianceGMM:
    r"""Mean-field CAVI for Blei et al.'s (2017, section 3) unit-variance Gaussian mixture.

    Model, family, updates and ELBO are in the module docstring. One iteration
    updates all q(c_i) (they are conditionally independent, so doing them at
    once equals doing them in turn) and then each q(mu_k).

    Parameters
    ----------
    n_components : int
        K, the number of mixture components.
    prior_std : float, default=5.0
        sigma, the prior standard deviation of each component mean.
    max_iter : int, default=200
        Maximum number of CAVI iterations per initialisation.
    tol : float, default=1e-8
        Convergence when abs(ELBO_t - ELBO_{t-1}) <= tol * abs(ELBO_{t-1}) (relative change).
    n_init : int, default=1
        Number of random initialisations; the one with the largest final ELBO is kept.
    random_state : None, int, RandomState or Generator
        Seeds the initialisation (means at K distinct random data points, s_k^2 = 1).
    init_means : array-like of shape (K, d), optional
        Start from these variational means instead (then ``n_init`` must be 1).
    record_steps : bool, default=False
        Also record the ELBO after every coordinate update in ``step_elbo_``.

    Attributes
    ----------
    means_ : ndarray of shape (K, d)
        Variational means m_k.
    mean_variances_ : ndarray of shape (K,)
        Variational variances s_k^2.
    resp_ : ndarray of shape (n, K)
        phi after a final assignment update, so ``fit(X).predict(X)`` equals
        the argmax of ``resp_``.
    elbo_history_ : list of float
        The full ELBO in nats after each iteration of the kept initialisation.
    step_elbo_ : list of (int, str, float)
        With ``record_steps``: (iteration, factor, ELBO) after the update of
        ``"c"`` (all assignments) and of each ``"mu_k"``; iteration 0 is the
        initial state (factor ``"init"``).
    means_history_, mean_variances_history_ : list of ndarray
        The factors q(mu_k) at initialisation and after each iteration.
    n_iter_ : int
    converged_ : bool
    lower_bound_ : float
        The last ELBO of the kept run.
    """

    def __init__(self, n_components, prior_std=5.0, max_iter=200, tol=1e-8, n_init=1,
                 random_state=None, init_means=None, record_steps=False):
        self.n_components = n_components
        self.prior_std = prior_std
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.init_means = init_means
        self.record_steps = record_steps

    def _check_params(self, X):
        K = check_int(self.n_components, "n_components", 1)
        check_positive(self.prior_std, "prior_std")
        check_int(self.max_iter, "max_iter", 1)
        check_int(self.n_init, "n_init", 1)
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0):
            raise ValueError(f"tol must be a non-negative number, got {self.tol!r}")
        if X.shape[0] < K:
            raise ValueError(
                f"X has {X.shape[0]} samples but n_components={K}; "
                "need at least as many samples as components"
            )
        if self.init_means is not None:
            if self.n_init != 1:
                raise ValueError(f"init_means fixes the start, so n_init must be 1, "
                                 f"got {self.n_init}")
            init = np.asarray(self.init_means, dtype=np.float64).reshape(K, -1)
            if init.shape != (K, X.shape[1]) or not np.all(np.isfinite(init)):
                raise ValueError(f"init_means must be finite with shape ({K}, {X.shape[1]}), "
                                 f"got {np.shape(self.init_means)}")

    def fit(self, X, y=None):
        """Run CAVI from ``n_init`` initialisations and keep the best ELBO.

        Parameters
        ----------
        X : array-like of shape (n,) or (n, d)
        y : ignored
        """
        X = as_data(X)
        self._check_params(X)
        rng = check_random_state(self.random_state)
        sigma = float(self.prior_std)
        best = None
        for _ in range(self.n_init):
            run = self._single_run(X, rng, sigma)
            if best is None or run["elbo_history"][-1] > best["elbo_history"][-1]:
                best = run
        self.n_features_in_ = X.shape[1]
        self.means_ = best["means"]
        self.mean_variances_ = best["variances"]
        self.elbo_history_ = best["elbo_history"]
        self.step_elbo_ = best["steps"]
        self.means_history_ = best["means_history"]
        self.mean_variances_history_ = best["variances_history"]
        self.n_iter_ = best["n_iter"]
        self.converged_ = best["converged"]
        self.lower_bound_ = self.elbo_history_[-1]
        # A final assignment update so that fit(X).predict(X) == fit_predict(X).
        self.resp_ = np.exp(self._log_resp(X))
        if not self.converged_:
            warnings.warn(
                f"UnitVarianceGMM did not converge in max_iter={self.max_iter} iterations "
                f"(tol={self.tol}); increase max_iter or tol", ConvergenceWarning, stacklevel=2)
        return self

    def _single_run(self, X, rng, sigma):
        n, d = X.shape
        K = self.n_components
        if self.init_means is not None:
            means = np.asarray(self.init_means, dtype=np.float64).reshape(K, d).copy()
        else:
            means = X[rng.choice(n, size=K, replace=False)].copy()
        variances = np.ones(K)
        resp = np.full((n, K), 1.0 / K)
        history, steps = [], []
        means_hist, var_hist = [means.copy()], [variances.copy()]
        if self.record_steps:
            steps.append((0, "init", _elbo(X, resp, means, variances, sigma)))
        converged = False
        it = 0
        for it in range(1, self.max_iter + 1):
            scores = _log_assignment_scores(X, means, variances)
            resp = np.exp(scores - logsumexp(scores, axis=1, keepdims=True))
            if self.record_steps:
                steps.append((it, "c", _elbo(X, resp, means, variances, sigma)))
                for k in range(K):
                    # q(mu_k) depends on phi only, so the factors can be updated in turn.
                    s2 = 1.0 / (1.0 / sigma**2 + resp[:, k].sum())
                    means[k] = s2 * (resp[:, k] @ X)
                    variances[k] = s2
                    steps.append((it, f"mu_{k + 1}", _elbo(X, resp, means, variances, sigma)))
            else:
                variances = 1.0 / (1.0 / sigma**2 + resp.sum(axis=0))
                means = variances[:, None] * (resp.T @ X)
            means_hist.append(means.copy())
            var_hist.append(variances.copy())
            history.append(_elbo(X, resp, means, variances, sigma))
            if it > 1 and abs(history[-1] - history[-2]) <= self.tol * abs(history[-2]):
                converged = True
                break
        return {"means": means, "variances": variances, "elbo_history": history,
                "steps": steps, "means_history": means_hist, "variances_history": var_hist,
                "n_iter": it, "converged": converged}

    # -- fitted model ----------------------------------------------------
    def _check_fitted(self, X):
        if not hasattr(self, "means_"):
            raise RuntimeError("this UnitVarianceGMM is not fitted yet; call fit(X) first")
        X = as_data(X)
        check_features(X, self.n_features_in_)
        return X

    def _log_resp(self, X):
        scores = _log_assignment_scores(X, self.means_, self.mean_variances_)
        return scores - logsumexp(scores, axis=1, keepdims=True)

    def predict_proba(self, X) -> np.ndarray:
        """phi for new points given the fitted q(mu) (section 3.1); shape (n, K)."""
        X = self._check_fitted(X)
        return np.exp(self._log_resp(X))

    def predict(self, X) -> np.ndarray:
        """The most probable component of each point; shape (n,)."""
        return np.argmax(self.predict_proba(X), axis=1)

    def fit_predict(self, X, y=None) -> np.ndarray:
        """``fit(X)`` then the labels of ``X``."""
        return self.fit(X).predict(X)

    def elbo(self, X) -> float:
        """The full ELBO for data ``X`` (n, d) under the fitted q(mu) and the optimal phi."""
        X = self._check_fitted(X)
        resp = np.exp(self._log_resp(X))
        return _elbo(X, resp, self.means_, self.mean_variances_, float(self.prior_std))


def exact_log_evidence(X, n_components, prior_std, *, max_assignments=2**20,
                       chunk_size=2**14) -> float:
    r"""log p(x) of the unit-variance mixture by enumerating all K^n assignments.

    log p(x) = logsumexp_c [ -n log K + sum_k log N(x_{S_k}; 0, I + sigma^2 1 1^T) ],
    with S_k the points assigned to k and m_k the size of S_k: integrating mu_k out of
    N(mu_k; 0, sigma^2) prod_{i in S_k} N(x_i; mu_k, 1) gives, per dimension,
    a Gaussian with det = 1 + m_k sigma^2 and inverse I - sigma^2 / (1 + m_k sigma^2) 1 1^T
    (matrix determinant lemma and Sherman-Morrison), so

    log N = -m_k/2 log 2pi - 1/2 log(1 + m_k sigma^2)
            - 1/2 [ sum_{i in S_k} x_i^2 - sigma^2 (sum_{i in S_k} x_i)^2 / (1 + m_k sigma^2) ],

    summed over the d independent dimensions. Done in log space, in chunks.

    Parameters
    ----------
    X : array-like of shape (n,) or (n, d)
    n_components : int
    prior_std : float
    max_assignments : int, default=2**20
        Refuse when K^n exceeds this (the cost is K^n n K operations).
    chunk_size : int
        Assignments evaluated at once (bounds memory).
    """
    X = as_data(X)
    K = check_int(n_components, "n_components", 1)
    sigma = check_positive(prior_std, "prior_std")
    limit = check_int(max_assignments, "max_assignments", 1)
    chunk = check_int(chunk_size, "chunk_size", 1)
    n, d = X.shape
    if n * math.log(K) > math.log(limit):
        raise ValueError(
            f"exact_log_evidence enumerates n_components**n = {K}**{n} assignments, more than "
            f"max_assignments={limit}; use fewer points or components, or raise max_assignments"
        )
    total = K**n
    s2 = sigma**2
    sq = np.sum(X**2, axis=1)
    powers = K ** np.arange(n)
    parts = []
    for start in range(0, total, chunk):
        idx = np.arange(start, min(start + chunk, total))
        labels = (idx[:, None] // powers[None, :]) % K  # (A, n) mixed-radix digits
        onehot = (labels[:, :, None] == np.arange(K)).astype(np.float64)  # (A, n, K)
        counts = onehot.sum(axis=1)  # (A, K)
        sums = np.einsum("ank,nd->akd", onehot, X)  # (A, K, d)
        sumsq = onehot.transpose(0, 2, 1) @ sq  # (A, K)
        denom = 1.0 + counts * s2
        log_marg = (-0.5 * counts * d * _LOG_2PI - 0.5 * d * np.log(denom)
                    - 0.5 * (sumsq - s2 * np.sum(sums**2, axis=2) / denom))
        parts.append(logsumexp(log_marg.sum(axis=1)))
    return float(logsumexp(parts) - n * math.log(K))
