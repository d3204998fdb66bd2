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
(:class:`Posterior` caches them). The E-step splits its row blocks over threads (NumPy and
BLAS release the GIL); per-block results are summed in a fixed order, so the result does
not depend on thread timing.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .. import expectations as ex

_LOG_2PI = math.log(2 * math.pi)
CHUNK = 8192  # rows per pass of chunks_of: keeps (chunk, K) blocks in cache, memory bounded
# exp of arguments below about -708 (subnormal results) runs 10-30x slower on x86; arguments are
# floored here first. exp(-700) ~ 1e-304 next to the row maximum's exp(0) = 1: invisible in
# every sum (it changes responsibilities by < 1e-300 relative). The floor is a pass of its own,
# so a Design remembers which of its blocks needed it (a block checks its minimum until then).
_EXP_FLOOR = -700.0


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
        e_log_det = ex.expected_log_det_wishart(self._per_factor(self.nu), log_det_scale=log_det,
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
            c = self._alpha_cache = (self.alpha, ex.expected_log_dirichlet(self.alpha))
        return c[1]


def _chol(a: np.ndarray) -> np.ndarray:
    return np.linalg.cholesky(0.5 * (a + np.swapaxes(a, -1, -2)))


def n_quad_features(d: int, diag: bool) -> int:
    return d if diag else d * (d + 1) // 2


def _feature_rows(Xt: np.ndarray, diag: bool, out: np.ndarray) -> np.ndarray:
    """Write [1, x, quadratic terms] of the columns of ``Xt`` (d, m) into ``out``
    (1 + d + Q, m) and return it."""
    d = Xt.shape[0]
    out[0] = 1.0
    out[1 : 1 + d] = Xt
    if diag:
        np.multiply(Xt, Xt, out=out[1 + d :])
    else:
        row = 1 + d
        for i in range(d):
            np.multiply(Xt[i], Xt[i:], out=out[row : row + d - i])
            row += d - i
    return out


def features(X: np.ndarray, diag: bool) -> np.ndarray:
    """[1, x, quadratic terms] per row, shape (n, 1 + d + Q): one GEMM against them gives
    both the log-responsibilities and the statistics (no loop over components). The
    quadratic terms are x_i x_j for i <= j in row-major upper-triangle order."""
    n, d = X.shape
    out = np.empty((1 + d + n_quad_features(d, diag), n))
    return _feature_rows(X.T, diag, out).T


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
            F = _feature_rows(c.T, diag, buf[:, : c.shape[0]])
            lab = labels[start : start + step]
            for j in range(width):
                raw[:, j] += np.bincount(lab, weights=F[j], minlength=K)
    return Stats(*unpack_stats(raw, d, diag), entropy=0.0, n=Xc.shape[0])


# -- threads ---------------------------------------------------------------
class _Blas:
    """Single-threaded BLAS for the skinny (K, 1 + d + Q) x (., m) products: measured 10x
    faster than OpenBLAS's own threads on a shared 2-core machine, and no slower when idle
    (the E-step runs its own threads over row blocks instead)."""

    controller = None


def _blas_one_thread():
    if _Blas.controller is None:  # scikit-learn's, if it has made one: scanning costs ~0.05 s
        try:
            from sklearn.utils.parallel import _get_threadpool_controller
        except ImportError:  # pragma: no cover - private helper moved
            from threadpoolctl import ThreadpoolController as _get_threadpool_controller
        _Blas.controller = _get_threadpool_controller()
    return _Blas.controller.limit(limits=1, user_api="blas")


def n_threads() -> int:
    """Threads for the E-step: the CPUs this process may run on (``VITOOLKIT_NUM_THREADS``
    overrides)."""
    env = os.environ.get("VITOOLKIT_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


_POOL: list = [None, 0, 0]  # executor, its thread count, the process that made it


def _pool(threads: int) -> ThreadPoolExecutor:
    """One executor per process, remade when the thread count changes or after a fork (a
    forked child has the executor object but not its threads)."""
    pid = os.getpid()
    if _POOL[0] is None or _POOL[1] != threads or _POOL[2] != pid:
        if _POOL[0] is not None and _POOL[2] == pid:
            _POOL[0].shutdown(wait=False)
        _POOL[:] = [ThreadPoolExecutor(threads, thread_name_prefix="vitoolkit-cavi"), threads, pid]
    return _POOL[0]


# -- the E-step --------------------------------------------------------------
def _block_rows(K: int) -> int:
    """Rows per E-step block: the (K, rows) working block stays about 1 MB (fits in L2)."""
    return max(1024, (1 << 17) // max(K, 1) // 1024 * 1024)


class Design:
    """The centred data of a fit cut into row blocks, with each block's feature rows
    (1 + d + Q, m) cached on the first pass when they fit in ``budget_bytes`` (else
    recomputed on every pass).

    Calling it returns itself (the old "generator factory" interface: ``passes()``);
    iterating yields the transposed feature blocks. :func:`accumulate` recognises it and
    splits the blocks over threads.
    """

    def __init__(self, Xc: np.ndarray, diag: bool, rows: int, budget_bytes: int):
        self.Xc, self.diag = Xc, diag
        d = Xc.shape[1]
        self.width = 1 + d + n_quad_features(d, diag)
        self.bounds = [(s, min(s + rows, Xc.shape[0])) for s in range(0, Xc.shape[0], rows)]
        # filled block by block on the first pass (so a fit's initialisation, e.g. k-means,
        # never holds it at the same time); None when over budget
        self.floors = [False] * len(self.bounds)  # see _EXP_FLOOR
        self.shift = [False] * len(self.bounds)  # see _FAST_MIN
        self.cached = [None] * len(self.bounds) if Xc.shape[0] * self.width * 8 <= budget_bytes \
            else None

    def __call__(self):
        return self

    def __iter__(self):
        for i in range(len(self.bounds)):
            yield self.block(i)

    def block(self, i: int, buf: np.ndarray | None = None) -> np.ndarray:
        """Feature rows (1 + d + Q, m) of block ``i`` (cached, or written into ``buf``)."""
        a, b = self.bounds[i]
        if self.cached is not None:
            if self.cached[i] is None:  # each block belongs to one thread: no race
                self.cached[i] = _feature_rows(self.Xc[a:b].T, self.diag,
                                               np.empty((self.width, b - a)))
            return self.cached[i]
        if buf is None:
            buf = np.empty((self.width, b - a))
        return _feature_rows(self.Xc[a:b].T, self.diag, buf[:, : b - a])


def design(Xc: np.ndarray, diag: bool, budget_bytes: int = 2**29, *, K: int = 10) -> Design:
    """The row blocks of a data set held in memory, for repeated :func:`accumulate` passes:
    feature rows computed once per fit when they fit in ``budget_bytes``, else recomputed
    block by block on every pass. ``K`` sets the block size (about 1 MB of (K, rows))."""
    return Design(Xc, diag, _block_rows(K), budget_bytes)


# Unshifted fast path: exp(log rho) directly, skipping the row-max pass and the shift, valid
# when every row's sum lies in [e^-655, 1e300]: no overflow, and the floored terms (<= K e^-700)
# are below 1e-19 of the row's sum. A block outside that range is redone with the row-max shift,
# and a Design remembers it (see _estep_blocks).
_FAST_MIN = math.exp(-655.0)
_FAST_MAX = 1e300


def _estep_blocks(blocks, Ct: np.ndarray, flags=None, ids=()):
    """E-step over an iterable of feature blocks Ft (W, m): returns (sum_n r_n F_n^T as
    (K, W), sum_n log sum_k rho_nk, rows).

    ``flags`` (a Design's) holds per block whether it needs the exp floor (``flags.floors``)
    and whether it needs the row-max shift (``flags.shift``); without ``flags`` every block is
    shifted and floored.
    """
    raw = np.zeros((Ct.shape[0], Ct.shape[1]))
    lse = 0.0
    n = 0
    for j, Ft in enumerate(blocks):
        L = Ct @ Ft  # log rho, (K, m): reductions over K run along contiguous rows
        i = ids[j] if flags is not None else None
        s = None
        if flags is not None and not flags.shift[i]:
            if flags.floors[i] or L.min() < _EXP_FLOOR:
                flags.floors[i] = True
                np.maximum(L, _EXP_FLOOR, out=L)
            np.exp(L, out=L)
            s = L.sum(axis=0)
            if s.min() >= _FAST_MIN and s.max() <= _FAST_MAX:
                shift = 0.0
            else:  # a row far from every component (or overflowing): shift this block
                flags.shift[i] = True
                s = None
                L = Ct @ Ft
        if s is None:
            mx = L.max(axis=0)
            L -= mx
            np.maximum(L, _EXP_FLOOR, out=L)
            np.exp(L, out=L)
            s = L.sum(axis=0)
            shift = float(mx.sum())
        np.reciprocal(s, out=s)
        lse += shift - float(np.log(s).sum())
        raw += L @ (Ft * s).T  # r^T F with r = e / sum e, scaling the narrower F instead of e
        n += Ft.shape[1]
    return raw, lse, n


def accumulate(chunks, post: Posterior, *, precomputed: bool = False) -> Stats:
    """One E-step pass (PRML eq. 10.46-10.49) over centred data chunks (each (m, d)), or over
    their transposed feature chunks (each (1 + d + Q, m)) when ``precomputed``, or over a
    :class:`Design` (from :func:`design`; its blocks are split over threads).

    Returns the statistics of the new responsibilities and H[q(Z)], without ever holding the
    (n, K) responsibilities. The entropy uses log rho = F C (linear in the features)::

        H[q(Z)] = -sum_nk r_nk (log rho_nk - lse_n) = sum_n lse_n - sum_k C_k . (r^T F)_k

    with lse_n = log sum_k rho_nk, so it costs no pass over (n, K) of its own.
    """
    C = log_rho_coefficients(post)
    Ct = np.ascontiguousarray(C.T)
    d = post.m.shape[1]
    with _blas_one_thread():
        if isinstance(chunks, Design):
            raw, lse, n = _estep_design(chunks, Ct)
        else:
            blocks = chunks if precomputed else (features(c, post.diag).T for c in chunks)
            raw, lse, n = _estep_blocks(blocks, Ct)
    entropy = lse - float(np.sum(Ct * raw))
    return Stats(*unpack_stats(raw, d, post.diag), entropy=entropy, n=n)


def _estep_design(des: Design, Ct: np.ndarray):
    nb = len(des.bounds)
    threads = min(n_threads(), nb // 2)  # a thread only pays off with a few blocks each
    parts = max(1, threads)
    cuts = [round(i * nb / parts) for i in range(parts + 1)]

    def part(j):
        a, b = cuts[j], cuts[j + 1]
        rows = des.bounds[a][1] - des.bounds[a][0] if b > a else 0
        buf = None if des.cached is not None else np.empty((des.width, rows))
        return _estep_blocks((des.block(i, buf) for i in range(a, b)), Ct, des, range(a, b))

    if parts == 1:
        results = [part(0)]
    else:
        results = list(_pool(parts).map(part, range(parts)))
    raw = results[0][0]
    lse, n = results[0][1], results[0][2]
    for r in results[1:]:  # fixed order: the sums do not depend on thread timing
        raw = raw + r[0]
        lse += r[1]
        n += r[2]
    return raw, lse, n


def predict_labels(data, post: Posterior) -> np.ndarray:
    """argmax_k r_nk for every row, shape (n,) int64: the argmax of log rho = F C (the
    normaliser is the same for every k), over a :class:`Design` (threaded, no (n, K) array
    beyond one block per thread) or centred data (n, d)."""
    des = data if isinstance(data, Design) else design(data, post.diag, budget_bytes=0,
                                                       K=post.m.shape[0])
    Ct = np.ascontiguousarray(log_rho_coefficients(post).T)
    out = np.empty(des.Xc.shape[0], dtype=np.int64)
    nb = len(des.bounds)
    parts = max(1, min(n_threads(), nb // 2))
    cuts = [round(i * nb / parts) for i in range(parts + 1)]

    def part(j):
        buf = None
        for i in range(cuts[j], cuts[j + 1]):
            a, b = des.bounds[i]
            if des.cached is None and buf is None:
                buf = np.empty((des.width, b - a))
            np.argmax(Ct @ des.block(i, buf), axis=0, out=out[a:b])

    with _blas_one_thread():
        if parts == 1:
            part(0)
        else:
            list(_pool(parts).map(part, range(parts)))
    return out


def chunks_of(Xc: np.ndarray):
    for start in range(0, Xc.shape[0], CHUNK):
        yield Xc[start : start + CHUNK]


def log_resp(Xc: np.ndarray, post: Posterior) -> np.ndarray:
    """log r_nk for every row, shape (n, K)."""
    from scipy.special import logsumexp

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
