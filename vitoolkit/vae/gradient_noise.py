r"""How noisy is the VAE's training gradient? Repeated one-sample gradients of the ELBO.

The reparameterised ELBO gradient (Kingma & Welling 2013, section 2.4) is a
random vector: each draw of eps ~ N(0, I) gives a different estimate. Repeating
the backward pass with fresh noise on fixed data and fixed parameters gives
samples of that vector, from which :func:`gradient_noise` reports the norm of
their mean, their total variance (the trace of their covariance) and the
signal-to-noise ratio norm(mean) / sqrt(total variance).

The KL term can be computed in closed form or estimated at the same sample z,
log q(z | x) - log p(z) (their estimators B and A, eqs. (7) and (6));
:func:`network_gradients` takes ``kl=`` to compare both on the same parameters and,
with the same generator seed, the same noise (so the decoder's gradients agree
exactly and the difference is the KL estimator's own noise).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..validation import check_int
from .model import KL_METHODS

__all__ = ["GradientNoise", "network_gradients", "gradient_noise", "with_kl"]

_PARTS = ("encoder", "decoder", "all")


def with_kl(model, kl: str):
    """A copy of ``model`` (same weights) whose ELBO uses the KL method ``kl``.

    ``model`` itself is not changed; its ``config`` rebuilds the twin.
    """
    if kl not in KL_METHODS:
        raise ValueError(f"kl must be one of {KL_METHODS}, got {kl!r}")
    if model.kl == kl:
        return model
    twin = type(model)(**{**model.config, "kl": kl})
    twin.load_state_dict(model.state_dict())
    ref = next(model.parameters())
    return twin.to(device=ref.device, dtype=ref.dtype)


def network_gradients(model, x, num_samples: int, *, kl: str | None = None, parameters: str = "encoder",
                   generator=None) -> torch.Tensor:
    """``num_samples`` one-sample gradients of the batch-mean negative ELBO.

    Parameters
    ----------
    model : VAE
    x : Tensor of shape (n, data_dim)
        A fixed batch (the gradient of the mean loss over it, as one training step sees).
    num_samples : int >= 2
    kl : {"analytic", "monte_carlo"}, optional
        Default: the model's own ``kl``.
    parameters : {"encoder", "decoder", "all"}
        Whose gradient to return.
    generator : torch.Generator, optional
        Source of the reparameterisation noise.

    Returns
    -------
    Tensor of shape (num_samples, num_parameters), float64. The model's ``.grad``
    fields are left cleared.
    """
    num_samples = check_int(num_samples, "num_samples", minimum=2)
    if parameters not in _PARTS:
        raise ValueError(f"parameters must be one of {_PARTS}, got {parameters!r}")
    net = with_kl(model, model.kl if kl is None else kl)
    params = list(net.parameters() if parameters == "all" else
                  getattr(net, parameters).parameters())
    out = []
    for _ in range(num_samples):
        loss = -net.elbo(x, generator=generator).mean()
        grads = torch.autograd.grad(loss, params)
        out.append(torch.cat([g.reshape(-1) for g in grads]).double())
    return torch.stack(out)


class GradientNoise(NamedTuple):
    """Summary of gradient samples (num_samples, P)."""

    mean_norm: float  # || mean gradient ||
    total_variance: float  # trace of the covariance of one sample
    snr: float  # mean_norm / sqrt(total_variance)
    num_samples: int


def gradient_noise(grads) -> GradientNoise:
    """Norm of the mean, total variance (ddof = 1) and signal-to-noise ratio of gradient samples."""
    g = torch.as_tensor(grads).detach().to(torch.float64)
    if g.ndim != 2 or g.shape[0] < 2:
        raise ValueError(f"grads must have shape (num_samples >= 2, P), got {tuple(g.shape)}")
    mean_norm = float(g.mean(0).norm())
    total = float(g.var(0).sum())
    snr = mean_norm / math.sqrt(total) if total > 0 else math.inf
    return GradientNoise(mean_norm, total, snr, g.shape[0])


#: The former name of :func:`network_gradients` (tutorial 05): not
#: :func:`vitoolkit.gradients.elbo.elbo_gradients`, which estimates the gradient of an ELBO
#: with respect to a Gaussian q's parameters.
elbo_gradients = network_gradients
