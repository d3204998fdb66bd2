"""Argument checks specific to fitting, built on :mod:`vitoolkit.validation`.

Only what the generic primitives cannot say: "a torch distribution with event
shape (D,)", "one (lo, hi) per dimension", "a torch.Generator", and the memory a
grid or a set of draws would take (refused before it is allocated).
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..validation import as_float_tensor, check_memory, check_real

__all__ = ["check_target", "check_bounds", "check_generator", "check_grid_memory",
           "check_draws_memory", "as_vector", "F64"]

F64 = torch.float64
#: float64 arrays of the grid's or the draws' length a fit keeps alive at once (points,
#: log p, log q, weights and the autograd buffers of an objective evaluation), per point
_ARRAYS_PER_POINT = 12


def check_target(target, name: str = "target", *, vector_event: bool = False) -> int:
    """The dimension D of an unbatched distribution with event shape () (D = 1) or (D,).

    With ``vector_event`` only event shape (D,) is accepted.
    """
    if not isinstance(target, Distribution):
        raise TypeError(f"{name} must be a torch.distributions.Distribution, got "
                        f"{type(target).__name__}")
    event = tuple(target.event_shape)
    if tuple(target.batch_shape) != ():
        raise ValueError(f"{name} must be unbatched, got batch_shape {tuple(target.batch_shape)}"
                         f" (event shape {event}); fit one target at a time")
    if vector_event and len(event) != 1:
        raise ValueError(f"{name} must have event shape (D,), got event shape {event}")
    if len(event) > 1 or (len(event) == 1 and event[0] < 1):
        raise ValueError(f"{name} must have event shape () or (D,), got event shape {event}")
    return 1 if event == () else int(event[0])


def check_bounds(bounds, dim: int, name: str = "bounds") -> list:
    """``bounds`` as a list of ``dim`` pairs of finite floats (lo, hi) with lo < hi."""
    if not _sized(bounds):
        raise TypeError(f"{name} must be a list of (lo, hi) pairs, one per dimension, got "
                        f"{type(bounds).__name__}")
    if len(bounds) != dim:
        raise ValueError(f"{name} must give one (lo, hi) per dimension (D={dim}), got "
                         f"{len(bounds)} entries: {bounds!r}")
    out = []
    for i, pair in enumerate(bounds):
        if not _sized(pair) or len(pair) != 2:
            raise TypeError(f"{name}[{i}] must be a pair (lo, hi), got {pair!r}")
        lo = check_real(pair[0], f"{name}[{i}][0]")
        hi = check_real(pair[1], f"{name}[{i}][1]")
        if not hi > lo:
            raise ValueError(f"{name}[{i}] must have lo < hi, got ({lo}, {hi})")
        out.append((lo, hi))
    return out


def _sized(value) -> bool:
    """A sequence with a length (not a string, not a 0-d array)."""
    if isinstance(value, (str, bytes)):
        return False
    try:
        len(value)
    except TypeError:
        return False
    return True


def check_generator(generator, name: str = "generator"):
    """``None`` or a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def check_grid_memory(num_points: int, dim: int, name: str = "num_points") -> None:
    """Refuse a grid of ``num_points ** dim`` points that would not fit in memory."""
    check_memory(num_points**dim * (dim + _ARRAYS_PER_POINT) * 8, name, num_points,
                 f"a {dim}-D grid of {num_points}^{dim} points")


#: D x D float64 matrices a fit may hold at once, by family: measured with resident memory
#: (/proc/self/status VmHWM) for D = 1500 and 40 L-BFGS steps, 71 (full) and 5 to 16 (diagonal)
#: beyond the interpreter's fixed ~180 MiB, and rounded up. L-BFGS keeps 20 pairs of
#: parameter-sized vectors (a full covariance's D x D factor each), besides the target's moment
#: covariance, the starts' Cholesky factors, the gradient and the fitted covariance.
_MATRICES_PER_FIT = {"full": 96, "diagonal": 16}


class _Shown(str):
    """A description shown as it is in an error message (no quotes)."""

    def __repr__(self) -> str:
        return str(self)


def check_dimension_memory(dim: int, family: str) -> None:
    """Refuse a target whose dimension D needs more memory than allowed for its D x D matrices."""
    need = _MATRICES_PER_FIT[family] * dim * dim * 8
    check_memory(need, "target", _Shown(f"<a {dim}-dimensional distribution>"),
                 f"the D x D matrices of a family={family!r} fit (D = {dim})",
                 advice="fit a lower-dimensional target"
                 + (" or use family='diagonal'" if family == "full" else ""))


def check_draws_memory(num: int, dim: int, name: str, what: str = "the draws") -> None:
    """Refuse ``num`` draws in ``dim`` dimensions that would not fit in memory."""
    check_memory(num * (2 * dim + _ARRAYS_PER_POINT) * 8, name, num, f"{what} ({num} x {dim})")


def as_vector(value, name: str, dim: int, *, scalar_event: bool = False) -> torch.Tensor:
    """A finite float64 vector of shape (D,); for a scalar-event target also shape () or (1,).

    Never reshaped otherwise: a wrong shape is an error naming ``name``.
    """
    t = as_float_tensor(value, name, dtype=F64)
    if scalar_event and tuple(t.shape) in ((), (1,)):
        return t.reshape(1)
    if tuple(t.shape) != (dim,):
        want = "() or (1,)" if scalar_event else f"({dim},)"
        raise ValueError(f"{name} must have shape {want} to match the target's dimension D={dim}, "
                         f"got shape {tuple(t.shape)}")
    return t
