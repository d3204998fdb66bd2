r"""Monte Carlo KL estimates with their standard errors.

Two unbiased per-sample estimators of KL(p || q) from x ~ p, with log r = log q(x) - log p(x):

- ``"log_ratio"``: -log r. Unbiased; can be negative for a single draw; its
  variance does not vanish as q -> p only at first order.
- ``"k3"``: (r - 1) - log r. Unbiased because E_p[r] = 1; every term is >= 0
  (log is concave), and its variance is typically much lower when q is close
  to p (Schulman, "Approximating KL divergence", 2020).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..distributions import sample
from ._checks import check_num_samples, check_pair

__all__ = ["Estimate", "monte_carlo_kl", "KL_ESTIMATORS"]

#: The named Monte Carlo KL estimators.
KL_ESTIMATORS = ("log_ratio", "k3")


class Estimate(NamedTuple):
    """A Monte Carlo estimate: ``value`` and its standard error ``stderr`` (same shape)."""

    value: torch.Tensor
    stderr: torch.Tensor


def mean_and_stderr(terms: torch.Tensor) -> Estimate:
    """Sample mean over dim 0 and its standard error std / sqrt(n) (ddof = 1)."""
    n = terms.shape[0]
    return Estimate(terms.mean(0), terms.std(0, unbiased=True) / math.sqrt(n))


def monte_carlo_kl(p, q, num_samples: int, *, estimator: str = "log_ratio",
                   generator: torch.Generator | None = None) -> Estimate:
    r"""Monte Carlo estimate of KL(p || q) = E_p[log p(x) - log q(x)].

    Works for any pair with ``p.sample`` and ``log_prob`` on both, including
    mixtures (``MixtureSameFamily``) that have no closed form.

    Parameters
    ----------
    p, q : torch.distributions.Distribution
    num_samples : int >= 2
    estimator : {"log_ratio", "k3"}
        See the module docstring for their variance trade-off.
    generator : torch.Generator, optional
        Local source of randomness (the global state is left untouched).

    Returns
    -------
    Estimate
        ``value`` and ``stderr`` of shape ``broadcast(p.batch_shape, q.batch_shape)``.
    """
    check_pair(p, q)
    check_num_samples(num_samples)
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")
    with torch.no_grad():
        x = sample(p, (num_samples,), generator=generator)
        log_p = p.log_prob(x)
        log_q = q.log_prob(x)
    if not bool(torch.isfinite(log_p).all()):
        raise ValueError("p.log_prob returned non-finite values on p's own samples")
    log_r = log_q - log_p
    if estimator == "log_ratio":
        terms = -log_r
    else:
        terms = torch.expm1(log_r) - log_r
    return mean_and_stderr(terms)
