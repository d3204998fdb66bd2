r"""Exact first and second moments of a target, when they are known in closed form.

A Gaussian fitted by forward KL is the moment-matched Gaussian (Bishop PRML
10.1.2; PRML 10.7, eq. 10.183-10.187, for any exponential family): the minimiser of
:math:`\mathrm{KL}(p \,\|\, q)` over :math:`q = \mathcal N(m, S)` is
:math:`m = E_p[x]`, :math:`S = \mathrm{Cov}_p[x]` (the diagonal of it for a mean-field
q). This module supplies those moments: from the Gaussian types, from a mixture of
Gaussians by the law of total covariance,

.. math::

    E[x] = \sum_k w_k m_k, \qquad
    \mathrm{Cov}[x] = \sum_k w_k (S_k + m_k m_k^\top) - E[x] \, E[x]^\top,

or from a distribution that exposes ``mean`` and ``covariance_matrix`` itself
(:class:`~vitoolkit.fitting.Banana`, :class:`~vitoolkit.fitting.Ring`).
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution, MixtureSameFamily

from ..divergences import gaussian_params
from ._checks import check_target

__all__ = ["target_moments"]


def _as_event_matrix(target, mean, cov):
    """Shape the moments as (D,), (D, D) whatever the target's event shape."""
    d = 1 if tuple(target.event_shape) == () else int(target.event_shape[0])
    return mean.reshape(d).to(torch.float64), cov.reshape(d, d).to(torch.float64)


def target_moments(target: Distribution):
    """``(mean (D,), covariance (D, D))`` in float64 if known exactly, else ``None``.

    Parameters
    ----------
    target : torch.distributions.Distribution
        Unbatched, event shape () or (D,).
    """
    check_target(target, "target")
    params = gaussian_params(target)
    if params is not None:
        return _as_event_matrix(target, *params)
    if isinstance(target, MixtureSameFamily):
        comp = gaussian_params(target.component_distribution)
        if comp is None:
            return None
        locs, covs = comp  # (K, D), (K, D, D)
        w = target.mixture_distribution.probs.to(locs.dtype)
        mean = (w.unsqueeze(-1) * locs).sum(-2)
        second = (w[..., None, None] * (covs + locs.unsqueeze(-1) * locs.unsqueeze(-2))).sum(-3)
        cov = second - mean.unsqueeze(-1) * mean.unsqueeze(-2)
        return _as_event_matrix(target, mean, cov)
    try:
        mean = target.mean
        cov = target.covariance_matrix
    except (AttributeError, NotImplementedError):
        return None
    return _as_event_matrix(target, torch.as_tensor(mean), torch.as_tensor(cov))
