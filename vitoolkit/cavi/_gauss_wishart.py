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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import logsumexp

from ..distributions import NormalWishart, expected_log_det_wishart, expected_log_dirichlet

_LOG_2PI = math.log(2 * math.pi)
CHUNK = 8192  # rows per pass: keeps (chunk, K) blocks in cache and memory bounded by it


@dataclass
class Prior:
    """Hyper-parameters (centred coordinates: the mean prior is 0)."""

    alpha: np.ndarray  # (K,)
    beta: float
    nu: float
    W_inv: np.ndarray  # (d, d) full, (d,) diag
    diag: bool


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
    """q(pi) = Dir(alpha) and q(mu_k, Lambda_k) = NW(m_k, beta_k, W_k, nu_k)."""

    alpha: np.ndarray  # (K,)
    beta: np.ndarray  # (K,)
    m: np.ndarray  # (K, d), centred
    W_inv: np.ndarray  # (K, d, d) full, (K, d) diag
    nu: np.ndarray  # (K,)
    diag: bool

    def copy(self) -> Posterior:
        return Posterior(self.alpha.copy(), self.beta.copy(), self.m.copy(),
                         self.W_inv.copy(), self.nu.copy(), self.diag)

    # -- derived quantities ------------------------------------------------
    def scale_tril(self) -> np.ndarray:
        """Cholesky factor of W_k: (K, d, d); diag: sqrt(W_kj) as (K, d, 1, 1)."""
        if self.diag:
            return np.sqrt(1.0 / self.W_inv)[..., None, None]
        return _chol(np.linalg.inv(self.W_inv))

    def expected_precision(self) -> np.ndarray:
        """E[Lambda_k] = nu_k W_k (PRML B.80): (K, d, d), diag (K, d)."""
        if self.diag:
            return self.nu[:, None] / self.W_inv
        return self.nu[:, None, None] * np.linalg.inv(self.W_inv)

    def expected_log_det(self) -> np.ndarray:
        """E[log det Lambda_k] (PRML eq. 10.65), via the shared core; shape (K,)."""
        tril = torch.from_numpy(self.scale_tril())
        if self.diag:
            nu = torch.from_numpy(np.repeat(self.nu[:, None], self.m.shape[1], axis=1))
            return expected_log_det_wishart(nu, tril).sum(-1).numpy()
        return expected_log_det_wishart(torch.from_numpy(self.nu), tril).numpy()

    def expected_log_weights(self) -> np.ndarray:
        """E[log pi_k] (PRML eq. 10.66), via the shared core; shape (K,)."""
        return expected_log_dirichlet(torch.from_numpy(self.alpha)).numpy()


def _chol(a: np.ndarray) -> np.ndarray:
    return np.linalg.cholesky(0.5 * (a + np.swapaxes(a, -1, -2)))


def n_quad_features(d: int, diag: bool) -> int:
    return d if diag else d * (d + 1) // 2


def features(X: np.ndarray, diag: bool) -> np.ndarray:
    """[1, x, quadratic terms] per row, shape (n, 1 + d + Q): one GEMM against them gives
    both the log-responsibilities and the statistics (no loop over components)."""
    n, d = X.shape
    if diag:
        quad = X * X
    else:
        iu, ju = np.triu_indices(d)
        quad = X[:, iu] * X[:, ju]
    return np.concatenate([np.ones((n, 1)), X, quad], axis=1)


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
    with _blas_one_thread():
        for start in range(0, Xc.shape[0], CHUNK):
            raw += resp[start : start + CHUNK].T @ features(Xc[start : start + CHUNK], diag)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -float(np.sum(np.where(resp > 0, resp * np.log(resp), 0.0)))
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
        for start in range(0, Xc.shape[0], CHUNK):
            F = features(Xc[start : start + CHUNK], diag)
            lab = labels[start : start + CHUNK]
            for j in range(width):
                raw[:, j] += np.bincount(lab, weights=F[:, j], minlength=K)
    return Stats(*unpack_stats(raw, d, diag), entropy=0.0, n=Xc.shape[0])


