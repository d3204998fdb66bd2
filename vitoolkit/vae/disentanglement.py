r"""How single latent units line up with known generating factors.

:func:`mutual_information_gap` and :func:`factor_correlation` (Chen et al. 2018, "Isolating
sources of disentanglement in VAEs", section 5, eq. (6), with the histogram estimator of
Locatello et al. 2019, "Challenging common assumptions in the unsupervised learning of
disentangled representations", appendix).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..validation import as_float_array, check_int
from ._model_inputs import _check_inputs, _eval_mode
from .latent import latent_means

__all__ = ["FactorScores", "factor_correlation", "factor_scores", "mutual_information_gap",
           "mutual_information_matrix"]


class FactorScores(NamedTuple):
    """How latent units line up with known factors (see :func:`mutual_information_gap`)."""

    mig: float  # mean over factors of the normalised gap, in [0, 1]
    gap_per_factor: torch.Tensor  # (num_factors,)
    mutual_information: torch.Tensor  # (latent_dim, num_factors), nats
    factor_entropy: torch.Tensor  # (num_factors,), nats
    correlation: torch.Tensor  # (latent_dim, num_factors), |Pearson correlation|


# -- factors and disentanglement --------------------------------------------------


def _as_matrix(a, name: str, n: int | None = None) -> np.ndarray:
    a = as_float_array(a, name, ndim=(1, 2))
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (n, k), got {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows like codes, got {a.shape[0]}")
    if a.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows, got {a.shape[0]}")
    return a


def _discretise(column: np.ndarray, bins: int) -> np.ndarray:
    """Integer labels: the distinct values if there are at most ``bins``, else equal-width bins."""
    values, labels = np.unique(column, return_inverse=True)
    if len(values) <= bins:
        return labels
    edges = np.histogram_bin_edges(column, bins=bins)
    return np.digitize(column, edges[1:-1])


def _entropy(labels: np.ndarray) -> float:
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in I(a; b) in nats of two integer label vectors, from their contingency table."""
    nb = b.max() + 1
    joint = np.bincount(a * nb + b, minlength=(a.max() + 1) * nb).reshape(-1, nb) / len(a)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mutual_information_matrix(codes, factors, *, bins: int = 20):
    r"""Plug-in mutual information between every latent unit and every factor.

    Each unit is discretised into ``bins`` equal-width bins (Locatello et al.
    2019, appendix: 20 bins); a factor with at most ``bins`` distinct values
    (such as a shape class) is used as it is, otherwise binned the same way.
    I(z_j; v_k) = sum p(a, b) log p(a, b) / (p(a) p(b)) over the histogram.

    Parameters
    ----------
    codes : Tensor or array of shape (n, latent_dim)
        Usually the encoder means.
    factors : Tensor or array of shape (n, num_factors)
    bins : int >= 2

    Returns
    -------
    mutual_information : Tensor of shape (latent_dim, num_factors), float64, nats
    factor_entropy : Tensor of shape (num_factors,), float64, H(v_k) in nats
    """
    bins = check_int(bins, "bins", minimum=2)
    c = _as_matrix(codes, "codes")
    f = _as_matrix(factors, "factors", c.shape[0])
    code_labels = [_discretise(c[:, j], bins) for j in range(c.shape[1])]
    factor_labels = [_discretise(f[:, k], bins) for k in range(f.shape[1])]
    mi = np.array([[_mutual_information(a, b) for b in factor_labels] for a in code_labels])
    ent = np.array([_entropy(b) for b in factor_labels])
    return torch.as_tensor(mi), torch.as_tensor(ent)


def factor_correlation(codes, factors) -> torch.Tensor:
    """Absolute Pearson correlation between every latent unit and every factor.

    A constant column gives correlation 0 (it explains nothing).

    Parameters
    ----------
    codes : Tensor or array of shape (n, latent_dim)
    factors : Tensor or array of shape (n, num_factors)

    Returns
    -------
    Tensor of shape (latent_dim, num_factors), float64, values in [0, 1].
    """
    c = _as_matrix(codes, "codes")
    f = _as_matrix(factors, "factors", c.shape[0])
    c = c - c.mean(0)
    f = f - f.mean(0)
    nc, nf = np.linalg.norm(c, axis=0), np.linalg.norm(f, axis=0)
    denom = np.outer(nc, nf)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, (c.T @ f) / np.where(denom > 0, denom, 1.0), 0.0)
    return torch.as_tensor(np.clip(np.abs(r), 0.0, 1.0))


def mutual_information_gap(codes, factors, *, bins: int = 20) -> FactorScores:
    r"""The mutual information gap (MIG) of Chen et al. (2018, section 5, eq. (6)).

    MIG = 1/K sum_k (I(z_{j(k)}; v_k) - I(z_{j'(k)}; v_k)) / H(v_k), with
    j(k) and j'(k) the units sharing the most and second most information with
    factor v_k. It is 1 when each factor is captured by exactly one unit and 0
    when the best two units know equally much; both the mutual information and
    H(v_k) use the histogram estimator of :func:`mutual_information_matrix`.

    Parameters
    ----------
    codes : Tensor or array of shape (n, latent_dim), latent_dim >= 2
    factors : Tensor or array of shape (n, num_factors), no constant column
    bins : int >= 2

    Returns
    -------
    FactorScores
    """
    mi, ent = mutual_information_matrix(codes, factors, bins=bins)
    if mi.shape[0] < 2:
        raise ValueError(f"codes must have at least 2 units for a gap, got {mi.shape[0]}")
    if bool((ent <= 0).any()):
        bad = torch.nonzero(ent <= 0).flatten().tolist()
        raise ValueError(f"factors {bad} are constant (zero entropy); MIG is undefined")
    top2 = torch.topk(mi, 2, dim=0).values
    gap = (top2[0] - top2[1]) / ent
    return FactorScores(float(gap.mean()), gap, mi, ent, factor_correlation(codes, factors))


def factor_scores(model, x, factors, *, bins: int = 20, y=None) -> FactorScores:
    """:func:`mutual_information_gap` of the encoder means of ``x`` against ``factors``.

    Parameters
    ----------
    model : VAE-like module
    x : Tensor of shape (n, data_dim)
    factors : Tensor or array of shape (n, num_factors)
    bins : int >= 2
    y : Tensor of shape (n, conditional_dim), optional

    Returns
    -------
    FactorScores
    """
    x, y = _check_inputs(model, x, y, needs=("encode",))
    with _eval_mode(model):
        codes = latent_means(model, x, y)
    return mutual_information_gap(codes, factors, bins=bins)
