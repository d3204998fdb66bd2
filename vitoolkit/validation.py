"""The one validation layer behind every public function of the toolkit.

Each check takes the value and the *argument's name* and returns the value in
a canonical type, or raises an error whose message names the argument, shows
the value received and says what was expected:

- ``TypeError`` for a value of the wrong kind (a string for a number, a float
  for a count, a bool where a number is meant);
- ``ValueError`` for a value of the right kind outside its domain (a negative
  scale, NaN, a shape that does not fit);
- :class:`~vitoolkit.exceptions.ResourceLimitError` (a ``ValueError``) for a
  request that would need more memory than :func:`memory_limit`, raised before
  anything is allocated.

Nothing is coerced silently: ``True`` is not the number 1, ``2.0`` is not the
count 2, ``"3"`` is not a number, and an array of the wrong shape is never
reshaped. NumPy and torch scalars of the right kind are accepted.

This module imports only the standard library and NumPy; the torch-specific
checks import torch when called.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from typing import Iterable

import numpy as np

from .exceptions import ResourceLimitError

__all__ = [
    "renamed_argument",
    "check_num_samples",
    "check_bool",
    "check_int",
    "check_real",
    "check_positive",
    "check_probability",
    "check_choice",
    "check_seed",
    "check_finite",
    "as_float_array",
    "as_float_tensor",
    "check_shape",
    "memory_limit",
    "format_bytes",
    "EXTREME",
    "describe_inputs",
    "overflow_message",
    "overflow_cause",
    "all_finite",
    "check_finite_result",
    "check_memory",
    "MAX_SEED",
]

#: Largest seed accepted: torch's ``manual_seed`` and NumPy take unsigned 64-bit seeds.
MAX_SEED = 2**63 - 1

_ENV_LIMIT = "VITOOLKIT_MAX_MEMORY"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_)) or (
        type(value).__module__ == "torch" and getattr(value, "dtype", None) is not None
        and str(value.dtype) == "torch.bool"
    )


def _scalar(value):
    """A 0-d NumPy array or one-element 0-d tensor as a Python scalar; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if type(value).__module__ == "torch" and hasattr(value, "ndim") and value.ndim == 0:
        return value.item()
    return value


def check_bool(value, name: str) -> bool:
    """``True`` or ``False`` (NumPy bools too); ``0``, ``1`` and strings are refused."""
    value = _scalar(value)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_shown(value)}")
    return bool(value)


def check_int(value, name: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """An integer (Python, NumPy or 0-d tensor) within ``[minimum, maximum]``.

    Floats are refused even when whole (``2.0``): a count or an index written
    as a float is usually a computed value that happened to round.
    """
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise TypeError(f"{name} must be {expected}, got {_shown(value)} "
                        f"({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value}")
    return value


def check_real(value, name: str, *, minimum: float | None = None,
               maximum: float | None = None, strict_minimum: bool = False,
               strict_maximum: bool = False, allow_inf: bool = False) -> float:
    """A real number (int, float, NumPy or 0-d tensor scalar) within the given bounds.

    NaN is always refused; +-inf only with ``allow_inf``. Bools and strings are
    refused with a ``TypeError``.
    """
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_shown(value)} "
                        f"({type(value).__name__})")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float64's range, e.g. 10**400
        raise ValueError(f"{name} must be a finite number, got an integer of "
                         f"{len(str(abs(int(value))))} digits") from None
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (strict_minimum and value == minimum)):
        op = ">" if strict_minimum else ">="
        raise ValueError(f"{name} must be {op} {minimum}, got {value!r}")
    if maximum is not None and (value > maximum or (strict_maximum and value == maximum)):
        op = "<" if strict_maximum else "<="
        raise ValueError(f"{name} must be {op} {maximum}, got {value!r}")
    return value


def check_positive(value, name: str) -> float:
    """A finite real number > 0."""
    return check_real(value, name, minimum=0.0, strict_minimum=True)


def check_probability(value, name: str, *, open_interval: bool = False) -> float:
    """A real number in [0, 1] (or (0, 1) with ``open_interval``)."""
    return check_real(value, name, minimum=0.0, maximum=1.0, strict_minimum=open_interval,
                      strict_maximum=open_interval)


def check_choice(value, choices: Iterable[str], name: str) -> str:
    """``value`` (a str, or an enum member whose ``.value`` is a str) if it is one of ``choices``."""
    key = getattr(value, "value", value)
    choices = tuple(choices)
    if not isinstance(key, str) or key not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {_shown(value)}")
    return key


def check_seed(value, name: str = "seed", *, allow_none: bool = False) -> int | None:
    """An integer in [0, 2**63 - 1] (what torch and NumPy generators accept)."""
    if value is None and allow_none:
        return None
    return check_int(value, name, minimum=0, maximum=MAX_SEED)


