r"""Uniform dequantisation: discrete pixel values made continuous, so densities can score them.

Data stored on an evenly spaced grid of ``levels`` values ``low, low + w, ..., high``
(``w = (high - low) / (levels - 1)``, the *bin width*: the digits' 17 levels
0, 1/16, ..., 1 have ``w = 1/16``) are discrete. A continuous density fitted to
them can put unbounded mass density on the grid points, so its log density says
nothing about how well it models the data. Theis, van den Oord & Bethge (2016),
"A note on the evaluation of generative models", section 3.1, add uniform noise
in each pixel's bin,

.. math:: y = x + u, \qquad u \sim \mathcal U[0, w)^D,

train and evaluate the continuous density on ``y``, and read the result as a
lower bound on the discrete probability of the bins (Jensen's inequality):

.. math:: \log P(x) = \log \int_{[0, w)^D} p(x + u)\, du
          \ge \mathbb E_u[\log p(x + u)] + D \log w,

computed by :func:`vitoolkit.discrete_likelihood.dequantized_log_prob_bound`.
"""

from __future__ import annotations

import torch

from ..validation import as_float_tensor, check_int, check_real

__all__ = ["bin_width", "uniform_dequantize"]

#: Relative tolerance (in bin widths) for a value to count as lying on the grid.
GRID_TOLERANCE = 1e-4


def bin_width(levels: int, low: float = 0.0, high: float = 1.0) -> float:
    """The spacing ``w = (high - low) / (levels - 1)`` of an evenly spaced grid of values.

    Parameters
    ----------
    levels : int >= 2
        Number of distinct values (17 for the digits' pixel counts 0..16).
    low, high : float, low < high
        The smallest and largest value of the grid (0 and 1 for the digits).
    """
    levels = check_int(levels, "levels", minimum=2)
    low = check_real(low, "low")
    high = check_real(high, "high")
    if not high > low:
        raise ValueError(f"high must be > low, got low={low!r}, high={high!r}")
    return (high - low) / (levels - 1)


def uniform_dequantize(x, levels: int, *, low: float = 0.0, high: float = 1.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Add uniform noise within each value's bin: ``y = x + w u``, ``u ~ U[0, 1)`` per entry.

    Theis, van den Oord & Bethge (2016), section 3.1. Each ``x`` on the grid
    ``low + k w`` (``k = 0, ..., levels - 1``) moves to a uniform point of its bin
    ``[x, x + w)``; the bins tile ``[low, high + w)`` without overlap, so a
    continuous density on ``y`` defines a discrete distribution on the grid
    (the mass of each bin).

    Parameters
    ----------
    x : Tensor or array of any shape
        Values on the grid (within ``1e-4`` of a bin width; anything else is refused).
    levels : int >= 2
        Number of grid values.
    low, high : float
        The grid's ends.
    generator : torch.Generator, optional
        Source of the noise (a fresh draw per call).

    Returns
    -------
    Tensor of the shape and floating dtype of ``x``, the dequantised values.

    Raises
    ------
    ValueError
        If a value is off the grid (not ``low + k w`` for an integer ``0 <= k < levels``),
        naming how many and the first one.
    """
    w = bin_width(levels, low, high)
    x = as_float_tensor(x, "x", dtype=x.dtype if isinstance(x, torch.Tensor)
                        and x.is_floating_point() else None)
    k = (x.double() - low) / w
    off = ((k - k.round()).abs() > GRID_TOLERANCE) | (k.round() < 0) | (k.round() > levels - 1)
    if bool(off.any()):
        first = float(x.reshape(-1)[off.reshape(-1)][0])
        raise ValueError(f"x must lie on the grid low + k * {w:g} (k = 0..{levels - 1}, "
                         f"low={low:g}, high={high:g}); {int(off.sum())} of {x.numel()} values do "
                         f"not, the first is {first!r}")
    u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
    grid = low + k.round() * w  # snap to the grid before adding the noise
    return (grid + w * u).to(x.dtype)
