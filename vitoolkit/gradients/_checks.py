"""Boundary validation shared by the gradient estimators (messages name the argument)."""

from __future__ import annotations

import torch

from ..divergences._checks import check_num_samples

__all__ = ["as_params", "check_num_samples", "evaluate_cost", "check_choice"]


def _as_float64(value, name: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be array-like of real numbers, got {value!r}") from err
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be real-valued, got dtype {t.dtype}")
    t = t.detach().to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()!r}")
    return t


def as_params(loc, scale, *, loc_name: str = "loc", scale_name: str = "scale"):
    """float64 copies of (loc, scale) broadcast to one shape (..., D); scale > 0."""
    loc = _as_float64(loc, loc_name)
    scale = _as_float64(scale, scale_name)
    if loc.ndim == 0:
        raise ValueError(
            f"{loc_name} must have shape (..., D) with the event dimension last; got a scalar "
            f"({loc.item()!r}): pass [{loc.item()!r}] for one dimension"
        )
    if bool((scale <= 0).any()):
        raise ValueError(
            f"{scale_name} must be positive everywhere, got min {scale.min().item()!r} "
            f"(shape {tuple(scale.shape)})"
        )
    try:
        shape = torch.broadcast_shapes(loc.shape, scale.shape)
    except RuntimeError as err:
        raise ValueError(
            f"{loc_name} of shape {tuple(loc.shape)} and {scale_name} of shape "
            f"{tuple(scale.shape)} do not broadcast"
        ) from err
    return loc.expand(shape).clone(), scale.expand(shape).clone()


def evaluate_cost(cost, x: torch.Tensor, *, name: str = "cost") -> torch.Tensor:
    """``cost(x)`` checked to be a finite tensor of shape ``x.shape[:-1]``."""
    out = cost(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} must return a torch.Tensor, got {type(out).__name__}")
    if out.shape != x.shape[:-1]:
        raise ValueError(
            f"{name} must map inputs of shape (..., D) to (...): for input {tuple(x.shape)} "
            f"expected output {tuple(x.shape[:-1])}, got {tuple(out.shape)}"
        )
    if not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).sum())
        raise ValueError(f"{name} returned {bad} non-finite values (of {out.numel()})")
    return out.to(x.dtype)


def check_choice(value, choices, name: str) -> str:
    """``value`` (a str or a str-valued enum member) if it is among ``choices``."""
    key = getattr(value, "value", value)
    if key not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return key
