r"""CAVI for the unit-variance Gaussian mixture of Blei, Kucukelbir & McAuliffe (2017), section 3.

Model (the d-dimensional generalisation of the paper's running example):

.. math::

    \mu_k \sim \mathcal N(0, \sigma^2 I_d), \qquad c_i \sim \mathrm{Cat}(1/K), \qquad
    x_i \mid c_i, \mu \sim \mathcal N(\mu_{c_i}, I_d).

Mean-field family (sections 2.3 and 3):
:math:`q(\mu, c) = \prod_k \mathcal N(\mu_k; m_k, s_k^2 I_d) \prod_i \mathrm{Cat}(c_i; \varphi_i)`.
"Mean-field" because each factor is updated against the *average* (expected)
effect of all the others, like a particle in the mean field of its neighbours.
The coordinate updates (sections 3.1 and 3.2, Algorithm 2):

.. math::

    \varphi_{ik} \propto \exp\Big\{x_i^\top m_k - \frac{d s_k^2 + m_k^\top m_k}{2}\Big\}, \qquad
    s_k^2 = \frac{1}{1/\sigma^2 + \sum_i \varphi_{ik}}, \qquad
    m_k = s_k^2 \sum_i \varphi_{ik} x_i,

and the ELBO in nats with every constant (section 3,
:math:`E_q[\log p(\mu, c, x)] - E_q[\log q(\mu, c)]` written out term by term: the
lines are :math:`E \log p(\mu)`, :math:`E \log p(c)`, :math:`E \log p(x \mid c, \mu)`,
:math:`H[q(c)]` and :math:`H[q(\mu)]`):

.. math::

    \mathrm{ELBO} = {} & \sum_k \Big[-\frac d2 \log(2\pi\sigma^2)
            - \frac{m_k^\top m_k + d s_k^2}{2\sigma^2}\Big] - n \log K \\
        & + \sum_{ik} \varphi_{ik} \Big[-\frac d2 \log 2\pi
            - \frac{x_i^\top x_i - 2 x_i^\top m_k + m_k^\top m_k + d s_k^2}{2}\Big] \\
        & - \sum_{ik} \varphi_{ik} \log \varphi_{ik}
          + \sum_k \frac d2 \big[\log(2\pi s_k^2) + 1\big].

For tiny problems :func:`exact_log_evidence` sums :math:`p(x, c)` over all
:math:`K^n` assignments, each a Gaussian integral in closed form, so the gap
:math:`\log p(x) - \mathrm{ELBO} = \mathrm{KL}(q \,\|\, p(\mu, c \mid x))` can be measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from scipy.special import logsumexp, xlogy

from .. import expectations as ex
from ..validation import (
    as_float_array,
    check_bool,
    check_int,
    check_memory,
    check_positive,
    check_shape,
)
from ._base import SKLEARN_NOTES, MixtureVI, as_matrix, check_scale, record_step

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


def _responsibilities(X, means, mean_variances) -> np.ndarray:
    """phi (n, K) of validated rows (section 3.1): the softmax of the assignment scores."""
    scores = _log_assignment_scores(X, means, mean_variances)
    return np.exp(scores - logsumexp(scores, axis=1, keepdims=True))


def _assignment_labels(X, means, mean_variances) -> np.ndarray:
    """argmax_k phi_ik of validated rows, shape (n,) int64."""
    return np.argmax(_log_assignment_scores(X, means, mean_variances), axis=1)


@dataclass
class _PhiStats:
    """What the updates of q(mu) and the ELBO need from the data and phi: sums over points,
    so a data set's statistics are the sums of its chunks' (:mod:`vitoolkit.cavi.distributed`).
    """

    nk: np.ndarray  # (K,) sum_i phi_ik
    sx: np.ndarray  # (K, d) sum_i phi_ik x_i
    sq: np.ndarray  # (K,) sum_i phi_ik ||x_i||^2
    entropy: float  # H[q(c)] = -sum_ik phi_ik log phi_ik
    n: int


def _phi_stats(X, resp) -> _PhiStats:
    return _PhiStats(resp.sum(axis=0), resp.T @ X, resp.T @ np.sum(X**2, axis=1),
                     float(-np.sum(xlogy(resp, resp))), X.shape[0])


def _assignment_stats(X, means, mean_variances) -> _PhiStats:
    """The assignment update (section 3.1) on rows ``X`` (m, d) and the statistics of its phi:
    one chunk's share of a CAVI iteration (the in-memory fit runs it on all rows)."""
    return _phi_stats(X, _responsibilities(X, means, mean_variances))


