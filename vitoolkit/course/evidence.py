r"""Comparisons with their noise, for the claims a lesson checks on its own numbers.

A sentence that says "lower", "noisier" or "better" is a statement about a
difference that the run measured with error. The claim it becomes should hold only
when the difference beats its standard error by a stated factor, and it should
record the numbers it compares. This module computes those differences:

- :func:`paired_difference`: the same items measured twice (per-example log
  likelihoods of two models, per-seed results of two methods), differenced item by
  item before averaging, so that what the items share cancels (a paired z-test);
- :func:`independent_difference`: two independent samples (Welch's standard error,
  :math:`\sqrt{s_a^2 / n_a + s_b^2 / n_b}`);
- :func:`difference_of_estimates`: two independent estimates that already carry
  standard errors (:math:`\sqrt{\mathrm{se}_a^2 + \mathrm{se}_b^2}`).

Each returns a :class:`Difference` whose ``exceeds(factor)`` is the claim's test and
whose ``evidence(factor)`` is what the claim records, as in::

    d = paired_difference(log_px_iwae, log_px_vae)
    tut.claim("IWAE's test log p(x) is higher than the VAE's.", d.exceeds(3),
              **d.evidence(3))

:func:`between` is the two-sided check of "x lies between lo and hi" (in either
order of the ends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Difference", "between", "difference_of_estimates", "independent_difference",
           "mean_and_stderr", "paired_difference"]


def _as_sample(values, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array of at least two finite numbers."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().double().numpy()
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size < 2:
        raise ValueError(f"{name}: need at least 2 values to estimate a standard error, "
                         f"got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: every value must be finite, got {int((~np.isfinite(x)).sum())} "
                         f"non-finite of {x.size}")
    return x


def mean_and_stderr(values) -> tuple[float, float]:
    r"""The sample mean and its standard error :math:`s / \sqrt n` (``s`` with ``ddof=1``)."""
    x = _as_sample(values, "values")
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


@dataclass(frozen=True)
class Difference:
    """A measured difference ``a - b`` with its standard error.

    Attributes
    ----------
    mean : float
        The estimated difference ``a - b``.
    stderr : float
        Its standard error.
    n : int
        The number of pairs (paired) or the smaller sample size (independent).
    wins : int or None
        For a paired difference, the number of items where ``a > b``.
    """

    mean: float
    stderr: float
    n: int
    wins: int | None = None

    @property
    def z(self) -> float:
        """The difference in standard errors (inf when the error is 0 and the mean is not)."""
        if self.stderr == 0:
            return math.copysign(math.inf, self.mean) if self.mean != 0 else 0.0
        return self.mean / self.stderr

    def exceeds(self, factor: float) -> bool:
        """``a`` is larger: the difference is above ``factor`` standard errors."""
        return bool(self.mean > factor * self.stderr)

    def falls_short(self, factor: float) -> bool:
        """``a`` is smaller: the difference is below ``-factor`` standard errors."""
        return bool(self.mean < -factor * self.stderr)

    def within(self, factor: float) -> bool:
        """No difference detected: ``|a - b|`` is at most ``factor`` standard errors."""
        return bool(abs(self.mean) <= factor * self.stderr)

    def evidence(self, factor: float | None = None) -> dict:
        """The numbers a claim records: the difference, its error, z (and the factor, wins)."""
        out = {"difference": self.mean, "stderr": self.stderr, "z": self.z, "n": self.n}
        if self.wins is not None:
            out["wins"] = self.wins
        if factor is not None:
            out["factor"] = float(factor)
        return out


def paired_difference(a, b) -> Difference:
    """``mean(a - b)`` over paired items, with the standard error of that mean.

    Parameters
    ----------
    a, b : array_like or Tensor, the same number of items
        Two measurements of the same items (examples, seeds, data sets).
    """
    xa, xb = _as_sample(a, "a"), _as_sample(b, "b")
    if xa.shape != xb.shape:
        raise ValueError(f"paired_difference: a and b must pair up, got {xa.size} and {xb.size} "
                         "values")
    mean, se = mean_and_stderr(xa - xb)
    return Difference(mean, se, int(xa.size), int((xa > xb).sum()))


def independent_difference(a, b) -> Difference:
    r"""``mean(a) - mean(b)`` for independent samples, with Welch's standard error.

    :math:`\mathrm{se} = \sqrt{s_a^2 / n_a + s_b^2 / n_b}`, each :math:`s^2` with ``ddof=1``.
    """
    xa, xb = _as_sample(a, "a"), _as_sample(b, "b")
    se = math.sqrt(xa.var(ddof=1) / xa.size + xb.var(ddof=1) / xb.size)
    return Difference(float(xa.mean() - xb.mean()), se, int(min(xa.size, xb.size)))


def difference_of_estimates(a: float, stderr_a: float, b: float, stderr_b: float) -> Difference:
    """``a - b`` for two independent estimates with standard errors ``stderr_a``, ``stderr_b``."""
    values = {"a": a, "stderr_a": stderr_a, "b": b, "stderr_b": stderr_b}
    for name, v in values.items():
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"difference_of_estimates: {name} must be finite, got {v}")
        if name.startswith("stderr") and v < 0:
            raise ValueError(f"difference_of_estimates: {name} must be >= 0, got {v}")
    return Difference(float(a) - float(b), math.hypot(float(stderr_a), float(stderr_b)), 1)


def between(x: float, lo: float, hi: float) -> bool:
    """``x`` strictly between ``lo`` and ``hi`` (either may be the larger): both sides checked."""
    lo, hi = min(lo, hi), max(lo, hi)
    return bool(lo < x < hi)