def _blas_one_thread():
    """Single-threaded BLAS for the skinny (chunk, 1 + d + Q) x (., K) products: measured 10x
    faster than OpenBLAS's threads on a shared 2-core machine, and no slower when idle."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_CONTROLLER = None


def design(Xc: np.ndarray, diag: bool, budget_bytes: int = 2**29):
    """The feature chunks of a data set held in memory: computed once per fit when they fit in
    ``budget_bytes``, else recomputed chunk by chunk on every pass (a generator factory)."""
    d = Xc.shape[1]
    width = 1 + d + n_quad_features(d, diag)
    if Xc.shape[0] * width * 8 <= budget_bytes:
        cached = [np.ascontiguousarray(features(c, diag).T) for c in chunks_of(Xc)]
        return lambda: iter(cached)
    return lambda: (features(c, diag).T for c in chunks_of(Xc))


def accumulate(chunks, post: Posterior, *, precomputed: bool = False) -> Stats:
    """One E-step pass (PRML eq. 10.46-10.49) over centred data chunks (each (m, d)), or over
    their transposed feature chunks (each (1 + d + Q, m), from :func:`design`) when
    ``precomputed``.

    Returns the statistics of the new responsibilities and H[q(Z)], without
    ever holding the (n, K) responsibilities.
    """
    C = log_rho_coefficients(post)
    K, d = post.m.shape
    raw = np.zeros((K, C.shape[0]))
    ent = 0.0
    n = 0
    Ct = np.ascontiguousarray(C.T)
    with _blas_one_thread():
        for chunk in chunks:
            # (features, rows) layout: reductions over the K components then run along
            # contiguous rows, which numpy vectorises (a reduction over a short last axis
            # is several times slower).
            Ft = chunk if precomputed else features(chunk, post.diag).T
            L = Ct @ Ft
            L -= L.max(axis=0)
            e = np.exp(L)
            inv = 1.0 / e.sum(axis=0)
            # H[q(z_n)] = -sum_k r_nk log r_nk = log sum_k e_kn - sum_k e_kn L_kn / sum_k e_kn
            ent += float(-np.log(inv).sum() - np.einsum("kn,kn->n", e, L) @ inv)
            # r^T F with r = e / sum e, scaling the narrower F instead of e
            raw += e @ (Ft * inv).T
            n += Ft.shape[1]
    return Stats(*unpack_stats(raw, d, post.diag), entropy=ent, n=n)


def chunks_of(Xc: np.ndarray):
    for start in range(0, Xc.shape[0], CHUNK):
        yield Xc[start : start + CHUNK]


def log_resp(Xc: np.ndarray, post: Posterior) -> np.ndarray:
    """log r_nk for every row, shape (n, K)."""
    C = log_rho_coefficients(post)
    out = np.empty((Xc.shape[0], C.shape[1]))
    with _blas_one_thread():
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
def _dirichlet(alpha):
    return torch.distributions.Dirichlet(torch.from_numpy(np.asarray(alpha, dtype=np.float64)),
                                         validate_args=False)


def normal_wishart(post_or_prior, K: int, d: int) -> NormalWishart:
    """The Gauss-Wishart factors as a batched :class:`NormalWishart` (diag: batch (K, d), D=1)."""
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


def elbo(stats: Stats, post: Posterior, prior: Prior) -> float:
    r"""The ELBO in nats, constants kept (PRML eq. 10.70-10.77, regrouped)::

        L = E[log p(X | Z, mu, Lambda)] + E[log p(Z | pi)] + H[q(Z)]
            - KL(q(pi) || p(pi)) - sum_k KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k))

    E[log p(X | ...)] = 1/2 sum_k { N_k (E[log det Lambda_k] - d/beta_k - d log 2pi)
                                    - tr(nu_k W_k C_k) }                   (eq. 10.71)
    with C_k = sum_n r_nk (x_n - m_k)(x_n - m_k)^T; E[log p(Z | pi)] = sum_k N_k E[log pi_k]
    (eq. 10.72); both KLs are closed forms from :func:`vitoolkit.divergences.kl_divergence`.
    """
    from ..divergences import kl_divergence

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
    kl_pi = float(kl_divergence(_dirichlet(post.alpha), _dirichlet(prior.alpha)))
    kl_nw = float(kl_divergence(normal_wishart(post, K, d), normal_wishart(prior, K, d)).sum())
    return float(log_lik + log_pz + stats.entropy - kl_pi - kl_nw)
