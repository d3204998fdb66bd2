"""Domain checks of the gradient estimators, built on :mod:`vitoolkit.validation`.

The primitives (types, ranges, finiteness, the memory guard) come from the shared
validation layer; what is here is specific to gradient estimation: a (loc, scale)
pair of one broadcast shape, a draw count that fits in memory, a cost's output,
and the rule that tells a constant cost from a step function when the cost's
output carries no autograd graph.
"""

from __future__ import annotations

import torch

from ..validation import (
    all_finite,
    as_float_tensor,
    check_choice,
    check_finite_result,
    check_num_samples,
    describe_inputs,
    overflow_cause,
)

__all__ = [
    "all_finite",
    "as_params",
    "check_choice",
    "check_finite_result",
    "check_num_samples",
    "describe_inputs",
    "evaluate_cost",
    "no_graph_is_constant",
]

#: Float64 arrays of shape (num_samples, *params) an estimator holds at once (draws,
#: points, cost values, two scores, two outputs and autograd's buffers), an upper bound.
WORKING_COPIES = 8


def as_params(loc, scale, *, loc_name: str = "loc", scale_name: str = "scale"):
    """float64 copies of (loc, scale) broadcast to one shape (..., D); scale > 0."""
    loc = as_float_tensor(loc, loc_name, dtype=torch.float64)
    scale = as_float_tensor(scale, scale_name, dtype=torch.float64)
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


def evaluate_cost(cost, x: torch.Tensor, *, name: str = "cost", inputs: dict | None = None) -> torch.Tensor:
    """``cost(x)`` checked to be a finite tensor of shape ``x.shape[:-1]``.

    ``inputs`` (name -> tensor) are the arguments x was made from (e.g. ``loc`` and
    ``scale``); a non-finite output is reported with their ranges, naming those that are
    large enough to explain it.
    """
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
        message = f"{name} returned {bad} non-finite values (of {out.numel()})"
        if inputs:
            text, culprits = describe_inputs(inputs)
            message += f" at points drawn with {text}"
            if culprits:
                message += f": {overflow_cause(culprits)}; rescale the problem"
        raise ValueError(message)
    return out.to(x.dtype)


def no_graph_is_constant(values: torch.Tensor, message: str) -> bool:
    """For a function output that carries no autograd graph: True if it is constant over the
    draws (dim 0), whose gradient is then genuinely zero; otherwise raise ``message``.

    A function whose values vary across the draws but that autograd cannot differentiate is
    piecewise constant (a comparison, rounding) or computed outside torch: differentiating
    it would return 0 instead of its gradient. Equal values at every draw are what a
    constant (``c * torch.ones_like(x[..., 0])``) gives, and its gradient is exactly 0.
    """
    values = values.detach()
    if values.shape[0] == 0 or bool((values == values[:1]).all()):
        return True
    raise ValueError(message)
