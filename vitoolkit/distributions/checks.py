"""The argument checks of the core's distributions (``vitoolkit.divergences`` imports them):
parameters as tensors, sample shapes, draw memory, positive and Cholesky arguments."""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution

from ..validation import as_float_array, check_bool, check_int, check_memory, check_real

__all__ = ["as_param", "check_validate_args", "check_sample_shape", "check_draw_memory",
           "check_distribution_arg", "check_positive_tensor"]


_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# -- argument checks shared by the core (vitoolkit.divergences imports them) ---------
def as_param(value, name: str, *, dtype=None, min_ndim: int = 0, finite: bool = True,
             allow_neg_inf: bool = False) -> torch.Tensor:
    """A real floating tensor from ``value`` (tensor, array or number), named in every error.

    Tensors keep their autograd graph, dtype and device (integer tensors become the
    default float dtype, or ``dtype``); other input is read as float64 (or ``dtype``).
    Strings, bools, complex and object input are refused with a ``TypeError``; NaN and
    inf (with ``allow_neg_inf``, NaN and +inf) and fewer than ``min_ndim`` dimensions
    with a ``ValueError``.
    """
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got complex dtype {value.dtype}")
        if value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got a boolean tensor")
        t = value
        if dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
        elif t.dtype not in _FLOAT_DTYPES:
            t = t.to(torch.get_default_dtype())
    else:
        t = torch.from_numpy(as_float_array(value, name, finite=False))
        if dtype is not None:
            t = t.to(dtype)
    if t.dim() < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape "
                         f"{tuple(t.shape)}")
    if finite:
        bad = torch.isnan(t) | (torch.isposinf(t) if allow_neg_inf else torch.isinf(t))
        if bool(bad.any()):
            raise ValueError(f"{name} contains {int(bad.sum())} NaN or inf entries (of {t.numel()})")
    return t


def _number_or_param(value, name: str):
    """A Python int/float kept as it is (torch's scalar convention), anything else as_param."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return check_real(value, name)
    return as_param(value, name)


def check_validate_args(value) -> None:
    """``validate_args`` is None, True or False (torch's convention)."""
    if value is not None:
        check_bool(value, "validate_args")


def check_sample_shape(sample_shape, name: str = "sample_shape") -> torch.Size:
    """A shape (a tuple or list of integers >= 0, or a torch.Size); an int n means (n,)."""
    if isinstance(sample_shape, (int,)) and not isinstance(sample_shape, bool):
        sample_shape = (sample_shape,)
    if isinstance(sample_shape, (str, bytes)) or not isinstance(sample_shape, (tuple, list, torch.Size)):
        raise TypeError(f"{name} must be a tuple of integers, got {type(sample_shape).__name__}")
    return torch.Size(check_int(n, name, minimum=0) for n in sample_shape)


def check_draw_memory(sample_shape: torch.Size, per_draw_shape, name: str = "sample_shape",
                      itemsize: int = 8, arrays: int = 3) -> None:
    """Refuse, before drawing, draws that would not fit in memory (sizes in Python ints)."""
    per_draw = math.prod(int(n) for n in per_draw_shape)
    count = math.prod(int(n) for n in sample_shape)
    check_memory(count * per_draw * itemsize * arrays, name, tuple(sample_shape),
                 f"{count:,} draws of shape {tuple(per_draw_shape)}")


def check_distribution_arg(d, name: str) -> None:
    if not isinstance(d, Distribution):
        raise TypeError(f"{name} must be a torch.distributions.Distribution, got {type(d).__name__}")


def _check_lower_cholesky(tril: torch.Tensor, name: str) -> None:
    """Lower triangular with a positive diagonal (a Cholesky factor)."""
    if bool((torch.triu(tril, diagonal=1) != 0).any()):
        raise ValueError(f"{name} must be lower triangular (a Cholesky factor); its upper "
                         "triangle has non-zero entries")
    _check_positive_tensor(torch.diagonal(tril, dim1=-2, dim2=-1), f"{name}'s diagonal")


def check_positive_tensor(t: torch.Tensor, name: str, minimum: float = 0.0,
                           what: str = "positive") -> None:
    """Every entry of ``t`` finite and > ``minimum``; otherwise a ValueError naming ``name``."""
    bad = ~(torch.isfinite(t) & (t > minimum))
    if bool(bad.any()):
        worst = t[bad].reshape(-1)[0].item()
        raise ValueError(f"{name} must be {what} and finite everywhere; {int(bad.sum())} of "
                         f"{t.numel()} entries are not (e.g. {worst!r})")


def _check_square(matrix: torch.Tensor, name: str, d: int) -> None:
    if matrix.dim() < 2 or matrix.shape[-1] != d or matrix.shape[-2] != d:
        raise ValueError(f"{name} must have shape (..., {d}, {d}) (D = {d} from loc's last "
                         f"dimension), got {tuple(matrix.shape)}")


#: The former (private) name, imported across packages before it was public.
_check_positive_tensor = check_positive_tensor
