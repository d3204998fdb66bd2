r"""Training the encoder with the other KL: wake-sleep and reweighted wake-sleep.

The VAE fits its encoder by the reverse KL, :math:`\mathrm{KL}(q(z \mid x) \,\|\, p(z \mid x))`,
inside the ELBO. These objectives fit it by the forward KL,
:math:`\mathrm{KL}(p(z \mid x) \,\|\, q(z \mid x))`, which only needs samples of the
posterior (or weights), not a reparameterisation:

- **Wake-sleep** (Hinton, Dayan, Frey & Neal 1995). Wake phase: draw
  :math:`z \sim q(z \mid x)` for a real x and raise :math:`\log p_\theta(x, z)` (the
  decoder's update). Sleep phase: "dream" :math:`z \sim p(z)`,
  :math:`x \sim p_\theta(x \mid z)`, and raise :math:`\log q_\phi(z \mid x)` on the
  dream: a Monte Carlo step on
  :math:`E_{p_\theta(x)} \mathrm{KL}(p_\theta(z \mid x) \,\|\, q_\phi(z \mid x))`,
  the forward KL averaged over the model's own data, not the real data.
- **Reweighted wake-sleep** (Bornschein & Bengio 2015; Le, Kosiorek, Siddharth,
  Teh & Wood 2019). Draw K samples :math:`z_k \sim q(z \mid x)` for a real x, with

  .. math::

      \log w_k = \log p(x, z_k) - \log q(z_k \mid x), \qquad
      \tilde w_k = \frac{w_k}{\sum_j w_j}.

  Decoder: raise :math:`\sum_k \tilde w_k \log p_\theta(x, z_k)` (the same gradient as
  the IWAE bound's in :math:`\theta`). Encoder ("wake-phase q update"): raise
  :math:`\sum_k \tilde w_k \log q_\phi(z_k \mid x)`, a self-normalised
  importance-sampling estimate of
  :math:`-\nabla_\phi \mathrm{KL}(p(z \mid x) \,\|\, q_\phi(z \mid x))` on the real x
  (biased for finite K, consistent as K grows). Le et al. (2019) recommend this wake-phase update
  over the sleep phase; it is what ``objective="rws"`` does.

Both are used through :func:`vitoolkit.vae.train` (``objective="wake_sleep"`` or
``"rws"``, ``num_samples=K``) on a :class:`~vitoolkit.vae.VAE`; the functions
below return the surrogate loss whose gradient is the update, and the ELBO
statistics the training history records.
"""

from __future__ import annotations

import torch
from torch.distributions import Normal

from ..distributions import reparameterise
from ..distributions import sample as _sample
from ..divergences import kl_divergence
from ..validation import check_memory
from ._model_inputs import _check_inputs
from .importance import check_num_samples
from .model import VAE

__all__ = ["wake_sleep_loss", "rws_loss", "rws_encoder_surrogate", "rws_weights",
           "WAKE_SLEEP_OBJECTIVES"]

#: The objectives this module implements.
WAKE_SLEEP_OBJECTIVES = ("wake_sleep", "rws")


def _check_arguments(model, x, y, num_samples, generator):
    """The boundary of the surrogates: a VAE, its data and labels, k draws that fit in memory."""
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a vitoolkit.vae.VAE, got {type(model).__name__}")
    x, y = _check_inputs(model, x, y, needs=("encode", "decode", "prior"))
    x = model._check_x(x, "x")  # the model's dtype and device
    num_samples = check_num_samples(num_samples)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    # k draws of z and of the decoder's output for every example, a few copies each.
    itemsize = x.element_size()
    per_draw = x.shape[0] * (3 * model.latent_dim + 2 * model.data_dim) * itemsize
    check_memory(num_samples * per_draw, "num_samples", num_samples,
                 f"{num_samples} draws for each of {x.shape[0]} examples")
    return x, y, num_samples


def _posterior_draws(model, x, y, num_samples, generator):
    loc, scale = model._encode_params(x, y)
    eps = torch.randn((num_samples, *loc.shape), generator=generator, device=loc.device,
                      dtype=loc.dtype)
    z = reparameterise(loc, scale, eps).detach()  # no reparameterisation: the update is not pathwise
    return loc, scale, z


