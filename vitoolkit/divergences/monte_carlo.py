r"""Monte Carlo KL estimates with their standard errors.

Two unbiased per-sample estimators of KL(p || q) from x ~ p, with log r = log q(x) - log p(x):

- ``"log_ratio"``: -log r. Unbiased; can be negative for a single draw; its
  variance does not vanish as q -> p only at first order.
- ``"k3"``: (r - 1) - log r. Unbiased because E_p[r] = 1; every term is >= 0
  (log is concave), and its variance is typically much lower when q is close
  to p (Schulman, "Approximating KL divergence", 2020). Its terms grow like r, so
  when E_p[r^2] = integral q^2 / p is infinite (p much narrower than q) so is their
  variance: the estimate stays unbiased but its standard error is meaningless.

Every estimate carries the Pareto k-hat of the ratio r (``Estimate.khat``, Vehtari et
al. 2024, see :mod:`vitoolkit.divergences.psis`); ``"k3"`` issues an
:class:`~vitoolkit.divergences.psis.UnreliableEstimateWarning` when it exceeds 0.7.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch

from ..distributions import sample
from ._checks import check_num_samples, check_pair
from .psis import KHAT_THRESHOLD, UnreliableEstimateWarning, pareto_khat, tail_khat

__all__ = ["Estimate", "monte_carlo_kl", "KL_ESTIMATORS", "mean_and_stderr", "warn_if_unreliable"]

#: The named Monte Carlo KL estimators.
KL_ESTIMATORS = ("log_ratio", "k3")


class _ValueStderr(NamedTuple):
    value: torch.Tensor
    stderr: torch.Tensor


class Estimate(_ValueStderr):
    """A Monte Carlo estimate: ``value`` and its standard error ``stderr`` (same shape).

    A named tuple of two fields, so ``value, stderr = est`` works, with one more
    attribute that is not a field: ``khat``, a Pareto k-hat diagnostic (same shape as
    ``value``; ``None`` when not computed; what it is the k-hat of is documented by the
    function that returns the estimate). Above 0.7 the standard error of an average of
    the diagnosed quantity cannot be trusted (:mod:`vitoolkit.divergences.psis`).
    """

    khat: torch.Tensor | None = None  # class default: also what _make/_replace give

    def __new__(cls, value, stderr, khat=None):
        self = super().__new__(cls, value, stderr)
        if khat is not None:
            self.khat = khat
        return self

    def __repr__(self) -> str:
        extra = "" if self.khat is None else f", khat={self.khat!r}"
        return f"Estimate(value={self.value!r}, stderr={self.stderr!r}{extra})"


def mean_and_stderr(terms: torch.Tensor, *, diagnose: bool = False) -> Estimate:
    """Sample mean over dim 0 and its standard error std / sqrt(n) (ddof = 1).

    With ``diagnose=True`` the result also carries ``khat``, the Pareto k-hat of both
    tails of ``terms`` over dim 0 (:func:`~vitoolkit.divergences.psis.tail_khat`); no
    warning is issued here (see :func:`warn_if_unreliable`). Caveat: the tail fit is
    scale-free, so terms that are nearly constant with a thin spread (e.g. log q - log p
    for q fitted to one mode of a mixture) can give k-hat > 0.7 although their standard
    error is sound; for importance ratios prefer :func:`~vitoolkit.divergences.pareto_khat`
    on the log ratios.
    """
    n = terms.shape[0]
    value, stderr = terms.mean(0), terms.std(0, unbiased=True) / math.sqrt(n)
    if not diagnose:
        return Estimate(value, stderr)
    return Estimate(value, stderr, tail_khat(terms.detach(), dim=0).to(value.dtype))


def warn_if_unreliable(est: Estimate, what: str, *, stacklevel: int = 3) -> None:
    """Issue an :class:`UnreliableEstimateWarning` when any ``est.khat`` exceeds 0.7."""
    if est.khat is None:
        return
    bad = est.khat > KHAT_THRESHOLD
    if not bool(bad.any()):
        return
    worst = float(est.khat.max())
    where = "" if est.khat.dim() == 0 else f" ({int(bad.sum())} of {est.khat.numel()} entries)"
    warnings.warn(
        f"{what}: Pareto k-hat {worst:.2f} > {KHAT_THRESHOLD}{where}. The averaged terms have "
        "a tail so heavy that their variance is infinite (or effectively so): the estimate is "
        "unbiased but its standard error cannot be trusted (it is computed from draws that "
        "have not yet met the tail carrying the variance) and the value may be far off.",
        UnreliableEstimateWarning, stacklevel=stacklevel,
    )


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
        ``value`` and ``stderr`` of shape ``broadcast(p.batch_shape, q.batch_shape)``,
        and ``khat`` (same shape; NaN below 25 draws): the Pareto k-hat (Vehtari et al.
        2024) of the importance ratio r = q(x)/p(x), x ~ p, the same for both estimators.
        It says how heavy the ratio's tail is: above 0.7, any average of r (the k3 terms
        grow like r; importance sampling) has a meaningless standard error.

        Warns
    -----
    UnreliableEstimateWarning
        For ``"k3"`` when ``khat`` > 0.7: its standard error cannot be trusted. The
        ``"log_ratio"`` terms are log r, not r: a heavy ratio tail does not make their
        variance infinite (measured on a Gaussian fitted to one mode of a bimodal target:
        ratio k-hat ~3, yet +/- 2 s.e. intervals cover the exact KL 94.5% of the time),
        so it never warns. (A scale-free tail fit to the log r terms themselves raises
        false alarms on such near-constant terms, so none is made.)
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
    terms = -log_r if estimator == "log_ratio" else torch.expm1(log_r) - log_r
    value, stderr = mean_and_stderr(terms)
    est = Estimate(value, stderr, pareto_khat(log_r, dim=0).to(value.dtype))
    if estimator == "k3":
        warn_if_unreliable(est, f"monte_carlo_kl(estimator='k3', num_samples={num_samples})")
    return est
