r"""The conjugate algebra of Bishop's variational Gaussian mixture (PRML section 10.2).

Everything here works on *sufficient statistics*, so one pass over the data
(:func:`accumulate`) feeds the M-step and the whole ELBO, and stochastic VI
can rescale a mini-batch's statistics. Data are centred at the prior mean m_0
(a translation the model is invariant to), so m_0 = 0 in these formulas and
the raw second moments lose little precision.

Statistics of responsibilities r_nk (PRML eq. 10.51-10.53, as raw sums)::

    N_k = sum_n r_nk,  s_k = sum_n r_nk x_n,  S_k = sum_n r_nk x_n x_n^T  (diag: x_n^2)

Updates with m_0 = 0 (eq. 10.58, 10.60-10.63; nu_k = nu_0 + N_k, without the +1 typo)::

    alpha_k = alpha_0 + N_k,  beta_k = beta_0 + N_k,  m_k = s_k / beta_k,
    W_k^{-1} = W_0^{-1} + S_k - beta_k m_k m_k^T,  nu_k = nu_0 + N_k.

(The W_k^{-1} line is eq. 10.62 rewritten: N_k S_k^Bishop + beta_0 N_k / beta_k xbar xbar^T
= S_k - s_k s_k^T / beta_k.) For ``"diag"`` each dimension has its own
Normal-Gamma factor, a 1-D Normal-Wishart, with the same beta_k and nu_k.

The loop is NumPy end to end (no torch, no conversions); the expectations, normalisers and
KLs of the Dirichlet and Normal-Wishart factors come from the array-agnostic core
:mod:`vitoolkit.expectations`, the same code :mod:`vitoolkit.distributions` runs on tensors.
Each factor's inverse, log-determinant and expected precision are computed once per update
(:class:`Posterior` caches them). The E-step's passes over row blocks (features, threads,
the exp kernel) live in :mod:`._estep`; this module builds their coefficients and reads
their statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import expectations as ex
from ._estep import (  # noqa: F401 - chunks_of, n_threads: the fit modules' names for them
    CHUNK,
    Design,
    argmax_design,
    blas_one_thread,
    chunks_of,
    design,
    estep_blocks,
    estep_design,
    feature_rows,
    features,
    n_quad_features,
    n_threads,
)

_LOG_2PI = math.log(2 * math.pi)


@dataclass
class Prior:
    """Hyper-parameters (centred coordinates: the mean prior is 0)."""

    alpha: np.ndarray  # (K,)
    beta: float
    nu: float
    W_inv: np.ndarray  # (d, d) full, (d,) diag
    diag: bool

    _cache: tuple | None = field(default=None, repr=False, compare=False)

    def log_det_W(self) -> np.ndarray:
        """log det W_0 (full: a scalar array; diag: (d,), one per Normal-Gamma factor);
        computed once per ``W_inv`` array."""
        if self._cache is None or self._cache[0] is not self.W_inv:
            value = (-np.log(self.W_inv) if self.diag
                     else np.asarray(-np.linalg.slogdet(self.W_inv)[1]))
            self._cache = (self.W_inv, value)
        return self._cache[1]


@dataclass
class Stats:
    """Sufficient statistics of q(Z) and its entropy H[q(Z)] (nats)."""

    nk: np.ndarray  # (K,)
    sx: np.ndarray  # (K, d)
    sxx: np.ndarray  # (K, d, d) full, (K, d) diag
    entropy: float
    n: int

    def scaled(self, factor: float) -> Stats:
        return Stats(self.nk * factor, self.sx * factor, self.sxx * factor,
                     self.entropy * factor, self.n)


@dataclass
class Posterior:
    """q(pi) = Dir(alpha) and q(mu_k, Lambda_k) = NW(m_k, beta_k, W_k, nu_k).

    Quantities derived from ``W_inv`` and ``nu`` (W_k, log det W_k, E[Lambda_k]) are computed
    once and cached until either attribute is *assigned* a new array (mutating them in place
    would leave the cache stale; every update here assigns).
    """

    alpha: np.ndarray  # (K,)
    beta: np.ndarray  # (K,)
    m: np.ndarray  # (K, d), centred
    W_inv: np.ndarray  # (K, d, d) full, (K, d) diag
    nu: np.ndarray  # (K,)
    diag: bool
    _cache: tuple | None = field(default=None, repr=False, compare=False)
    _alpha_cache: tuple | None = field(default=None, repr=False, compare=False)

    def copy(self) -> Posterior:
        return Posterior(self.alpha.copy(), self.beta.copy(), self.m.copy(),
                         self.W_inv.copy(), self.nu.copy(), self.diag)

    # -- derived quantities ------------------------------------------------
    def _derived(self):
        """(W, log det W, E[Lambda]) for the current W_inv and nu, computed once."""
        c = self._cache
        if c is not None and c[0] is self.W_inv and c[1] is self.nu:
            return c[2]
        if self.diag:
            W = 1.0 / self.W_inv
            log_det = -np.log(self.W_inv)  # (K, d): one 1-D Wishart per dimension
            prec = self.nu[:, None] * W
        else:
            tril = np.linalg.cholesky(self.W_inv)
            log_det = -2.0 * np.sum(np.log(np.diagonal(tril, axis1=1, axis2=2)), axis=1)
            W = np.linalg.inv(self.W_inv)
            W = 0.5 * (W + np.swapaxes(W, 1, 2))
            prec = self.nu[:, None, None] * W
        e_log_det = ex.expected_log_det_wishart_unchecked(self._per_factor(self.nu), log_det_scale=log_det,
                                                dim=1 if self.diag else self.m.shape[1])
        if self.diag:
            e_log_det = e_log_det.sum(axis=1)
        self._cache = (self.W_inv, self.nu, (W, log_det, prec, e_log_det))
        return self._cache[2]

    def scale_matrix(self) -> np.ndarray:
        """W_k: (K, d, d); diag: (K, d)."""
        return self._derived()[0]

    def log_det_W(self) -> np.ndarray:
        """log det W_k: (K,); diag: (K, d), one per Normal-Gamma factor."""
        return self._derived()[1]

    def scale_tril(self) -> np.ndarray:
        """Cholesky factor of W_k: (K, d, d); diag: sqrt(W_kj) as (K, d, 1, 1)."""
        if self.diag:
            return np.sqrt(self.scale_matrix())[..., None, None]
        return _chol(self.scale_matrix())

    def expected_precision(self) -> np.ndarray:
        """E[Lambda_k] = nu_k W_k (PRML B.80): (K, d, d), diag (K, d)."""
        return self._derived()[2]

    def _per_factor(self, v: np.ndarray) -> np.ndarray:
        return np.broadcast_to(v[:, None], self.m.shape) if self.diag else v

    def expected_log_det(self) -> np.ndarray:
        """E[log det Lambda_k] (PRML eq. 10.65), via the shared core; shape (K,)."""
        return self._derived()[3]

    def expected_log_weights(self) -> np.ndarray:
        """E[log pi_k] (PRML eq. 10.66), via the shared core; shape (K,)."""
        c = self._alpha_cache
        if c is None or c[0] is not self.alpha:
            c = self._alpha_cache = (self.alpha, ex.expected_log_dirichlet_unchecked(self.alpha))
        return c[1]


def _chol(a: np.ndarray) -> np.ndarray:
    return np.linalg.cholesky(0.5 * (a + np.swapaxes(a, -1, -2)))


def log_rho_coefficients(post: Posterior) -> np.ndarray:
    r"""Coefficients C (1 + d + Q, K) with features(x) @ C = log rho (PRML eq. 10.46):

    log rho_nk = E[log pi_k] + 1/2 E[log det Lambda_k] - d/2 log 2pi
                 - 1/2 [d / beta_k + nu_k (x_n - m_k)^T W_k (x_n - m_k)]      (eq. 10.64)

    with (x - m)^T A (x - m) = x^T A x - 2 m^T A x + m^T A m, A = nu_k W_k.
    """
    K, d = post.m.shape
    A = post.expected_precision()
    if post.diag:
        Am = A * post.m
        quad = -0.5 * A
    else:
        Am = np.einsum("kij,kj->ki", A, post.m)
        iu, ju = np.triu_indices(d)
        # off-diagonal products appear twice in x^T A x
        quad = -0.5 * A[:, iu, ju] * np.where(iu == ju, 1.0, 2.0)
    mAm = np.sum(Am * post.m, axis=1)
    const = (post.expected_log_weights() + 0.5 * post.expected_log_det()
             - 0.5 * d * _LOG_2PI - 0.5 * d / post.beta - 0.5 * mAm)
    return np.concatenate([const[:, None], Am, quad], axis=1).T


def unpack_stats(raw: np.ndarray, d: int, diag: bool):
    """Split r^T features (K, 1 + d + Q) into N_k, s_k and S_k."""
    nk, sx, quad = raw[:, 0], raw[:, 1 : 1 + d], raw[:, 1 + d :]
    if diag:
        return nk, sx, quad
    K = raw.shape[0]
    iu, ju = np.triu_indices(d)
    sxx = np.zeros((K, d, d))
    sxx[:, iu, ju] = quad
    sxx[:, ju, iu] = quad
    return nk, sx, sxx


def stats_from_resp(Xc: np.ndarray, resp: np.ndarray, diag: bool) -> Stats:
    """Statistics of given responsibilities (initialisation) and their entropy."""
    d = Xc.shape[1]
    raw = np.zeros((resp.shape[1], 1 + d + n_quad_features(d, diag)))
    with blas_one_thread():
        for start in range(0, Xc.shape[0], CHUNK):
            raw += resp[start : start + CHUNK].T @ features(Xc[start : start + CHUNK], diag)
    ent = 0.0
    for start in range(0, resp.shape[0], CHUNK):
        r = resp[start : start + CHUNK]
        with np.errstate(divide="ignore", invalid="ignore"):
            ent -= float(np.sum(np.where(r > 0, r * np.log(r), 0.0)))
    return Stats(*unpack_stats(raw, d, diag), entropy=ent, n=Xc.shape[0])


def stats_from_assignment(Xc: np.ndarray, assignment, diag: bool) -> Stats:
    """Statistics of an initial :class:`~vitoolkit.cavi._init.Assignment`: hard labels are
    summed by ``np.bincount`` chunk by chunk (no (n, K) matrix); dense ones as
    :func:`stats_from_resp`."""
    if assignment.resp is not None:
        return stats_from_resp(Xc, assignment.resp, diag)
    K = assignment.n_components
    d = Xc.shape[1]
    width = 1 + d + n_quad_features(d, diag)
    raw = np.zeros((K, width))
    if assignment.rows is not None:
        F = features(Xc[assignment.rows], diag)
        np.add.at(raw, assignment.labels, F)
    else:
        labels = assignment.labels
        step = min(1 << 16, Xc.shape[0])
        buf = np.empty((width, step))
        for start in range(0, Xc.shape[0], step):
            c = Xc[start : start + step]
            F = feature_rows(c.T, diag, buf[:, : c.shape[0]])
            lab = labels[start : start + step]
            for j in range(width):
                raw[:, j] += np.bincount(lab, weights=F[j], minlength=K)
    return Stats(*unpack_stats(raw, d, diag), entropy=0.0, n=Xc.shape[0])


def accumulate(chunks, post: Posterior, *, precomputed: bool = False) -> Stats:
    """One E-step pass (PRML eq. 10.46-10.49) over a :class:`Design` (from :func:`design`;
    threaded over its blocks, see :mod:`._estep`), or over centred data chunks (each (m, d)),
    or over their transposed feature chunks (each (1 + d + Q, m)) when ``precomputed``.

    Returns the statistics of the new responsibilities and H[q(Z)], without ever holding the
    (n, K) responsibilities. The entropy uses log rho = F C (linear in the features)::

        H[q(Z)] = -sum_nk r_nk (log rho_nk - lse_n) = sum_n lse_n - sum_k C_k . (r^T F)_k

    with lse_n = log sum_k rho_nk, so it costs no pass over (n, K) of its own.
    """
    Ct = np.ascontiguousarray(log_rho_coefficients(post).T)
    if isinstance(chunks, Design):
        raw, lse, n = estep_design(chunks, Ct)
    else:
        blocks = chunks if precomputed else (features(c, post.diag).T for c in chunks)
        raw, lse, n = estep_blocks(blocks, Ct)
    entropy = lse - float(np.sum(Ct * raw))
    return Stats(*unpack_stats(raw, post.m.shape[1], post.diag), entropy=entropy, n=n)


def predict_labels(data, post: Posterior) -> np.ndarray:
    """argmax_k r_nk for every row, shape (n,) int64: the argmax of log rho = F C (the
    normaliser is the same for every k), over a :class:`Design` or centred data (n, d)."""
    des = data if isinstance(data, Design) else design(data, post.diag, budget_bytes=0,
                                                       K=post.m.shape[0])
    return argmax_design(des, np.ascontiguousarray(log_rho_coefficients(post).T))


def log_resp(Xc: np.ndarray, post: Posterior) -> np.ndarray:
    """log r_nk for every row, shape (n, K)."""
    from scipy.special import logsumexp

    C = log_rho_coefficients(post)
    out = np.empty((Xc.shape[0], C.shape[1]))
    with blas_one_thread():
        for start in range(0, Xc.shape[0], CHUNK):
            L = features(Xc[start : start + CHUNK], post.diag) @ C
            out[start : start + CHUNK] = L - logsumexp(L, axis=1, keepdims=True)
    return out


# -- M-step: one function per factor of q ---------------------------------
def update_weights(post: Posterior, stats: Stats, prior: Prior) -> None:
    """q(pi) = Dir(alpha_0 + N_k)  (PRML eq. 10.57-10.58)."""
    post.alpha = prior.alpha + stats.nk


def update_gauss_wishart(post: Posterior, stats: Stats, prior: Prior) -> None:
    """q(mu_k, Lambda_k) = NW(m_k, beta_k, W_k, nu_k)  (PRML eq. 10.59-10.63, module docstring)."""
    post.beta = prior.beta + stats.nk
    post.m = stats.sx / post.beta[:, None]
    post.nu = prior.nu + stats.nk
    if post.diag:
        W_inv = prior.W_inv[None, :] + stats.sxx - post.beta[:, None] * post.m**2
        # round-off guard only: the exact value is >= W_0^{-1} > 0
        post.W_inv = np.maximum(W_inv, prior.W_inv[None, :] * 1e-12)
    else:
        outer = post.beta[:, None, None] * post.m[:, :, None] * post.m[:, None, :]
        W_inv = prior.W_inv[None] + stats.sxx - outer
        post.W_inv = 0.5 * (W_inv + np.swapaxes(W_inv, 1, 2))


def posterior_from_stats(stats: Stats, prior: Prior) -> Posterior:
    K, d = stats.sx.shape
    post = Posterior(np.zeros(K), np.zeros(K), np.zeros((K, d)), np.zeros(0), np.zeros(K),
                     prior.diag)
    update_weights(post, stats, prior)
    update_gauss_wishart(post, stats, prior)
    return post


# -- the ELBO --------------------------------------------------------------
def kl_gauss_wishart(post: Posterior, prior: Prior) -> np.ndarray:
    """KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k)) per component, shape (K,), from the core's
    closed form (:func:`vitoolkit.expectations.kl_normal_wishart`) with m_0 = 0::

        tr(W_0^{-1} W_k) and m_k^T W_k m_k from the cached W_k; diag: one 1-D factor per dim.
    """
    W = post.scale_matrix()
    if post.diag:
        trace = prior.W_inv[None, :] * W
        maha = post.m**2 * W
        kl = ex.kl_normal_wishart(post._per_factor(post.beta), post._per_factor(post.nu),
                                  post.log_det_W(), prior.beta, prior.nu, prior.log_det_W(),
                                  trace, maha, 1)
        return kl.sum(axis=1)
    trace = np.einsum("ij,kji->k", prior.W_inv, W)
    maha = np.einsum("ki,kij,kj->k", post.m, W, post.m)
    return ex.kl_normal_wishart(post.beta, post.nu, post.log_det_W(), prior.beta, prior.nu,
                                prior.log_det_W(), trace, maha, post.m.shape[1])


def elbo(stats: Stats, post: Posterior, prior: Prior) -> float:
    r"""The ELBO in nats, constants kept (PRML eq. 10.70-10.77, regrouped)::

        L = E[log p(X | Z, mu, Lambda)] + E[log p(Z | pi)] + H[q(Z)]
            - KL(q(pi) || p(pi)) - sum_k KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k))

    E[log p(X | ...)] = 1/2 sum_k { N_k (E[log det Lambda_k] - d/beta_k - d log 2pi)
                                    - tr(nu_k W_k C_k) }                   (eq. 10.71)
    with C_k = sum_n r_nk (x_n - m_k)(x_n - m_k)^T; E[log p(Z | pi)] = sum_k N_k E[log pi_k]
    (eq. 10.72); both KLs are closed forms from :mod:`vitoolkit.expectations`.
    """
    K, d = post.m.shape
    A = post.expected_precision()
    nk, sx, m = stats.nk, stats.sx, post.m
    if post.diag:
        C = stats.sxx - 2 * sx * m + nk[:, None] * m**2
        trace = np.sum(A * C, axis=1)
    else:
        C = (stats.sxx - sx[:, :, None] * m[:, None, :] - m[:, :, None] * sx[:, None, :]
             + nk[:, None, None] * m[:, :, None] * m[:, None, :])
        trace = np.einsum("kij,kij->k", A, C)
    log_lik = 0.5 * np.sum(nk * (post.expected_log_det() - d / post.beta - d * _LOG_2PI) - trace)
    log_pz = float(np.sum(nk * post.expected_log_weights()))
    kl_pi = float(ex.kl_dirichlet(post.alpha, prior.alpha))
    kl_nw = float(np.sum(kl_gauss_wishart(post, prior)))
    return float(log_lik + log_pz + stats.entropy - kl_pi - kl_nw)


# -- torch views of the factors (tests and plots; not used by the loop) ---------------
def _dirichlet(alpha):
    import torch

    return torch.distributions.Dirichlet(torch.from_numpy(np.asarray(alpha, dtype=np.float64)),
                                         validate_args=False)


def normal_wishart(post_or_prior, K: int, d: int):
    """The Gauss-Wishart factors as a batched :class:`~vitoolkit.distributions.NormalWishart`
    (diag: batch (K, d), D=1)."""
    import torch

    from ..distributions import NormalWishart

    p = post_or_prior
    if isinstance(p, Prior):
        m = np.zeros((K, d))
        beta = np.full(K, p.beta)
        nu = np.full(K, p.nu)
        W_inv = np.broadcast_to(p.W_inv, (K,) + p.W_inv.shape)
    else:
        m, beta, nu, W_inv = p.m, p.beta, p.nu, p.W_inv
    if p.diag:
        tril = np.sqrt(1.0 / W_inv)[..., None, None]
        return NormalWishart(torch.from_numpy(m[..., None].copy()),
                             torch.from_numpy(np.repeat(beta[:, None], d, axis=1)),
                             torch.from_numpy(np.repeat(nu[:, None], d, axis=1)),
                             scale_tril=torch.from_numpy(tril), validate_args=False)
    tril = _chol(np.linalg.inv(W_inv))
    return NormalWishart(torch.from_numpy(np.ascontiguousarray(m)), torch.from_numpy(beta),
                         torch.from_numpy(nu), scale_tril=torch.from_numpy(tril),
                         validate_args=False)
