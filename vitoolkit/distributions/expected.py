"""The checked torch entry points of the two expectations every conjugate-exponential
ELBO of a mixture needs (the kernels are in :mod:`vitoolkit.expectations`)."""

from __future__ import annotations

import torch

from .. import expectations as _ex
from .checks import (
    _check_lower_cholesky,
    _check_positive_tensor,
    _check_square,
    as_param,
)

__all__ = ["expected_log_dirichlet", "expected_log_det_wishart"]


def expected_log_dirichlet(concentration: torch.Tensor) -> torch.Tensor:
    r"""E[log pi_k] under Dir(pi | alpha) = psi(alpha_k) - psi(sum_j alpha_j) (PRML eq. 10.66).

    Parameters
    ----------
    concentration : Tensor of shape (..., K), positive.

    Raises
    ------
    ValueError
        Naming ``concentration`` when an entry is not positive and finite (digamma of a
        non-positive number is a number, but not this expectation).
    """
    concentration = as_param(concentration, "concentration", min_ndim=1)
    _check_positive_tensor(concentration, "concentration")
    return _ex.expected_log_dirichlet_unchecked(concentration)


def expected_log_det_wishart(df: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    r"""E[log det Lambda] under W(Lambda | W, nu) (PRML eq. 10.65, B.81).

    sum_{i=1}^{D} psi((nu + 1 - i) / 2) + D log 2 + log det W.

    Parameters
    ----------
    df : Tensor of shape (...), nu > D - 1.
    scale_tril : Tensor of shape (..., D, D), Cholesky factor of W.

    Raises
    ------
    ValueError
        Naming ``df`` when some nu <= D - 1 (the Wishart is not defined there).
    """
    scale_tril = as_param(scale_tril, "scale_tril", min_ndim=2)
    d = scale_tril.shape[-1]
    _check_square(scale_tril, "scale_tril", d)
    _check_lower_cholesky(scale_tril, "scale_tril")
    df = as_param(df, "df", dtype=scale_tril.dtype).to(scale_tril.device)
    _check_positive_tensor(df, "df", d - 1, f"> D - 1 = {d - 1} (the Wishart degrees of freedom)")
    return _ex.expected_log_det_wishart_unchecked(df, scale_tril)
