"""The argument checks and evaluation context every VAE diagnostic shares (the model's
interface, its inputs, evaluation mode, q(z|x) as a diagonal Normal)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.distributions import Normal

from ..validation import as_float_tensor

__all__ = []


@contextlib.contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _diag_normal(q) -> Normal:
    """The Normal(loc, scale) inside q(z|x) = Independent(Normal, 1)."""
    base = getattr(q, "base_dist", q)
    if not isinstance(base, Normal):
        raise TypeError(
            "the diagnostics need a diagonal Gaussian q(z|x) = Independent(Normal(loc, scale), 1); "
            f"got {type(q).__name__} of {type(base).__name__}"
        )
    return base


# -- arguments -----------------------------------------------------------------


def _check_model(model, needs: tuple = ("encode", "prior")) -> None:
    """``model`` must be a torch module with the VAE interface parts the caller uses."""
    missing = [a for a in needs if not hasattr(model, a)]
    if not isinstance(model, nn.Module) or missing or not all(
            callable(getattr(model, a)) for a in needs if a != "prior"):
        raise TypeError(
            f"model must be a VAE-like torch.nn.Module with {', '.join(needs)} (such as "
            f"vitoolkit.vae.VAE), got {type(model).__name__}"
            + (f" without {', '.join(missing)}" if missing and isinstance(model, nn.Module) else ""))


def _check_inputs(model, x, y, *, needs: tuple = ("encode", "prior"), min_rows: int = 1):
    """Validate (model, x, y) at the boundary: x a finite real (n, data_dim) array in the
    model's support, y None or the model's conditions for n rows."""
    _check_model(model, needs)
    dtype = x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.float64
    x = as_float_tensor(x, "x", dtype=dtype)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, data_dim), got {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"x must have at least {min_rows} rows, got shape {tuple(x.shape)}")
    data_dim = getattr(model, "data_dim", None)
    if isinstance(data_dim, int) and x.shape[1] != data_dim:
        raise ValueError(f"x has {x.shape[1]} columns but the model has data_dim={data_dim}: "
                         "x and model do not match")
    if hasattr(model, "_check_support"):
        model._check_support(x, "x")  # e.g. a Bernoulli likelihood needs x in [0, 1]
    if hasattr(model, "_check_y") and hasattr(model, "conditional_dim"):
        y = model._check_y(y, x.shape[0], "y")
    elif y is not None:
        y = as_float_tensor(y, "y", ndim=2)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"y must have {x.shape[0]} rows like x, got shape {tuple(y.shape)}")
    return x, y