def rws_weights(log_joint, log_q):
    r"""Self-normalised importance weights over the K draws of each example.

    Bornschein & Bengio (2015), eq. 4-5: with z_k ~ q(z | x),
    log w_k = log p(x, z_k) - log q(z_k | x) and w~_k = w_k / sum_j w_j, computed as a
    softmax over the draws (the largest log-weight is subtracted before exponentiating,
    so log-weights of any size are safe).

    Parameters
    ----------
    log_joint, log_q : Tensor of shape (K, ...)
        log p(x, z_k) and log q(z_k | x); the K draws along the first axis.

    Returns
    -------
    Tensor of shape (K, ...)
        w~, summing to 1 over the first axis.
    """
    for name, value in (("log_joint", log_joint), ("log_q", log_q)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() < 1:
            raise ValueError(f"{name} must have the K draws along a first axis, got a 0-d tensor")
    if log_joint.shape != log_q.shape:
        raise ValueError(f"log_joint and log_q must have the same shape (K, ...), got "
                         f"{tuple(log_joint.shape)} and {tuple(log_q.shape)}")
    log_w = log_joint - log_q
    if bool(torch.isnan(log_w).any()):  # -inf (a zero weight) is allowed, NaN is not
        raise ValueError(f"log_joint - log_q has {int(torch.isnan(log_w).sum())} NaN entries: "
                         "log_joint and log_q must be numbers (or -inf for a zero density)")
    return torch.softmax(log_w, 0)


def _stats(model, loss, x, loc, scale, log_px_first):
    with torch.no_grad():
        kl_dims = kl_divergence(Normal(loc, scale, validate_args=False), model.prior.base_dist)
    return {"loss": loss.detach(), "recon": log_px_first.detach().sum(),
            "kl_dims": kl_dims.detach(), "loc": loc.detach()}


def wake_sleep_loss(model, x, y=None, *, num_samples: int = 1, generator=None):
    r"""Wake-sleep surrogate: wake (decoder) on real data, sleep (encoder) on dreams.

    Parameters
    ----------
    model : VAE
    x : Tensor of shape (n, data_dim), checked
    y : Tensor of shape (n, conditional_dim), optional (dreams reuse these labels)
    num_samples : int >= 1
        Draws of z ~ q(z|x) per example in the wake phase.
    generator : torch.Generator, optional

    Returns
    -------
    (loss, stats): the batch-mean loss whose gradient in the decoder is
    :math:`-E_q \nabla_\theta \log p_\theta(x \mid z)` (wake) and in the encoder
    :math:`-\nabla_\phi \log q_\phi(z_d \mid x_d)` on n dreams (sleep); ``stats`` as
    :func:`vitoolkit.vae.train` records them.
    """
    x, y, num_samples = _check_arguments(model, x, y, num_samples, generator)
    loc, scale, z = _posterior_draws(model, x, y, num_samples, generator)
    log_px = model.likelihood.distribution(model._decode_params(z, y)).log_prob(x)  # (K, n)
    wake = -log_px.mean()  # log p(z) has no parameters: only log p(x|z) moves theta
    with torch.no_grad():
        ref = loc
        z_dream = torch.randn(loc.shape, generator=generator, device=ref.device, dtype=ref.dtype)
        x_dream = _sample(model.likelihood.distribution(model._decode_params(z_dream, y)),
                          generator=generator)
    loc_d, scale_d = model._encode_params(x_dream, y)
    sleep = -Normal(loc_d, scale_d, validate_args=False).log_prob(z_dream).sum(-1).mean()
    loss = wake + sleep
    return loss, _stats(model, loss, x, loc, scale, log_px[0])


def rws_encoder_surrogate(model, x, y=None, *, num_samples: int, generator=None):
    r"""The reweighted wake-sleep encoder surrogate, per example, shape (n,).

    :math:`\sum_k \tilde w_k \log q_\phi(z_k \mid x)` with the weights held fixed. Its
    gradient in the encoder's weights is the wake-phase update: the self-normalised
    estimate of :math:`-\nabla_\phi \mathrm{KL}(p(z \mid x) \,\|\, q_\phi(z \mid x))`.
    """
    x, y, num_samples = _check_arguments(model, x, y, num_samples, generator)
    loc, scale, z = _posterior_draws(model, x, y, num_samples, generator)
    log_q = Normal(loc, scale, validate_args=False).log_prob(z).sum(-1)
    with torch.no_grad():
        log_px = model.likelihood.distribution(model._decode_params(z, y)).log_prob(x)
        weights = rws_weights(log_px + model.prior.base_dist.log_prob(z).sum(-1), log_q)
    return (weights * log_q).sum(0)


def rws_loss(model, x, y=None, *, num_samples: int, generator=None):
    r"""Reweighted wake-sleep surrogate (wake-phase theta and phi updates).

    .. math::

        \text{loss} = -\frac1n \sum_n \sum_k \tilde w_k
            \big[\log p_\theta(x_n \mid z_k) + \log q_\phi(z_k \mid x_n)\big],

    :math:`z_k \sim q(z \mid x_n)` (not reparameterised),
    :math:`\tilde w = \operatorname{softmax}_k(\log w_k)` held fixed.

    Returns
    -------
    (loss, stats) as :func:`wake_sleep_loss`.
    """
    x, y, num_samples = _check_arguments(model, x, y, num_samples, generator)
    loc, scale, z = _posterior_draws(model, x, y, num_samples, generator)
    log_px = model.likelihood.distribution(model._decode_params(z, y)).log_prob(x)  # (K, n)
    log_q = Normal(loc, scale, validate_args=False).log_prob(z).sum(-1)  # (K, n)
    with torch.no_grad():
        weights = rws_weights(log_px + model.prior.base_dist.log_prob(z).sum(-1), log_q)
    loss = -(weights * (log_px + log_q)).sum(0).mean()
    return loss, _stats(model, loss, x, loc, scale, log_px[0])
