r"""Which latent units of a trained VAE carry information.

- :func:`kl_per_dimension` and :func:`active_units`: Burda, Grosse & Salakhutdinov (2015),
  "Importance weighted autoencoders", section 5.2.
- :func:`check_posterior_collapse`: units whose posterior equals the prior for (almost)
  every input (Lucas et al. 2019, "Don't blame the ELBO!", Definition 1).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.distributions import Normal

from ..divergences import kl_divergence
from ..validation import check_real
from ._model_inputs import _check_inputs, _diag_normal, _eval_mode
from .latent import encode_batched, latent_means

__all__ = ["ACTIVITY_THRESHOLD", "ActiveUnits", "CollapseReport", "active_units", "check_posterior_collapse",
           "kl_per_dimension"]


#: Burda et al.'s (2015, section 5.2) activity threshold.
ACTIVITY_THRESHOLD = 0.01


class ActiveUnits(NamedTuple):
    """``count`` active units; ``activity`` (latent_dim,) = Cov_x(E_q[u]); ``mask`` = active."""

    count: int
    activity: torch.Tensor
    mask: torch.Tensor


class CollapseReport(NamedTuple):
    """Per-unit evidence of posterior collapse (see :func:`check_posterior_collapse`)."""

    collapsed: bool  # every unit collapsed: the decoder ignores z
    collapsed_units: torch.Tensor  # (latent_dim,) bool, (epsilon, delta)-collapsed
    inactive_units: torch.Tensor  # (latent_dim,) bool, activity below the threshold
    mean_kl: torch.Tensor  # (latent_dim,) average KL(q(z_d|x) || p(z_d)) in nats
    activity: torch.Tensor  # (latent_dim,) Cov_x(E_q[z_d])
    fraction_collapsed: float


# -- information per unit -------------------------------------------------------


def kl_per_dimension(model, x, y=None) -> torch.Tensor:
    r"""KL(q(z_d | x) || p(z_d)) for every example and latent unit, in nats.

    For the diagonal Gaussian posterior and N(0, 1) prior each term is
    1/2 (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2) (Kingma & Welling 2013,
    Appendix B); the sum over d is the KL term of the ELBO. Computed with the
    shared core's :func:`vitoolkit.divergences.kl_divergence`.

    Parameters
    ----------
    model : VAE-like module
    x : Tensor of shape (n, data_dim)
    y : Tensor of shape (n, conditional_dim), optional

    Returns
    -------
    Tensor of shape (n, latent_dim); average over rows for the per-unit rate.
    """
    x, y = _check_inputs(model, x, y)
    with _eval_mode(model):
        loc, scale = encode_batched(model, x, y)
        prior = _diag_normal(model.prior)
        return kl_divergence(Normal(loc, scale), Normal(prior.loc, prior.scale))


def active_units(model, x, threshold: float = ACTIVITY_THRESHOLD, y=None) -> ActiveUnits:
    r"""Count latent units whose posterior mean varies across the data.

    Unit u is active when A_u = Cov_x(E_{q(u|x)}[u]) > threshold, with 0.01 the
    threshold of Burda et al. (2015, section 5.2, eq. (22)); an inactive unit
    gives (nearly) the same posterior for every x, so it carries no information
    about x. The covariance is the unbiased sample variance over the rows of
    ``x``.

    Parameters
    ----------
    model : VAE-like module
    x : Tensor of shape (n, data_dim), n >= 2
    threshold : float >= 0
    y : Tensor of shape (n, conditional_dim), optional

    Returns
    -------
    ActiveUnits
    """
    threshold = check_real(threshold, "threshold", minimum=0.0)
    x, y = _check_inputs(model, x, y, needs=("encode",), min_rows=2)
    with _eval_mode(model):
        means = latent_means(model, x, y)
    activity = means.var(dim=0, unbiased=True)
    mask = activity > threshold
    return ActiveUnits(int(mask.sum()), activity, mask)


def check_posterior_collapse(model, x, *, threshold: float = ACTIVITY_THRESHOLD,
                             epsilon: float = 0.01, delta: float = 0.05,
                             y=None) -> CollapseReport:
    r"""Which latent units have collapsed to the prior.

    Unit d is (epsilon, delta)-collapsed when
    P_x[KL(q(z_d | x) || p(z_d)) < epsilon] >= 1 - delta (Lucas et al. 2019,
    Definition 1, with the empirical distribution of ``x``): for almost every
    input its posterior is the prior, so the decoder cannot use it. A unit is
    also reported inactive when its activity (see :func:`active_units`) is below
    ``threshold``. The model has collapsed when every unit is collapsed.

    Parameters
    ----------
    model : VAE-like module
    x : Tensor of shape (n, data_dim), n >= 2
    threshold : float >= 0
        Activity threshold (Burda et al.'s 0.01).
    epsilon : float >= 0
        KL below which a posterior counts as the prior, in nats.
    delta : float in [0, 1)
        Fraction of inputs allowed to exceed ``epsilon``.
    y : Tensor of shape (n, conditional_dim), optional

    Returns
    -------
    CollapseReport
    """
    epsilon = check_real(epsilon, "epsilon", minimum=0.0)
    delta = check_real(delta, "delta", minimum=0.0, maximum=1.0, strict_maximum=True)
    x, y = _check_inputs(model, x, y, min_rows=2)
    units = active_units(model, x, threshold, y)
    kl = kl_per_dimension(model, x, y)
    below = (kl < epsilon).to(kl.dtype).mean(dim=0)
    collapsed_units = below >= 1 - delta
    return CollapseReport(
        collapsed=bool(collapsed_units.all()),
        collapsed_units=collapsed_units,
        inactive_units=~units.mask,
        mean_kl=kl.mean(dim=0),
        activity=units.activity,
        fraction_collapsed=float(collapsed_units.to(kl.dtype).mean()),
    )
