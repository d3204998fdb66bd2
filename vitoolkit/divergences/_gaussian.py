"""Read (mean, covariance) off the Gaussian distribution types, for closed forms."""

from __future__ import annotations

import torch
from torch.distributions import Independent, MultivariateNormal, Normal


def gaussian_params(d):
    """Return ``(loc (..., D), covariance (..., D, D))`` or ``None`` if ``d`` is not Gaussian.

    A scalar ``Normal`` is treated as a batch of 1-D Gaussians (D = 1).
    """
    if isinstance(d, MultivariateNormal):
        return d.loc, d.covariance_matrix
    if isinstance(d, Normal):
        return d.loc.unsqueeze(-1), d.scale.pow(2).unsqueeze(-1).unsqueeze(-1)
    if (isinstance(d, Independent) and isinstance(d.base_dist, Normal)
            and d.reinterpreted_batch_ndims == 1):
        return d.base_dist.loc, torch.diag_embed(d.base_dist.scale.pow(2))
    return None
