r"""The linear-Gaussian VAE: a model whose posterior and evidence are known exactly.

A :class:`~vitoolkit.vae.VAE` with ``hidden_dims=()`` (an affine decoder
:math:`x = W z + b` + noise) and ``likelihood="gaussian"`` (fixed noise :math:`\sigma`) is
probabilistic PCA (Tipping & Bishop 1999):

.. math::

    z &\sim \mathcal N(0, I), \qquad x \mid z \sim \mathcal N(W z + b, \sigma^2 I), \\
    p(z \mid x) &= \mathcal N\big(M^{-1} W^\top (x - b) / \sigma^2, \; M^{-1}\big), \qquad
        M = I + W^\top W / \sigma^2, \\
    p(x) &= \mathcal N(b, \; W W^\top + \sigma^2 I)

(Bishop PRML eq. 12.42 and 12.43 / 2.116, with PRML's M divided by :math:`\sigma^2`).
The posterior covariance is the same for every x and is diagonal only when the columns
of W are orthogonal, so a diagonal q can match it only then; otherwise the reverse KL
gives each coordinate the variance :math:`1 / M_{ii}` (too narrow) and the forward KL the
marginal :math:`(M^{-1})_{ii}` (Bishop PRML section 10.1.2).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import MultivariateNormal

from ._model_inputs import _check_inputs
from .model import VAE

__all__ = ["linear_gaussian_parts", "linear_gaussian_posterior", "linear_gaussian_evidence"]


def linear_gaussian_parts(model: VAE):
    """(W, b, sigma) of a linear-Gaussian VAE: W (data_dim, latent_dim), b (data_dim,)."""
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a vitoolkit.vae.VAE, got {type(model).__name__}")
    layers = list(model.decoder.children()) if isinstance(model.decoder, nn.Sequential) else []
    if model.likelihood.name != "gaussian" or len(layers) != 1 \
            or not isinstance(layers[0], nn.Linear) or model.conditional_dim:
        raise ValueError("model must be an unconditional VAE with hidden_dims=() (an affine "
                         "decoder) and likelihood='gaussian' (fixed noise scale) for the exact "
                         "posterior")
    lin = layers[0]
    return lin.weight, lin.bias, model.likelihood.observation_scale


def _check_data(model: VAE, x) -> torch.Tensor:
    x, _ = _check_inputs(model, x, None)
    return model._check_x(x).double()


def linear_gaussian_posterior(model: VAE, x) -> MultivariateNormal:
    r"""The exact posterior p(z | x) of a linear-Gaussian VAE (PRML eq. 12.42), float64.

    :math:`\mathcal N\big(M^{-1} W^\top (x - b) / \sigma^2, M^{-1}\big)`,
    :math:`M = I + W^\top W / \sigma^2` (module docstring).

    Parameters
    ----------
    model : VAE with ``hidden_dims=()`` and ``likelihood="gaussian"``
    x : Tensor of shape (n, data_dim)

    Returns
    -------
    MultivariateNormal with batch shape (n,) and event shape (latent_dim,).
    """
    weight, bias, sigma = linear_gaussian_parts(model)
    x = _check_data(model, x)
    w, b = weight.detach().double(), bias.detach().double()
    eye = torch.eye(w.shape[1], dtype=torch.float64)
    precision = eye + w.T @ w / sigma**2
    cov = torch.linalg.inv(precision)
    cov = 0.5 * (cov + cov.T)
    mean = (x - b) @ w @ cov / sigma**2  # (M^{-1} W^T (x - b) / sigma^2)^T, M symmetric
    return MultivariateNormal(mean, covariance_matrix=cov.expand(x.shape[0], -1, -1))


def linear_gaussian_evidence(model: VAE, x) -> torch.Tensor:
    r"""The exact log evidence of a linear-Gaussian VAE, shape (n,) (PRML eq. 12.43 / 2.116).

    :math:`\log p(x) = \log \mathcal N(x; b, W W^\top + \sigma^2 I)`.
    """
    weight, bias, sigma = linear_gaussian_parts(model)
    x = _check_data(model, x)
    w, b = weight.detach().double(), bias.detach().double()
    cov = w @ w.T + sigma**2 * torch.eye(w.shape[0], dtype=torch.float64)
    return MultivariateNormal(b, covariance_matrix=cov).log_prob(x)
