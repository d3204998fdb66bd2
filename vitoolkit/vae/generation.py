r"""Sampling a trained VAE in two stages, and measuring what the samples look like.

A draw of the generative model is ancestral: z ~ p(z), then x ~ p(x | z)
(Kingma & Welling 2013, section 2.1). The two stages answer different
questions and are kept apart here:

- "sample z" varies the *content*: each z decodes to a different mean E[x | z];
- "sample x given z" adds the decoder's per-pixel noise around that mean.

The law of total variance splits the pixel variance of the model's samples
into the two sources,

.. math::

    \mathrm{Var}[x_d] = \mathrm{Var}_z\big(E[x_d \mid z]\big) + E_z\big[\mathrm{Var}(x_d \mid z)\big],

and :func:`variance_decomposition` estimates both parts from the same draws of z.
:func:`image_roughness` (squared differences between neighbouring pixels) and
:func:`nearest_distance` (Euclidean distance to the closest data image) put
numbers on "sharp" and "looks like the data"; :func:`mean_pairwise_distance`
and :func:`grid_neighbour_distance` on "alike" and "changes smoothly".
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..distributions import sample as _sample
from ..validation import check_int

__all__ = [
    "AncestralSamples",
    "VarianceDecomposition",
    "ancestral_samples",
    "variance_decomposition",
    "image_roughness",
    "nearest_distance",
    "mean_pairwise_distance",
    "grid_neighbour_distance",
]


class AncestralSamples(NamedTuple):
    """z ~ p(z), the decoder means E[x | z], variances Var(x | z) and draws x ~ p(x | z)."""

    z: torch.Tensor  # (num_z, latent_dim)
    means: torch.Tensor  # (num_z, data_dim)
    variances: torch.Tensor  # (num_z, data_dim)
    draws: torch.Tensor  # (num_x, num_z, data_dim): num_x draws of x for each z


def ancestral_samples(model, num_z: int, num_x: int = 1, *, generator=None) -> AncestralSamples:
    """Draw ``num_z`` codes from the prior and ``num_x`` images from p(x | z) for each.

    Parameters
    ----------
    model : VAE
        Any model with ``prior`` (a distribution over z) and ``decode(z)`` returning
        a distribution with ``mean`` and ``variance``.
    num_z, num_x : int >= 1
    generator : torch.Generator, optional

    Returns
    -------
    AncestralSamples (tensors without gradient, in the model's dtype).
    """
    num_z = check_int(num_z, "num_z", minimum=1)
    num_x = check_int(num_x, "num_x", minimum=1)
    ref = next(model.parameters())
    latent_dim = model.prior.event_shape[-1]
    with torch.no_grad():
        z = torch.randn((num_z, latent_dim), generator=generator, device=ref.device,
                        dtype=ref.dtype)
        dist = model.decode(z)
        draws = torch.stack([_sample(dist, generator=generator) for _ in range(num_x)])
        return AncestralSamples(z, dist.mean, dist.variance, draws)


class VarianceDecomposition(NamedTuple):
    """Pixel variance of the samples, averaged over pixels: total = between_z + within_z."""

    between_z: float  # mean_d Var_z(E[x_d | z]): what sampling z contributes
    within_z: float  # mean_d E_z[Var(x_d | z)]: what the decoder's pixel noise contributes
    total: float  # their sum, mean_d Var[x_d]

    @property
    def noise_fraction(self) -> float:
        """Share of the samples' variance that is pixel noise given z."""
        return self.within_z / self.total


def variance_decomposition(means, variances) -> VarianceDecomposition:
    """Law of total variance from decoder means and variances at draws z_1..z_m of the prior.

    Parameters
    ----------
    means, variances : Tensor of shape (m, data_dim)
        E[x | z_i] and Var(x | z_i), e.g. from :func:`ancestral_samples`.

    Returns
    -------
    VarianceDecomposition (floats, averaged over pixels; the between-z part uses
    the unbiased 1/(m - 1) sample variance).
    """
    means = torch.as_tensor(means).detach().to(torch.float64)
    variances = torch.as_tensor(variances).detach().to(torch.float64)
    if means.ndim != 2 or means.shape != variances.shape or means.shape[0] < 2:
        raise ValueError(f"means and variances must both have shape (m >= 2, data_dim), got "
                         f"{tuple(means.shape)} and {tuple(variances.shape)}")
    between = float(means.var(0).mean())
    within = float(variances.mean())
    return VarianceDecomposition(between, within, between + within)


def image_roughness(images, image_shape=None) -> torch.Tensor:
    """Mean squared difference between horizontally and vertically adjacent pixels, per image.

    A sharp stroke on a blank background and independent pixel noise both score
    high; a blurred image scores low. Compare against the data's own value.

    Parameters
    ----------
    images : Tensor of shape (n, H*W)
    image_shape : (H, W), optional (default square)

    Returns
    -------
    Tensor of shape (n,), float64.
    """
    x = torch.as_tensor(images).detach().to(torch.float64)
    if x.ndim != 2:
        raise ValueError(f"images must have shape (n, H*W), got {tuple(x.shape)}")
    if image_shape is None:
        side = int(round(x.shape[1] ** 0.5))
        image_shape = (side, side)
    h, w = (int(s) for s in image_shape)
    if h * w != x.shape[1]:
        raise ValueError(f"image_shape {(h, w)} does not match {x.shape[1]} pixels per image")
    img = x.reshape(-1, h, w)
    dx = (img[:, :, 1:] - img[:, :, :-1]).pow(2).flatten(1)
    dy = (img[:, 1:, :] - img[:, :-1, :]).pow(2).flatten(1)
    return torch.cat([dx, dy], dim=1).mean(1)


def nearest_distance(samples, data, *, batch_size: int = 1024) -> torch.Tensor:
    """Euclidean distance from each row of ``samples`` (m, D) to its nearest row of ``data`` (n, D).

    Returns a float64 tensor of shape (m,).
    """
    s = torch.as_tensor(samples).detach().to(torch.float64)
    d = torch.as_tensor(data).detach().to(torch.float64)
    if s.ndim != 2 or d.ndim != 2 or s.shape[1] != d.shape[1] or d.shape[0] < 1:
        raise ValueError(f"samples (m, D) and data (n >= 1, D) must share D, got "
                         f"{tuple(s.shape)} and {tuple(d.shape)}")
    out = [torch.cdist(s[i:i + batch_size], d).min(dim=1).values
           for i in range(0, s.shape[0], batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def mean_pairwise_distance(images) -> float:
    """Mean Euclidean distance over all pairs of distinct rows of ``images`` (n >= 2, D)."""
    x = torch.as_tensor(images).detach().to(torch.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"images must have shape (n >= 2, D), got {tuple(x.shape)}")
    n = x.shape[0]
    return float(torch.cdist(x, x).sum() / (n * (n - 1)))


def grid_neighbour_distance(images, rows: int, cols: int) -> float:
    """Mean Euclidean distance between horizontally or vertically adjacent images of a grid.

    Parameters
    ----------
    images : Tensor of shape (rows * cols, D), row-major (e.g. a decoded latent grid)
    rows, cols : int >= 1 (at least one of them >= 2)
    """
    x = torch.as_tensor(images).detach().to(torch.float64)
    if x.ndim != 2 or x.shape[0] != rows * cols or max(rows, cols) < 2:
        raise ValueError(f"images must have shape ({rows} * {cols}, D) with a grid of at least two "
                         f"cells, got {tuple(x.shape)}")
    t = x.reshape(rows, cols, -1)
    pairs = [(t[:, 1:] - t[:, :-1]).norm(dim=-1).flatten(), (t[1:] - t[:-1]).norm(dim=-1).flatten()]
    return float(torch.cat(pairs).mean())