def _mean_factors(st: _PhiStats, sigma: float):
    """q(mu_k) from the statistics of phi (section 3.2): s_k^2 = 1 / (1/sigma^2 + N_k),
    m_k = s_k^2 sum_i phi_ik x_i. Returns (means (K, d), variances (K,))."""
    variances = 1.0 / (1.0 / sigma**2 + st.nk)
    return variances[:, None] * st.sx, variances


def assignment_update(X, means, mean_variances) -> np.ndarray:
    r"""The CAVI update of every q(c_i) (Blei et al. 2017, section 3.1, d-dimensional).

    .. math::

        \varphi_{ik} \propto \exp\Big\{x_i^\top m_k - \frac{d s_k^2 + m_k^\top m_k}{2}\Big\},
        \qquad \sum_k \varphi_{ik} = 1.

    Parameters
    ----------
    X : array-like of shape (n,) or (n, d)
    means : array-like of shape (K, d)
        Variational means :math:`m_k`.
    mean_variances : array-like of shape (K,)
        Variational variances :math:`s_k^2` (:math:`q(\mu_k) = \mathcal N(m_k, s_k^2 I)`).

    Returns
    -------
    resp : ndarray of shape (n, K), rows summing to one.
    """
    X = as_matrix(X)
    means, mean_variances = _check_factors(means, mean_variances, X.shape[1])
    return _responsibilities(X, means, mean_variances)


def mean_update(X, resp, prior_std, component=None):
    r"""The CAVI update of q(mu_k) (Blei et al. 2017, section 3.2).

    .. math::

        s_k^2 = \frac{1}{1/\sigma^2 + \sum_i \varphi_{ik}}, \qquad
        m_k = s_k^2 \sum_i \varphi_{ik} x_i.

    Parameters
    ----------
    X : array-like of shape (n,) or (n, d)
    resp : array-like of shape (n, K)
        The assignment factors :math:`\varphi`.
    prior_std : float
        :math:`\sigma`, the prior standard deviation of each mean.
    component : int, optional
        Update only this k (returns its (d,) mean and scalar variance);
        by default all components, returning arrays of shape (K, d) and (K,).
    """
    X = as_matrix(X)
    resp = _check_resp(resp, X.shape[0])
    sigma = _check_prior_std(prior_std)
    if component is not None:
        k = check_int(component, "component", minimum=0)
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
    r"""The full ELBO in nats, every constant kept (Blei et al. 2017, section 3).

    :math:`E_q[\log p(\mu, c, x)] - E_q[\log q(\mu, c)]`, written out term by term in the
    module docstring.

    Parameters
    ----------
    X : array-like of shape (n,) or (n, d)
    resp : array-like of shape (n, K)
    means : array-like of shape (K, d)
    mean_variances : array-like of shape (K,)
    prior_std : float

    Returns
    -------
    float
    """
    X = as_matrix(X)
    sigma = _check_prior_std(prior_std)
    means, mean_variances = _check_factors(means, mean_variances, X.shape[1])
    resp = _check_resp(resp, X.shape[0], means.shape[0])
    return _elbo(X, resp, means, mean_variances, sigma)


def _expected_sq_distances(X, means, variances) -> np.ndarray:
    """E_q ||x_i - mu_k||^2 = ||x_i||^2 - 2 x_i . m_k + ||m_k||^2 + d s_k^2; shape (n, K)."""
    d = X.shape[1]
    return (np.sum(X**2, axis=1)[:, None] - 2.0 * (X @ means.T)
            + (np.sum(means**2, axis=1) + d * variances)[None, :])


def _elbo(X, resp, means, variances, sigma) -> float:
    """The module docstring's ELBO of rows ``X`` with assignment factors ``resp``."""
    return _elbo_from_stats(_phi_stats(X, resp), means, variances, sigma)


