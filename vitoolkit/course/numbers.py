"""Numbers as a reader wants them: rounded for the page, exact in ``summary.json``.

A tutorial's printed records and its claims' evidence are shown with at most four
significant digits (:func:`format_value`), arrays, lists and dicts included, nested;
the run's ``summary.json`` keeps every number at full precision
(:func:`to_jsonable`). JSON has no NaN or infinity, so ``summary.json`` stores a
non-finite float as the string ``"nan"``, ``"inf"`` or ``"-inf"`` (the file stays
valid JSON, and a reader sees the value rather than losing it); the printed page
shows ``nan``, ``inf``, ``-inf`` without quotes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["DIGITS", "format_value", "plain", "significant_digits", "to_jsonable"]

#: Significant digits of a printed number.
DIGITS = 4
#: Elements of a sequence shown before the rest is summarised as ``..., (N values)``.
MAX_ITEMS = 10


def plain(value: Any) -> Any:
    """``value`` with tensors, arrays and NumPy scalars turned into Python numbers and lists.

    Floats stay floats (NaN and infinities included), dict keys become strings and
    tuples become lists; anything else is returned as it is.
    """
    try:
        import torch

        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()] if value.ndim else plain(value.item())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_jsonable(value: Any) -> Any:
    """``value`` as JSON-ready Python values, at full precision.

    Tensors, arrays and NumPy scalars become Python numbers and lists (:func:`plain`);
    non-finite floats become the strings ``"nan"``, ``"inf"`` or ``"-inf"``, since JSON
    has no NaN: the summary stays valid JSON and a reader sees them rather than losing them.
    """
    value = plain(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    return value


def significant_digits(text: str) -> int:
    """The significant digits a printed number shows (``"0.01230"`` -> 4, ``"-1.5e-03"`` -> 2)."""
    mantissa = text.strip().lstrip("+-").lower().split("e")[0].replace(".", "")
    return len(mantissa.lstrip("0")) if mantissa.strip("0") else 1


def _float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = format(x, f".{DIGITS}g")
    if "e" in text and 10 ** DIGITS <= abs(x) < 1e6:
        # 12345.6 reads better as 12350 than as 1.235e+04 (still four significant digits).
        exponent = math.floor(math.log10(abs(x)))
        text = format(round(x, DIGITS - 1 - exponent), ".0f")
    return "0" if text == "-0" else text


def format_value(value: Any, *, nested: bool = False) -> str:
    """``value`` as a reader wants it printed: floats to at most four significant digits.

    Integers and booleans are shown exactly; NaN and infinities as ``nan``, ``inf``,
    ``-inf``; tensors and arrays as (nested) lists; sequences longer than
    ``MAX_ITEMS`` as their first elements followed by ``..., (N values)``; dicts as
    ``{'key': value}``. Strings inside a container are quoted, a string on its own is not.
    """
    value = plain(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        shown = [format_value(v, nested=True) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            shown.append(f"... ({len(value)} values)")
        return "[" + ", ".join(shown) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {format_value(v, nested=True)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return repr(value) if nested else value
    return repr(value) if nested else str(value)
