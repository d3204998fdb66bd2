r"""Likelihoods of discrete data from continuous densities, and bits per dimension.

Two conversions used whenever continuous and discrete models of the same kind
of data are compared (Theis, van den Oord & Bethge 2016, "A note on the
evaluation of generative models", section 3.1):

- :func:`dequantized_log_prob_bound`: a continuous density ``p`` evaluated at
  uniformly dequantised data ``y = x + u`` (see
  :func:`vitoolkit.datasets.dequantize.uniform_dequantize`) gives a lower bound on
  the log *probability* of the bins, after the log-volume correction ``D log w``:

  .. math:: \log P(x) = \log \int_{[0,w)^D} p(x + u)\,du
            \ge \mathbb E_{u \sim \mathcal U[0,w)^D}[\log p(x + u)] + D \log w

  (Jensen's inequality; the uniform density on the bin is ``w^{-D}``). A
  probability is at most 1, so the bound (the expectation over ``u``) is at most 0,
  whereas a density can exceed 1 and its log can be positive: a Gaussian decoder
  scored on raw 17-level pixels reports a *positive* log density. (One draw of
  ``u`` can land above 0; only the average over ``u`` is bounded.)
- :func:`bits_per_dim`: ``-log P(x) / (D ln 2)``, the code length per dimension in
  bits (for discrete data, of the discrete probability); ``log2(levels)`` is what
  a uniform distribution over the levels pays, 1 bit for binary pixels.
"""

from __future__ import annotations

import math

import torch

from .validation import as_float_tensor, check_int, check_real

__all__ = ["bits_per_dim", "dequantized_log_prob_bound"]


def _values(log_prob, name: str):
    """A float64 tensor of ``log_prob`` and whether the input was a plain number."""
    scalar = not isinstance(log_prob, torch.Tensor) and (
        isinstance(log_prob, (int, float)) or getattr(log_prob, "ndim", None) == 0)
    return as_float_tensor(log_prob, name, dtype=torch.float64), scalar


def dequantized_log_prob_bound(log_density, bin_width: float, num_dims: int):
    r"""The lower bound ``log p(x + u) + D log w`` on the log probability of ``x``'s bin.

    Theis, van den Oord & Bethge (2016), section 3.1. ``log_density`` is a
    continuous model's log density at dequantised data ``y = x + u`` (one ``u``
    per image is an unbiased estimate of the expectation in the bound; average
    over images or draws for the bound itself).

    Parameters
    ----------
    log_density : float or Tensor of any shape
        ``log p(y)`` in nats, one value per data point (summed over its ``D``
        dimensions).
    bin_width : float > 0
        The grid spacing ``w`` (see :func:`vitoolkit.datasets.dequantize.bin_width`).
    num_dims : int >= 1
        ``D``, the number of dimensions (pixels) per data point.

    Returns
    -------
    float (for a number) or float64 Tensor of the same shape, nats.
    """
    values, scalar = _values(log_density, "log_density")
    bin_width = check_real(bin_width, "bin_width", minimum=0.0, strict_minimum=True)
    num_dims = check_int(num_dims, "num_dims", minimum=1)
    out = values + num_dims * math.log(bin_width)
    return float(out) if scalar else out


def bits_per_dim(log_prob, num_dims: int):
    r"""Bits per dimension, ``-log P(x) / (D \ln 2)``.

    The negative log-likelihood in bits, divided by the number of dimensions
    (Theis, van den Oord & Bethge 2016, section 3.1, report densities this way).
    For discrete data ``log_prob`` should be the log *probability* (at most 0, so
    the result is at least 0), e.g. :func:`dequantized_log_prob_bound` of a
    continuous model, whose bits per dimension are then an upper bound.

    Parameters
    ----------
    log_prob : float or Tensor of any shape
        ``log P(x)`` in nats per data point.
    num_dims : int >= 1
        ``D``, the number of dimensions per data point.

    Returns
    -------
    float (for a number) or float64 Tensor of the same shape, bits per dimension.
    """
    values, scalar = _values(log_prob, "log_prob")
    num_dims = check_int(num_dims, "num_dims", minimum=1)
    out = -values / (num_dims * math.log(2.0))
    return float(out) if scalar else out