def check_finite(array, name: str):
    """Raise a ``ValueError`` naming ``name`` if a NumPy array or tensor holds NaN or inf."""
    if type(array).__module__.startswith("torch"):
        import torch

        finite = torch.isfinite(array)
        if not bool(finite.all()):
            count = int((~finite).sum())
            raise ValueError(f"{name} contains {count} NaN or inf entries (of {array.numel()})")
        return array
    finite = np.isfinite(array)
    if not finite.all():
        count = int((~finite).sum())
        raise ValueError(f"{name} contains {count} NaN or inf entries (of {np.size(array)})")
    return array


def check_shape(shape, expected: tuple, name: str) -> None:
    """Compare ``shape`` with ``expected`` (``None`` entries match any size); never reshape."""
    shape = tuple(shape)
    ok = len(shape) == len(expected) and all(
        e is None or s == e for s, e in zip(shape, expected, strict=True))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {shape}")


def _kind_error(value, name: str, what: str) -> TypeError:
    return TypeError(f"{name} must be {what}, got {type(value).__name__}")


def _check_ndim(shape: tuple, ndim, name: str) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``len(shape)`` is ``ndim`` (or one of them)."""
    if ndim is None:
        return
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if len(shape) not in allowed:
        raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                         f"got shape {tuple(shape)}")


def as_float_array(value, name: str, *, ndim: int | Iterable[int] | None = None,
                   finite: bool = True) -> np.ndarray:
    """A real, dense float64 NumPy array (tensors are detached and copied to the CPU).

    Refuses strings, bools, complex values, object arrays and sparse matrices
    with a ``TypeError``; a wrong rank or (with ``finite``) NaN/inf with a
    ``ValueError``.
    """
    if hasattr(value, "tocsr") or type(value).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} must be a dense array; sparse input is not supported "
                        f"(got {type(value).__name__}); convert with .toarray()")
    if type(value).__module__.startswith("torch"):
        if getattr(value, "layout", None) is not None and str(value.layout) != "torch.strided":
            raise TypeError(f"{name} must be a dense tensor; sparse input is not supported "
                            f"(got layout {value.layout}); convert with .to_dense()")
        value = value.detach().cpu().numpy()
    if value is None or isinstance(value, (str, bytes)):
        raise _kind_error(value, name, "an array of real numbers")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of real numbers: {err}") from None
    if arr.dtype == object:
        # Only genuine real numbers may be converted: astype would turn None into NaN
        # and True into 1.0 silently.
        if not all(isinstance(v, numbers.Real) and not _is_bool(v) for v in arr.reshape(-1)):
            raise TypeError(f"{name} must be an array of real numbers, got entries of "
                            f"mixed or non-numeric type") from None
        arr = arr.astype(np.float64)
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold real numbers, got a boolean array")
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must hold real numbers, got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    _check_ndim(arr.shape, ndim, name)
    if finite:
        check_finite(arr, name)
    return arr


def as_float_tensor(value, name: str, *, dtype=None, ndim: int | Iterable[int] | None = None,
                    finite: bool = True):
    """A real floating torch tensor (``dtype`` default: the torch default dtype).

    Same refusals as :func:`as_float_array`. A tensor that already has the
    dtype is returned as it is (not copied), detached only if it requires grad.
    """
    import torch

    if dtype is None:
        dtype = torch.get_default_dtype()
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got complex dtype {value.dtype}")
        if value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got a boolean tensor")
        if value.layout != torch.strided:
            raise TypeError(f"{name} must be a dense tensor; sparse input is not supported "
                            f"(got layout {value.layout}); convert with .to_dense()")
        t = value.detach() if value.requires_grad else value
        t = t.to(dtype)
    else:
        t = torch.from_numpy(as_float_array(value, name, finite=False)).to(dtype)
    _check_ndim(tuple(t.shape), ndim, name)
    if finite:
        check_finite(t, name)
    return t


def memory_limit() -> int:
    """Bytes one request may allocate: ``$VITOOLKIT_MAX_MEMORY`` if set, else half the RAM.

    ``VITOOLKIT_MAX_MEMORY`` takes a number of bytes with an optional K/M/G/T
    suffix (powers of 1024), e.g. ``VITOOLKIT_MAX_MEMORY=2G``.
    """
    text = os.environ.get(_ENV_LIMIT, "").strip()
    if text:
        units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        scale = units.get(text[-1].upper(), 1)
        digits = text[:-1] if text[-1].upper() in units else text
        try:
            return int(float(digits) * scale)
        except ValueError:
            raise ValueError(f"{_ENV_LIMIT} must be a size such as 4G or 500M, "
                             f"got {text!r}") from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 4 * 2**30


def format_bytes(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps the figure at least 1."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def check_memory(nbytes: int, name: str, value, what: str = "", *,
                 advice: str | None = None) -> None:
    """Refuse, before allocating, a request that needs ``nbytes`` (a Python int) of memory.

    ``name=value`` is the argument that sets the size; ``what`` says what would
    be allocated; ``advice`` replaces the closing "use a smaller <name>". Compute
    ``nbytes`` with Python integers so it cannot overflow.
    """
    limit = memory_limit()
    if nbytes > limit:
        detail = f" for {what}" if what else ""
        raise ResourceLimitError(
            f"{name}={_shown(value)} would need {format_bytes(nbytes)}{detail}, more than the "
            f"limit of {format_bytes(limit)} (half the RAM, or ${_ENV_LIMIT}); "
            f"{advice or f'use a smaller {name}'}")


def renamed_argument(new_value, old_value, new_name: str, old_name: str, owner: str, *,
                     stacklevel: int = 3):
    """The value of an argument renamed from ``old_name`` to ``new_name``: ``old_value`` (with a
    ``DeprecationWarning`` naming both) when the caller still passes the old keyword, else
    ``new_value``. ``stacklevel`` 3 points at the caller of the function that calls this."""
    if old_value is None:
        return new_value
    warnings.warn(f"{owner}({old_name}=...) is deprecated: the prior's standard deviation is "
                  f"{new_name} throughout the package", DeprecationWarning, stacklevel=stacklevel)
    return old_value


def check_num_samples(num_samples, name: str = "num_samples", *, minimum: int = 1,
                      values_per_sample: int | None = None, copies: int = 1) -> int:
    """A number of Monte Carlo draws: an integer >= ``minimum`` (2 where a standard error is
    computed from the draws), the one check every sampler of the package runs.

    With ``values_per_sample``, also refuse (before anything is allocated, a
    :class:`~vitoolkit.exceptions.ResourceLimitError` naming ``name``) a count whose
    ``copies`` float64 arrays of (num_samples, values_per_sample) exceed the memory limit.
    """
    n = check_int(num_samples, name, minimum=minimum)
    if values_per_sample is not None:
        per_sample = max(1, int(values_per_sample))
        check_memory(8 * copies * n * per_sample, name, n,
                     f"{copies} float64 arrays of {n} x {per_sample} values")
    return n


# -- results that overflow: name the inputs that explain it --------------------------

#: An input whose magnitude exceeds this (or a scale below its inverse) is named as the cause
#: when a result overflows: the square of a number above ~1.3e154 is infinite in float64, and
#: sums, products with scores and divisions by a scale take the margin down from there.
EXTREME = 1e100


def _range(t) -> str:
    t = t.detach()
    if t.numel() == 1:
        return f"= {t.reshape(()).item():.3g}"
    return f"in [{t.min().item():.3g}, {t.max().item():.3g}]"


def _why(name: str, t) -> str | None:
    """"name is too large (...)" or "name is too small (...)" when t is extreme, else None."""
    import torch

    t = t.detach().to(torch.float64).abs()
    if t.numel() == 0:
        return None
    if bool((t > EXTREME).any()):
        return f"{name} is too large (magnitude up to {t.max().item():.3g})"
    if "scale" in name and "log" not in name and bool((t < 1 / EXTREME).any()):
        return f"{name} is too small (down to {t.min().item():.3g})"
    return None


def describe_inputs(inputs: dict) -> tuple[str, list[str]]:
    """("name in [lo, hi], ...", one phrase per input extreme enough to explain an overflow)."""
    import torch

    inputs = {k: torch.as_tensor(v) for k, v in inputs.items()}
    text = ", ".join(f"{k} {_range(v)}" for k, v in inputs.items() if v.numel())
    return text, [why for k, v in inputs.items() if (why := _why(k, v))]


def overflow_cause(culprits: list[str]) -> str:
    if not culprits:
        return "the inputs are too large (or a scale too small) for float64 arithmetic"
    return f"{' and '.join(culprits)} for float64 arithmetic (largest finite number 1.8e+308)"


def overflow_message(what: str, values, inputs: dict) -> str:
    """Why ``values`` (what was computed) are not finite, naming the inputs that explain it."""
    import torch

    bad = sum(int((~torch.isfinite(v)).sum()) for v in values)
    total = sum(v.numel() for v in values)
    text, culprits = describe_inputs(inputs)
    return (f"{what}: {bad} of {total} values are not finite in float64 with {text}: "
            f"{overflow_cause(culprits)}; rescale the problem so that its numbers are of moderate size")


def all_finite(values) -> bool:
    """Whether every entry of the tensors ``values`` is finite (a finite sum proves it cheaply)."""
    import torch

    return all(math.isfinite(v.detach().sum().item()) or bool(torch.isfinite(v).all())
               for v in values)


def check_finite_result(values, what: str, inputs: dict):
    """``values`` (a tensor or a tuple of them) if every entry is finite, else a ValueError
    naming the inputs (a dict name -> tensor) whose size explains the overflow."""
    import torch

    group = (values,) if isinstance(values, torch.Tensor) else tuple(values)
    if all_finite(group):
        return values
    raise ValueError(overflow_message(what, group, inputs))
