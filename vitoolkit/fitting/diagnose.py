r"""Did the fit work? The Pareto k-hat of p/q under a fitted q, and PSIS-corrected moments.

Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational
inference", ICML, section 3: draw :math:`z_s \sim q`, form the log ratios
:math:`\log r_s = \log p(z_s, y) - \log q(z_s)`, and fit a generalised Pareto to their largest
values (:func:`vitoolkit.divergences.pareto_smooth`). The shape k-hat estimates how
heavy the tail of p/q is under q, i.e. how much of p the fit misses:

- :math:`\hat k < 0.5`: q covers p; importance sampling with q as proposal is reliable;
- :math:`0.5 \le \hat k < 0.7` (``KHAT_THRESHOLD``): usable, and PSIS improves the
  estimates;
- :math:`\hat k \ge 0.7`: q misses mass of p that matters; do not trust q's moments (nor the
  PSIS-corrected ones).

The PSIS-corrected expectation of f is :math:`\sum_s \tilde w_s f(z_s)` with the smoothed
normalised weights :math:`\tilde w` (Vehtari et al. 2024). The ELBO is the plain average
of :math:`\log r_s`, and the log-mean of the smoothed ratios estimates :math:`\log p(y)`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..distributions import sample
from ..divergences import KHAT_THRESHOLD, log_mean_exp, mean_and_stderr, pareto_smooth
from ..validation import check_int
from ._checks import check_draws_memory, check_generator, check_target

__all__ = ["FitCheck", "check_fit", "draws_with_log_prob"]


class FitCheck(NamedTuple):
    """What :func:`check_fit` found (moments have shape (D,))."""

    khat: float  # Pareto k-hat of p/q under q
    reliable: bool  # khat < 0.7
    elbo: float  # E_q[log p - log q], nats
    elbo_stderr: float
    log_evidence: float  # log mean of the raw ratios (importance sampling with q)
    mean: torch.Tensor  # E_q[z]
    std: torch.Tensor  # sd under q
    psis_mean: torch.Tensor  # PSIS-corrected E_p[z]
    psis_std: torch.Tensor
    ess: float  # Kish ESS of the smoothed weights


def draws_with_log_prob(q, num_samples: int, generator=None):
    """(z (S, D), log q(z) (S,)) from a fitted q: a flow scores its own draws exactly.

    Parameters
    ----------
    q : torch.distributions.Distribution
        Unbatched, event shape () (then D = 1) or (D,); a
        :class:`~vitoolkit.fitting.flows.FlowDistribution` is scored by its forward route.
    num_samples : int >= 1
    generator : torch.Generator, optional
    """
    d = check_target(q, "q")
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    check_generator(generator)
    check_draws_memory(num_samples, d, "num_samples", "the draws of q")
    return _draws_with_log_prob(q, num_samples, generator)


def _draws_with_log_prob(q, num_samples: int, generator=None):
    if hasattr(q, "sample_with_log_prob"):
        return q.sample_with_log_prob((num_samples,), generator=generator)
    with torch.no_grad():
        z = sample(q, (num_samples,), generator=generator).to(torch.float64)
        log_q = q.log_prob(z).to(torch.float64)
    return z.reshape(num_samples, -1), log_q


def check_fit(q, target, *, num_samples: int = 4000, generator=None) -> FitCheck:
    r"""Judge a fitted q against its target with the Pareto k-hat (see the module docstring).

    Parameters
    ----------
    q : torch.distributions.Distribution
        The fitted approximation, event shape (D,) (``GaussianFit.distribution`` of a
        vector target, or ``FlowFit.distribution``).
    target : torch.distributions.Distribution
        The target p (normalised or not), event shape (D,).
    num_samples : int > 20
        Draws from q.
    generator : torch.Generator, optional

    Returns
    -------
    FitCheck
    """
    d = check_target(target, "target", vector_event=True)
    check_target(q, "q", vector_event=True)
    num_samples = check_int(num_samples, "num_samples", minimum=21, maximum=10_000_000)
    check_generator(generator)
    if tuple(q.event_shape) != (d,):
        raise ValueError(f"q has event shape {tuple(q.event_shape)}, the target ({d},)")
    check_draws_memory(num_samples, d, "num_samples", "the draws of q")
    z, log_q = _draws_with_log_prob(q, num_samples, generator)
    with torch.no_grad():
        log_p = target.log_prob(z).to(torch.float64)
    log_r = log_p - log_q
    if not bool(torch.isfinite(log_r).all()):
        raise ValueError("log p - log q is not finite at some draws of q; check the target")
    elbo = mean_and_stderr(log_r)
    log_w, khat = pareto_smooth(log_r)
    w = log_w.exp()
    mean = (w[:, None] * z).sum(0)
    var = (w[:, None] * (z - mean).pow(2)).sum(0)
    return FitCheck(khat=float(khat), reliable=bool(float(khat) < KHAT_THRESHOLD),
                    elbo=float(elbo.value), elbo_stderr=float(elbo.stderr),
                    log_evidence=float(log_mean_exp(log_r)), mean=z.mean(0), std=z.std(0),
                    psis_mean=mean, psis_std=var.sqrt(), ess=float(1.0 / w.pow(2).sum()))