def _elbo_from_stats(st: _PhiStats, means, variances, sigma) -> float:
    """The module docstring's ELBO from the statistics of phi, its Gaussian terms from
    :mod:`vitoolkit.expectations`."""
    n, d = st.n, means.shape[1]
    K = means.shape[0]
    s2 = sigma * sigma
    # E log p(mu_k) = E log N(mu_k | 0, sigma^2 I): precision I / sigma^2
    log_p_mu = np.sum(ex.expected_gaussian_log_density(
        -d * math.log(s2), (np.sum(means**2, axis=1) + d * variances) / s2, d))
    log_p_c = -n * math.log(K)
    # sum_i phi_ik E log N(x_i | mu_k, I): affine in E||x_i - mu_k||^2, so N_k times the
    # constant term plus the phi-weighted distances sum_i phi_ik E||x_i - mu_k||^2 =
    # sum_i phi_ik ||x_i||^2 - 2 m_k . sum_i phi_ik x_i + N_k (||m_k||^2 + d s_k^2)
    weighted = st.sq - 2.0 * np.sum(st.sx * means, axis=1) + st.nk * (
        np.sum(means**2, axis=1) + d * variances)
    log_lik = np.sum(st.nk * ex.expected_gaussian_log_density(0.0, 0.0, d) - 0.5 * weighted)
    ent_mu = np.sum(ex.gaussian_entropy(d * np.log(variances), d))  # H[N(m_k, s_k^2 I)]
    return float(log_p_mu + log_p_c + log_lik + st.entropy + ent_mu)


def _check_prior_std(value) -> float:
    """sigma > 0 whose square is a positive finite float64 (the ELBO uses log sigma^2)."""
    sigma = check_positive(value, "prior_std")
    if not 0.0 < sigma * sigma < math.inf:
        raise ValueError(f"prior_std must have a square representable in float64 "
                         f"(about 1e-154 to 1e154), got {value!r}")
    return sigma


def _check_factors(means, mean_variances, d):
    means = as_float_array(means, "means", ndim=(1, 2))
    if means.ndim == 1 and d == 1:  # (K,) means of 1-D data, as a 1-D X is (n, 1)
        means = means[:, None]
    if means.ndim != 2 or means.shape[1] != d:
        raise ValueError(f"means must have shape (K, {d}), one row per component with the "
                         f"{d} feature(s) of X, got {means.shape} (a 1-D X is n samples of "
                         "one feature)")
    if means.shape[0] < 1:
        raise ValueError(f"means must have at least one component (row), got shape {means.shape}")
    check_scale(means, "means")
    variances = as_float_array(mean_variances, "mean_variances", ndim=1)
    check_shape(variances.shape, (means.shape[0],), "mean_variances")
    if not np.all(variances > 0):
        raise ValueError(f"mean_variances must be positive, got {variances}")
    return means, variances


def _check_resp(resp, n, K=None):
    resp = as_float_array(resp, "resp", ndim=2)
    if resp.shape[0] != n:
        raise ValueError(f"resp must have one row per sample of X ({n} rows, X read as shape "
                         f"({n}, d)), got shape {resp.shape}")
    check_shape(resp.shape, (n, K), "resp")
    if not (np.all(resp >= 0) and np.allclose(resp.sum(axis=1), 1.0, atol=1e-8)):
        raise ValueError("resp must be non-negative with rows summing to one")
    return resp


