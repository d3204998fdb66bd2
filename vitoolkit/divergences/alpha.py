r"""Alpha (Minka) and Renyi divergences, closed form for Gaussians, Monte Carlo otherwise.

Minka's alpha-divergence (Minka 2005, MSR-TR-2005-173, eq. 2):

    D_alpha(p || q) = 1 / (alpha (1 - alpha)) integral [alpha p + (1 - alpha) q - p^alpha q^(1-alpha)] dx
                    = (1 - A_alpha) / (alpha (1 - alpha)),   A_alpha = integral p^alpha q^(1-alpha) dx

for normalised p and q. alpha -> 0 gives KL(q || p) (the VI objective, mode-seeking),
alpha -> 1 gives KL(p || q) (mass-covering), alpha = 1/2 gives
2 integral (sqrt p - sqrt q)^2 dx (four times the squared Hellinger distance).

Renyi's divergence of order alpha (Renyi 1961; Li & Turner 2016):

    D^R_alpha(p || q) = log A_alpha / (alpha - 1),   alpha -> 1 gives KL(p || q).

Gaussian closed form (e.g. Gil, Alajaji & Linder 2013): with Delta = m_p - m_q and
S_alpha = alpha S_q + (1 - alpha) S_p,

    log A_alpha = -alpha (1 - alpha)/2 Delta^T S_alpha^{-1} Delta - 1/2 log det S_alpha
                  + (1 - alpha)/2 log det S_p + alpha/2 log det S_q,

finite if and only if alpha Lambda_p + (1 - alpha) Lambda_q is positive definite
(always for 0 < alpha < 1).
"""

from __future__ import annotations

import math

import torch

from ..distributions import sample
from ._checks import check_alpha, check_num_samples, check_pair
from ._gaussian import gaussian_params
from .closed_form import kl_divergence
from .monte_carlo import Estimate, monte_carlo_kl

__all__ = ["alpha_divergence", "renyi_divergence", "log_alpha_affinity"]

_METHODS = ("auto", "closed_form", "monte_carlo")


def log_alpha_affinity(p, q, alpha: float) -> torch.Tensor:
    r"""log A_alpha = log integral p^alpha q^(1-alpha) dx for two Gaussians, in closed form.

    Raises ``ValueError`` naming ``alpha`` when the integral diverges
    (alpha Lambda_p + (1 - alpha) Lambda_q not positive definite).
    """
    check_pair(p, q)
    alpha = check_alpha(alpha)
    gp, gq = gaussian_params(p), gaussian_params(q)
    if gp is None or gq is None:
        raise NotImplementedError(
            f"closed-form alpha affinity needs two Gaussians, got {type(p).__name__} and "
            f"{type(q).__name__}; use method='monte_carlo' with num_samples"
        )
    (mp, sp), (mq, sq) = gp, gq
    mp, mq = torch.broadcast_tensors(mp, mq)
    sp, sq = torch.broadcast_tensors(sp, sq)
    prec = alpha * torch.linalg.inv(sp) + (1 - alpha) * torch.linalg.inv(sq)
    _, info = torch.linalg.cholesky_ex(0.5 * (prec + prec.mT))
    if bool((info != 0).any()):
        raise ValueError(
            f"alpha={alpha} gives an infinite divergence for these Gaussians: "
            "alpha * Lambda_p + (1 - alpha) * Lambda_q is not positive definite "
            "(0 < alpha < 1 is always finite; alpha > 1 needs q wider than p, alpha < 0 p wider than q)"
        )
    s_alpha = alpha * sq + (1 - alpha) * sp
    delta = (mp - mq).unsqueeze(-1)
    quad = (delta.mT @ torch.linalg.solve(s_alpha, delta)).squeeze(-1).squeeze(-1)
    _, logdet_a = torch.linalg.slogdet(s_alpha)
    logdet_p = torch.linalg.slogdet(sp)[1]
    logdet_q = torch.linalg.slogdet(sq)[1]
    return (-0.5 * alpha * (1 - alpha) * quad - 0.5 * logdet_a
            + 0.5 * (1 - alpha) * logdet_p + 0.5 * alpha * logdet_q)


def _mc_log_weights(p, q, num_samples, generator, sample_from, alpha):
    """Per-sample log of the affinity integrand's importance weight, and its exponent."""
    if sample_from == "q":
        x = sample(q, (num_samples,), generator=generator)
        return alpha * (p.log_prob(x) - q.log_prob(x))
    if sample_from == "p":
        x = sample(p, (num_samples,), generator=generator)
        return (1 - alpha) * (q.log_prob(x) - p.log_prob(x))
    raise ValueError(f"sample_from must be 'q' or 'p', got {sample_from!r}")


