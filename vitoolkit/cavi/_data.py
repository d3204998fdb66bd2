"""The data checks the in-memory fit (:mod:`vitoolkit.cavi._base`) and the Dask fit
(:mod:`vitoolkit.cavi.distributed`) share: the (n, d) shape and the float64 overflow guard.

A module of their own, below both, so that neither imports the other for them.
"""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import NonFiniteError

_FLOAT_MAX = float(np.finfo(np.float64).max)


def check_shape(shape: tuple, name: str = "X", *, min_samples: int = 1) -> None:
    """An (n, d) data shape with d >= 1 and n >= ``min_samples`` (scikit-learn's wording)."""
    n, d = shape
    if d < 1:
        raise ValueError(f"{name} must have at least one feature: 0 feature(s) (shape={shape})"
                         " while a minimum of 1 is required.")
    if n < min_samples:
        raise ValueError(f"{name} has {n} sample(s) (n_samples={n}) but at least {min_samples} "
                         "are needed")


def check_scale(X: np.ndarray, name: str = "X", *, n_rows: int | None = None) -> None:
    """Refuse finite values (rows of an (m, d) array) whose second moments, summed over
    ``n_rows`` rows (default m), would overflow float64: a ``NonFiniteError`` naming ``name``."""
    if X.size == 0:
        return
    rows = X.shape[0] if n_rows is None else n_rows
    peak = max(float(X.max()), -float(X.min()))  # no |X| temporary (n x d) at n = 1e7
    limit = math.sqrt(_FLOAT_MAX / (16.0 * max(rows, 1) * X.shape[1]))
    if peak > limit:
        raise NonFiniteError(
            f"{name} has entries as large as {peak:.3g} in magnitude; with {rows} rows "
            f"their sums of squares overflow float64 (limit about {limit:.3g}); rescale {name} "
            "(e.g. sklearn.preprocessing.StandardScaler) before fitting")