class UnitVarianceGMM(MixtureVI):
    r"""Mean-field CAVI for Blei et al.'s (2017, section 3) unit-variance Gaussian mixture.

    Model, family, updates and ELBO are in the module docstring. One iteration
    updates all q(c_i) (they are conditionally independent, so doing them at
    once equals doing them in turn) and then each q(mu_k).

    Parameters
    ----------
    n_components : int, default=1
        K, the number of mixture components.
    prior_std : float, default=5.0
        sigma, the prior standard deviation of each component mean.
    max_iter : int, default=200
        Maximum number of CAVI iterations per initialisation.
    tol : float, default=1e-8
        Convergence when :math:`\lvert \mathrm{ELBO}_t - \mathrm{ELBO}_{t-1} \rvert
        < \mathrm{tol} \, \lvert \mathrm{ELBO}_{t-1} \rvert` (relative change);
        else a :class:`~vitoolkit.exceptions.ConvergenceWarning`.
    n_init : int, default=1
        Number of random initialisations; the one with the largest final ELBO is kept.
    random_state : None, int, RandomState or Generator
        Seeds the initialisation (means at K distinct random data points, s_k^2 = 1). An int
        seed in [0, 2**32 - 1]; floats, bools and strings are refused.
    init_means : array-like of shape (K, d), optional
        Start from these variational means instead (then ``n_init`` must be 1). Any other
        shape is refused, never reshaped.
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
        the argmax of ``resp_`` (a lazy Dask array, as ``labels_``, when ``X`` was one:
        fitted chunk by chunk, see :mod:`vitoolkit.cavi.distributed`).
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
    labels_ : ndarray (n,) of int64
        The argmax of ``resp_``.
    n_features_in_ : int

    Notes
    -----
    :meth:`score_samples` is the log predictive density with each :math:`q(\mu_k)`
    integrated out, :math:`\log \sum_k \frac1K \mathcal N(x; m_k, (1 + s_k^2) I)`.

    The scikit-learn conventions below are shared by the three mixture estimators
    (``vitoolkit.cavi._base.SKLEARN_NOTES``).
    """

    __doc__ += SKLEARN_NOTES

    def __init__(self, n_components=1, prior_std=5.0, max_iter=200, tol=1e-8, n_init=1,
                 random_state=None, init_means=None, record_steps=False):
        self.n_components = n_components
        self.prior_std = prior_std
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.init_means = init_means
        self.record_steps = record_steps

    _tol_kind = "relative"
    _accepts_dask = True

    # -- the hooks of the shared loop ------------------------------------
    def _check_parameters(self, X):
        self._check_loop_settings(X)
        _check_prior_std(self.prior_std)
        check_bool(self.record_steps, "record_steps")
        if self.record_steps and not isinstance(X, np.ndarray):
            raise ValueError("record_steps=True updates one q(mu_k) at a time from the (n, K) "
                             "assignment factors, which a Dask array's fit never holds; fit a "
                             "NumPy array, or record_steps=False")
        if self.init_means is not None:
            if self.n_init != 1:
                raise ValueError(f"init_means fixes the start, so n_init must be 1, "
                                 f"got {self.n_init}")
            init = as_float_array(self.init_means, "init_means", ndim=2)
            check_shape(init.shape, (self.n_components, X.shape[1]), "init_means")
            check_scale(init, "init_means", n_rows=X.shape[0])

    def _prepare(self, X):
        return SimpleNamespace(sigma=float(self.prior_std))

    def _initialize(self, X, ctx, random_state, steps):
        n, K = X.shape[0], self.n_components
        chunked = not isinstance(X, np.ndarray)  # a DaskData (vitoolkit.cavi.distributed)
        if self.init_means is not None:
            means = as_float_array(self.init_means, "init_means").copy()
        elif chunked:
            from .distributed import distinct_indices

            means = X.rows(distinct_indices(n, K, random_state))
        else:
            means = X[random_state.choice(n, size=K, replace=False)].copy()
        state = SimpleNamespace(means=means, variances=np.ones(K), X=X,
                                resp=None if chunked else np.full((n, K), 1.0 / K))
        state.means_history = [means.copy()]
        state.variances_history = [state.variances.copy()]
        if self.record_steps:
            record_step(steps, 0, "init", self._state_elbo(ctx, state), check=False)
        return state

    @staticmethod
    def _state_elbo(ctx, s) -> float:
        return _elbo(s.X, s.resp, s.means, s.variances, ctx.sigma)

    def _iterate(self, ctx, s, it, steps) -> float:
        X, sigma = s.X, ctx.sigma
        if s.resp is None:  # a Dask array: each chunk's statistics on the workers, summed
            st = X.map_reduce(_assignment_stats, s.means, s.variances)
        else:
            s.resp = _responsibilities(X, s.means, s.variances)
            st = None if self.record_steps else _phi_stats(X, s.resp)
        if self.record_steps:
            record_step(steps, it, "c", self._state_elbo(ctx, s), check=False)
            for k in range(self.n_components):
                # q(mu_k) depends on phi only, so the factors can be updated in turn.
                s2 = 1.0 / (1.0 / sigma**2 + s.resp[:, k].sum())
                s.means[k] = s2 * (s.resp[:, k] @ X)
                s.variances[k] = s2
                record_step(steps, it, f"mu_{k + 1}", self._state_elbo(ctx, s), check=False)
            value = self._state_elbo(ctx, s)
        else:
            s.means, s.variances = _mean_factors(st, sigma)
            value = _elbo_from_stats(st, s.means, s.variances, sigma)
        s.means_history.append(s.means.copy())
        s.variances_history.append(s.variances.copy())
        return value

    def _set_fitted(self, X, ctx, s):
        self.means_ = s.means
        self.mean_variances_ = s.variances
        self.means_history_ = s.means_history
        self.mean_variances_history_ = s.variances_history
        # a final assignment update, so that fit(X).predict(X) equals the argmax of resp_
        if s.resp is None:  # a Dask array: resp_ is a lazy Dask array (n, K)
            self.resp_ = X.map_blocks(_responsibilities, dtype=np.float64,
                                      n_columns=self.n_components, means=s.means,
                                      mean_variances=s.variances)
        else:
            self.resp_ = np.exp(self._log_resp(X))

    def _fit_labels(self, X, ctx) -> np.ndarray:
        if isinstance(X, np.ndarray):
            return self._predict_validated(X)
        return X.map_blocks(_assignment_labels, dtype=np.int64, means=self.means_,
                            mean_variances=self.mean_variances_)

    # -- fitted model ----------------------------------------------------
    def _log_resp(self, X):
        scores = _log_assignment_scores(X, self.means_, self.mean_variances_)
        return scores - logsumexp(scores, axis=1, keepdims=True)

    def predict_proba(self, X) -> np.ndarray:
        """phi for new points given the fitted q(mu) (section 3.1); shape (n, K)."""
        return super().predict_proba(X)

    def _score_samples(self, X) -> np.ndarray:
        # log sum_k 1/K N(x; m_k, (1 + s_k^2) I): the model's predictive with each q(mu_k)
        # integrated out (a Gaussian convolution)
        d = X.shape[1]
        var = 1.0 + self.mean_variances_
        sq = _expected_sq_distances(X, self.means_, np.zeros_like(var))  # ||x - m_k||^2
        log_n = ex.expected_gaussian_log_density(-d * np.log(var)[None, :], sq / var[None, :], d)
        return logsumexp(log_n, axis=1) - math.log(self.n_components)

    def elbo(self, X) -> float:
        """The full ELBO for data ``X`` (n, d) under the fitted q(mu) and the optimal phi."""
        X = self._validated(X)
        resp = np.exp(self._log_resp(X))
        return _elbo(X, resp, self.means_, self.mean_variances_, float(self.prior_std))


