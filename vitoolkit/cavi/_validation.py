"""Input checks shared by the CAVI estimators: every message names the argument."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "as_data",
    "check_positive",
    "check_int",
    "check_random_state",
    "check_features",
]


def as_data(X, name: str = "X", *, min_samples: int = 1) -> np.ndarray:
    """Return ``X`` as a float64 array of shape (n, d); (n,) becomes (n, 1).

    Raises ``ValueError`` naming ``name`` for a wrong rank, too few rows, or a
    NaN/inf entry, so bad data never reaches a NaN deep inside an update.
    """
    try:
        import torch

        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array of shape (n,) or (n, d): {err}") from err
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, d), got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature, got shape {arr.shape}")
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} samples but at least {min_samples} are needed"
        )
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise ValueError(
            f"{name} contains NaN or inf ({int((~finite).sum())} entries, first at row "
            f"{int(bad[0])}, column {int(bad[1])}); remove or impute them before fitting"
        )
    return np.ascontiguousarray(arr)


def check_features(X: np.ndarray, n_features: int, name: str = "X") -> None:
    """Raise when ``X`` (n, d) does not have the ``n_features`` the model was fitted on."""
    if X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features but the model was fitted on {n_features}; "
            f"expected shape (n, {n_features})"
        )


def check_positive(value, name: str, *, allow_none: bool = False) -> float | None:
    """A finite, strictly positive real number, else a ``ValueError`` naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive real number, got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return value


def check_int(value, name: str, minimum: int) -> int:
    """An integer ``>= minimum``, else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_random_state(random_state) -> np.random.RandomState:
    """scikit-learn's convention: None, an int or a ``RandomState`` (shared with sklearn so
    the same seed gives the same k-means initialisation)."""
    from sklearn.utils import check_random_state as _sk_check

    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(random_state.integers(2**32 - 1))
    try:
        return _sk_check(random_state)
    except ValueError as err:
        raise ValueError(
            f"random_state must be None, an int, a numpy RandomState or Generator, "
            f"got {random_state!r}"
        ) from err
