"""Validation shared by the divergence functions (messages name the argument)."""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution


def check_distribution(d, name: str) -> None:
    if not isinstance(d, Distribution):
        raise TypeError(f"{name} must be a torch.distributions.Distribution, got {type(d).__name__}")


def check_pair(p, q) -> torch.Size:
    """Both are distributions with equal event shapes and broadcastable batch shapes."""
    check_distribution(p, "p")
    check_distribution(q, "q")
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"p and q must have the same event_shape, got {tuple(p.event_shape)} "
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
            f"batch shapes of p {tuple(p.batch_shape)} and q {tuple(q.batch_shape)} "
            "do not broadcast"
        ) from err


def check_num_samples(num_samples) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(
            f"num_samples must be an integer >= 2 (a standard error needs two draws), "
            f"got {num_samples!r}"
        )
    return num_samples


def check_alpha(alpha) -> float:
    if isinstance(alpha, bool):
        raise TypeError(f"alpha must be a real number, got {alpha!r}")
    try:
        value = float(alpha)
    except (TypeError, ValueError) as err:
        raise TypeError(f"alpha must be a real number, got {alpha!r}") from err
    if not math.isfinite(value):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    return value
