"""Validation shared by the divergence functions, built on :mod:`vitoolkit.validation`.

Only the divergence-specific checks live here (two distributions with matching event
shapes and broadcastable batch shapes); numbers go through the toolkit's primitives, so
messages name the argument and the rules are the package's (a bool is not a number, a
float is not a count).

One rule for sample counts in this package: every Monte Carlo function returns a
standard error, so ``num_samples`` is an integer >= 2 (Python, NumPy or 0-d tensor
integer; ``2.0`` and ``True`` are refused with a ``TypeError``).
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..validation import check_int, check_real

#: Fewest draws a Monte Carlo estimate with a standard error accepts.
MIN_SAMPLES = 2


def check_distribution(d, name: str) -> None:
    if not isinstance(d, Distribution):
        raise TypeError(f"{name} must be a torch.distributions.Distribution, got {type(d).__name__}")


def check_pair(p, q, names=("p", "q")) -> torch.Size:
    """Both are distributions with equal event shapes and broadcastable batch shapes.

    ``names`` are the argument names used in messages (``cross_entropy(q, p)`` passes
    ``("q", "p")``).
    """
    a, b = names
    check_distribution(p, a)
    check_distribution(q, b)
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"{a} and {b} must have the same event_shape, got {tuple(p.event_shape)} "
            f"({type(p).__name__}) and {tuple(q.event_shape)} ({type(q).__name__})"
        )
    # Fast path (this runs once per VAE training step; broadcast_shapes costs ~7 us):
    # one batch shape a suffix of the other.
    ps, qs = p.batch_shape, q.batch_shape
    if len(qs) <= len(ps) and ps[len(ps) - len(qs):] == qs:
        return ps
    if len(ps) < len(qs) and qs[len(qs) - len(ps):] == ps:
        return qs
    try:
        return torch.broadcast_shapes(p.batch_shape, q.batch_shape)
    except RuntimeError as err:
        raise ValueError(
            f"batch shapes of {a} {tuple(p.batch_shape)} and {b} {tuple(q.batch_shape)} "
            "do not broadcast"
        ) from err


def check_dim(dim, ndim: int, name: str = "dim") -> int:
    """An axis index valid for ``ndim`` dimensions (negative counts from the end)."""
    dim = check_int(dim, name)
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name}={dim} is out of range for an array with {ndim} dimension(s)")
    return dim


def check_no_overflow(value: torch.Tensor, name: str, given) -> torch.Tensor:
    """Refuse a result that overflowed float64 because of the argument ``name``."""
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name}={given!r} makes the result overflow float64 (got "
                         f"{value.detach().reshape(-1)[0].item()!r}); use a smaller |{name}|")
    return value


def check_alpha(alpha, name: str = "alpha") -> float:
    """A finite real number (bools and strings refused)."""
    return check_real(alpha, name)