def _mc_affinity(p, q, alpha, num_samples, generator, sample_from):
    """Monte Carlo A_alpha: returns (log A_hat, stderr(A_hat) / A_hat)."""
    check_num_samples(num_samples)
    with torch.no_grad():
        logw = _mc_log_weights(p, q, num_samples, generator, sample_from, alpha)
    if bool(torch.isnan(logw).any()):
        raise ValueError("log densities of p or q were NaN on the Monte Carlo samples")
    log_a = torch.logsumexp(logw, 0) - math.log(num_samples)
    rel = torch.exp(logw - log_a)  # w / A_hat, mean 1
    rel_stderr = rel.std(0, unbiased=True) / math.sqrt(num_samples)
    return log_a, rel_stderr


def _resolve(p, q, method, num_samples):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    gaussian = gaussian_params(p) is not None and gaussian_params(q) is not None
    if method == "auto":
        if gaussian:
            return "closed_form"
        if num_samples is None:
            raise ValueError(
                f"no closed form for {type(p).__name__} and {type(q).__name__}: pass "
                "num_samples for a Monte Carlo estimate (or use grid_divergence in 1-D/2-D)"
            )
        return "monte_carlo"
    if method == "closed_form" and not gaussian:
        raise NotImplementedError(
            f"closed form needs two Gaussians, got {type(p).__name__} and {type(q).__name__}; "
            "use method='monte_carlo' with num_samples"
        )
    return method


def alpha_divergence(p, q, alpha: float, *, method: str = "auto", num_samples: int | None = None,
                     generator: torch.Generator | None = None, sample_from: str = "q"):
    r"""Minka's alpha-divergence D_alpha(p || q) (see the module docstring).

    Parameters
    ----------
    p, q : torch.distributions.Distribution
    alpha : float
        Any real number; 0 and 1 return KL(q || p) and KL(p || q).
    method : {"auto", "closed_form", "monte_carlo"}
        ``"auto"`` uses the closed form for two Gaussians, Monte Carlo otherwise.
    num_samples : int >= 2, needed for Monte Carlo.
    generator : torch.Generator, optional
    sample_from : {"q", "p"}
        Which distribution the Monte Carlo draws come from:
        A_alpha = E_q[(p/q)^alpha] = E_p[(q/p)^(1-alpha)].

    Returns
    -------
    Tensor (closed form) or Estimate (Monte Carlo), of the broadcast batch shape.
    """
    check_pair(p, q)
    alpha = check_alpha(alpha)
    how = _resolve(p, q, method, num_samples)
    if alpha in (0.0, 1.0):
        a, b = (q, p) if alpha == 0.0 else (p, q)
        if how == "closed_form":
            return kl_divergence(a, b)
        return monte_carlo_kl(a, b, check_num_samples(num_samples), generator=generator)
    scale = alpha * (1 - alpha)
    if how == "closed_form":
        return -torch.expm1(log_alpha_affinity(p, q, alpha)) / scale
    log_a, rel_stderr = _mc_affinity(p, q, alpha, num_samples, generator, sample_from)
    a_hat = torch.exp(log_a)
    return Estimate(-torch.expm1(log_a) / scale, a_hat * rel_stderr / abs(scale))


def renyi_divergence(p, q, alpha: float, *, method: str = "auto", num_samples: int | None = None,
                     generator: torch.Generator | None = None, sample_from: str = "q"):
    r"""Renyi divergence of order alpha, D^R_alpha(p || q) = log A_alpha / (alpha - 1).

    alpha = 1 returns KL(p || q). Arguments as in :func:`alpha_divergence`; the
    Monte Carlo standard error is the delta-method one, stderr(A) / (A abs(alpha - 1))
    (the estimate of log A is biased low by Jensen, by O(1/num_samples)).
    """
    check_pair(p, q)
    alpha = check_alpha(alpha)
    how = _resolve(p, q, method, num_samples)
    if alpha == 1.0:
        if how == "closed_form":
            return kl_divergence(p, q)
        return monte_carlo_kl(p, q, check_num_samples(num_samples), generator=generator)
    if how == "closed_form":
        return log_alpha_affinity(p, q, alpha) / (alpha - 1)
    log_a, rel_stderr = _mc_affinity(p, q, alpha, num_samples, generator, sample_from)
    return Estimate(log_a / (alpha - 1), rel_stderr / abs(alpha - 1))