def exact_log_evidence(X, n_components, prior_std, *, max_assignments=2**20,
                       chunk_size=2**14) -> float:
    r"""log p(x) of the unit-variance mixture by enumerating all K^n assignments.

    .. math::

        \log p(x) = \operatorname{logsumexp}_c \Big[-n \log K
            + \sum_k \log \mathcal N(x_{S_k}; 0, I + \sigma^2 \mathbf 1 \mathbf 1^\top)\Big],

    with :math:`S_k` the points assigned to k and :math:`m_k = \lvert S_k \rvert`:
    integrating :math:`\mu_k` out of
    :math:`\mathcal N(\mu_k; 0, \sigma^2) \prod_{i \in S_k} \mathcal N(x_i; \mu_k, 1)` gives,
    per dimension, a Gaussian with determinant :math:`1 + m_k \sigma^2` and inverse
    :math:`I - \sigma^2 / (1 + m_k \sigma^2) \, \mathbf 1 \mathbf 1^\top` (matrix
    determinant lemma and Sherman-Morrison), so

    .. math::

        \log \mathcal N = -\frac{m_k}{2} \log 2\pi - \frac12 \log(1 + m_k \sigma^2)
            - \frac12 \Big[\sum_{i \in S_k} x_i^2
            - \frac{\sigma^2 (\sum_{i \in S_k} x_i)^2}{1 + m_k \sigma^2}\Big],

    summed over the d independent dimensions. Done in log space, in chunks.

    Parameters
    ----------
    X : array-like of shape (n,) or (n, d)
    n_components : int
    prior_std : float
    max_assignments : int, default=2**20
        Refuse when K^n exceeds this (the cost is K^n n K operations).
    chunk_size : int, default=2**14
        Assignments evaluated at once (bounds memory, about chunk_size n (8 + 9 K) bytes;
        refused before allocating beyond :func:`vitoolkit.validation.memory_limit`).
    """
    X = as_matrix(X)
    K = check_int(n_components, "n_components", minimum=1)
    sigma = _check_prior_std(prior_std)
    # assignments are numbered in int64: K**n must stay below 2**62
    limit = check_int(max_assignments, "max_assignments", minimum=1, maximum=2**62)
    chunk = check_int(chunk_size, "chunk_size", minimum=1)
    n, d = X.shape
    if n * math.log(K) > math.log(limit):
        raise ValueError(
            f"exact_log_evidence enumerates n_components**n = {K}**{n} assignments, more than "
            f"max_assignments={limit}; use fewer points or components, or raise max_assignments"
        )
    total = K**n
    rows = min(chunk, total)
    # labels (A, n) int64, the one-hot (A, n, K) float64 and its boolean temporary
    check_memory(rows * n * (8 + 9 * K), "chunk_size", chunk,
                 f"the one-hot assignments of {rows} assignments of {n} points")
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
