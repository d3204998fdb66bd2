r"""Expectations, normalisers, entropies and KLs of the conjugate-exponential factors
(Dirichlet, Wishart, Normal-Wishart, Gaussian) that mixture ELBOs are built from.

Written once against the Python array API standard (through ``array-api-compat``), so the
same code serves NumPy arrays (the CAVI loop in :mod:`vitoolkit.cavi`) and torch tensors
(:mod:`vitoolkit.distributions`, with autograd). The result has the namespace, dtype and
device of the inputs. digamma and log-gamma are not in the standard; they come from a small
table: ``scipy.special`` for NumPy, ``torch.special`` for torch.

The Wishart functions take the scalars they depend on (log det W, and for the KL
tr(W_q^{-1} W_p)) rather than matrices, so each caller computes them with its own
linear algebra (NumPy keeps W^{-1}, torch keeps the Cholesky factor of W). Notation and
equation numbers are Bishop, *Pattern Recognition and Machine Learning* (PRML), Appendix B
and section 10.2. Wishart W(Lambda | W, nu) in dimension D (``dim``), nu > D - 1::

    log B(W, nu) = -nu/2 log|W| - nu D/2 log 2 - log Gamma_D(nu/2)             (B.79)
    E[log|Lambda|] = psi_D(nu/2) + D log 2 + log|W|                              (B.81)
    H[Lambda] = -log B(W, nu) - (nu - D - 1)/2 E[log|Lambda|] + nu D/2           (B.82)

with Gamma_D(a) = pi^{D(D-1)/4} prod_{i=1}^D Gamma(a + (1 - i)/2) and psi_D its log-derivative.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import array_namespace as _compat_namespace
from array_api_compat import device, is_numpy_namespace, is_torch_namespace

__all__ = [
    "digamma",
    "dirichlet_log_normalizer",
    "expected_gaussian_log_density",
    "expected_log_det_wishart_unchecked",
    "expected_log_dirichlet_unchecked",
    "gaussian_entropy",
    "gammaln",
    "kl_dirichlet",
    "kl_normal_wishart",
    "kl_wishart",
    "log_det_tril",
    "multivariate_digamma",
    "multivariate_gammaln",
    "wishart_entropy",
    "wishart_log_normalizer",
]

_LOG_2 = math.log(2.0)
_LOG_PI = math.log(math.pi)
_LOG_2PI = math.log(2.0 * math.pi)


# NumPy >= 2.1 is itself an array API namespace for everything used here; calling it directly
# skips array-api-compat's NumPy wrapper, whose first use costs about 0.1 s of CPU (it builds
# its wrappers with inspect) and whose every call adds a few microseconds.
_NUMPY_IS_ARRAY_API = tuple(int(p) for p in np.__version__.split(".")[:2]) >= (2, 1)


def array_namespace(*arrays):
    """The array API namespace of ``arrays`` (NumPy itself for NumPy >= 2.1 arrays)."""
    if _NUMPY_IS_ARRAY_API and all(isinstance(a, (np.ndarray, np.generic)) for a in arrays):
        return np
    return _compat_namespace(*arrays)


# -- special functions: the one piece the array API does not have --------------------
def _special(xp, name: str):
    if xp is np or is_numpy_namespace(xp):
        import scipy.special

        return getattr(scipy.special, name)
    if is_torch_namespace(xp):
        import torch

        return getattr(torch.special, name)
    raise TypeError(f"vitoolkit.expectations: no {name} for array namespace {xp.__name__}; "
                    "NumPy and torch are supported")


def digamma(x):
    """psi(x) = d/dx log Gamma(x), elementwise, in the namespace of ``x``."""
    return _special(array_namespace(x), "digamma")(x)


def gammaln(x):
    """log Gamma(x) for x > 0, elementwise, in the namespace of ``x``."""
    return _special(array_namespace(x), "gammaln")(x)


def _arrays(*values):
    """The namespace of the array arguments, and every argument as an array of it (Python
    numbers take the dtype and device of the first array)."""
    arrays = [v for v in values if not isinstance(v, (int, float))]
    if not arrays:
        raise TypeError("vitoolkit.expectations: give at least one argument as an array (NumPy "
                        "or torch); Python numbers alone have no namespace")
    xp = array_namespace(*arrays)
    ref = arrays[0]
    return xp, [v if not isinstance(v, (int, float))
                else xp.asarray(v, dtype=ref.dtype, device=device(ref)) for v in values]


def _offsets(x, dim: int, xp):
    """x[..., None] + (1 - i)/2 for i = 1..dim: shape (..., dim)."""
    half = xp.asarray([-0.5 * i for i in range(dim)], dtype=x.dtype, device=device(x))
    return x[..., None] + half


def multivariate_digamma(x, dim: int):
    """psi_D(x) = sum_{i=1}^D psi(x + (1 - i)/2), elementwise over ``x``."""
    xp = array_namespace(x)
    return xp.sum(digamma(_offsets(x, dim, xp)), axis=-1)


def multivariate_gammaln(x, dim: int):
    """log Gamma_D(x) = D(D-1)/4 log pi + sum_{i=1}^D log Gamma(x + (1 - i)/2)."""
    xp = array_namespace(x)
    return 0.25 * dim * (dim - 1) * _LOG_PI + xp.sum(gammaln(_offsets(x, dim, xp)), axis=-1)


def log_det_tril(scale_tril):
    """log det(L L^T) = 2 sum_i log L_ii for a lower Cholesky factor (..., D, D)."""
    xp = array_namespace(scale_tril)
    return 2.0 * xp.sum(xp.log(xp.linalg.diagonal(scale_tril)), axis=-1)


# -- Dirichlet ------------------------------------------------------------------------
def expected_log_dirichlet_unchecked(concentration):
    r"""E[log pi_k] under Dir(pi | alpha) = psi(alpha_k) - psi(sum_j alpha_j) (PRML eq. 10.66,
    B.21); ``concentration`` (..., K), positive. No input checks (the CAVI loop's kernel);
    the checked torch function is :func:`vitoolkit.distributions.expected_log_dirichlet`."""
    xp = array_namespace(concentration)
    return digamma(concentration) - digamma(xp.sum(concentration, axis=-1, keepdims=True))


def dirichlet_log_normalizer(concentration):
    """log C(alpha) = log Gamma(sum_k alpha_k) - sum_k log Gamma(alpha_k) (PRML B.23);
    shape (...)."""
    xp = array_namespace(concentration)
    return gammaln(xp.sum(concentration, axis=-1)) - xp.sum(gammaln(concentration), axis=-1)


def kl_dirichlet(p_concentration, q_concentration):
    """KL(Dir(a) || Dir(b)) = log C(a) - log C(b) + sum_k (a_k - b_k) E_a[log pi_k]."""
    xp = array_namespace(p_concentration, q_concentration)
    a, b = p_concentration, q_concentration
    return (dirichlet_log_normalizer(a) - dirichlet_log_normalizer(b)
            + xp.sum((a - b) * expected_log_dirichlet_unchecked(a), axis=-1))


# -- Wishart --------------------------------------------------------------------------
def expected_log_det_wishart_unchecked(df, scale_tril=None, *, log_det_scale=None, dim=None):
    r"""E[log det Lambda] under W(Lambda | W, nu) = psi_D(nu/2) + D log 2 + log det W
    (PRML eq. 10.65, B.81). No input checks on the values (the CAVI loop's kernel); the
    checked torch function is :func:`vitoolkit.distributions.expected_log_det_wishart`.

    Give either ``scale_tril`` (..., D, D), the Cholesky factor of W, or ``log_det_scale``
    (...) = log det W together with ``dim`` = D. ``df`` (...) is nu > D - 1.
    """
    if (scale_tril is None) == (log_det_scale is None):
        raise ValueError("expected_log_det_wishart: give exactly one of scale_tril or "
                         "log_det_scale")
    if scale_tril is not None:
        dim = scale_tril.shape[-1]
        log_det_scale = log_det_tril(scale_tril)
    elif dim is None:
        raise ValueError("expected_log_det_wishart: log_det_scale needs dim")
    xp, (log_det_scale, df) = _arrays(log_det_scale, df)
    if df.dtype != log_det_scale.dtype:
        df = xp.astype(df, log_det_scale.dtype)
    return multivariate_digamma(0.5 * df, dim) + dim * _LOG_2 + log_det_scale


def wishart_log_normalizer(df, log_det_scale, dim: int):
    """log B(W, nu) = -nu/2 log|W| - nu D/2 log 2 - log Gamma_D(nu/2) (PRML B.79)."""
    _, (df, log_det_scale) = _arrays(df, log_det_scale)
    return -0.5 * df * log_det_scale - 0.5 * dim * _LOG_2 * df - multivariate_gammaln(0.5 * df, dim)


def wishart_entropy(df, log_det_scale, dim: int):
    """H[W(W, nu)] = -log B(W, nu) - (nu - D - 1)/2 E[log|Lambda|] + nu D/2 (PRML B.82)."""
    _, (df, log_det_scale) = _arrays(df, log_det_scale)
    e_log_det = expected_log_det_wishart_unchecked(df, log_det_scale=log_det_scale, dim=dim)
    return (-wishart_log_normalizer(df, log_det_scale, dim) - 0.5 * (df - dim - 1) * e_log_det
            + 0.5 * dim * df)


def kl_wishart(df_p, log_det_p, df_q, log_det_q, trace_q_inv_p, dim: int):
    r"""KL(W(W_p, nu_p) || W(W_q, nu_q)) from log det W_p, log det W_q and
    tr(W_q^{-1} W_p)::

        (nu_p - nu_q)/2 psi_D(nu_p/2) + nu_p/2 (tr(W_q^{-1} W_p) - D)
        + nu_q/2 (log|W_q| - log|W_p|) + log Gamma_D(nu_q/2) - log Gamma_D(nu_p/2)
    """
    _, (df_p, log_det_p, df_q, log_det_q, trace_q_inv_p) = _arrays(
        df_p, log_det_p, df_q, log_det_q, trace_q_inv_p)
    return (0.5 * (df_p - df_q) * multivariate_digamma(0.5 * df_p, dim)
            + 0.5 * df_p * (trace_q_inv_p - dim)
            + 0.5 * df_q * (log_det_q - log_det_p)
            + multivariate_gammaln(0.5 * df_q, dim) - multivariate_gammaln(0.5 * df_p, dim))


def kl_normal_wishart(beta_p, df_p, log_det_p, beta_q, df_q, log_det_q, trace_q_inv_p,
                      mahalanobis, dim: int):
    r"""KL between Normal-Wisharts N(mu | m, (beta Lambda)^{-1}) W(Lambda | W, nu) (PRML 10.40)::

        KL_Wishart + 1/2 [D (beta_q/beta_p - 1 - log(beta_q/beta_p))
                          + beta_q nu_p (m_p - m_q)^T W_p (m_p - m_q)]

    ``mahalanobis`` is (m_p - m_q)^T W_p (m_p - m_q); the other arguments as in
    :func:`kl_wishart`.
    """
    xp, (beta_p, beta_q) = _arrays(beta_p, beta_q)
    ratio = beta_q / beta_p
    return (kl_wishart(df_p, log_det_p, df_q, log_det_q, trace_q_inv_p, dim)
            + 0.5 * (dim * (ratio - 1 - xp.log(ratio)) + beta_q * df_p * mahalanobis))


# -- Gaussian -------------------------------------------------------------------------
def gaussian_entropy(log_det_covariance, dim: int):
    """H[N(m, Sigma)] = D/2 (1 + log 2 pi) + 1/2 log det Sigma."""
    return 0.5 * dim * (1.0 + _LOG_2PI) + 0.5 * log_det_covariance


def expected_gaussian_log_density(expected_log_det_precision, expected_mahalanobis, dim: int):
    r"""E[log N(x | mu, Lambda^{-1})] = 1/2 (E[log|Lambda|] - D log 2 pi
    - E[(x - mu)^T Lambda (x - mu)]) (PRML eq. 10.71 per point)."""
    return 0.5 * (expected_log_det_precision - dim * _LOG_2PI - expected_mahalanobis)


# The former names of the two kernels (one name per concept: the checked functions of
# vitoolkit.distributions own the plain names).
expected_log_dirichlet = expected_log_dirichlet_unchecked
expected_log_det_wishart = expected_log_det_wishart_unchecked
