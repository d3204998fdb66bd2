r"""Training the encoder with the other KL: wake-sleep and reweighted wake-sleep.

The VAE fits its encoder by the reverse KL, KL(q(z|x) || p(z|x)), inside the
ELBO. These objectives fit it by the forward KL, KL(p(z|x) || q(z|x)), which
only needs samples of the posterior (or weights), not a reparameterisation:

- **Wake-sleep** (Hinton, Dayan, Frey & Neal 1995). Wake phase: draw
  z ~ q(z|x) for a real x and raise log p_theta(x, z) (the decoder's update).
  Sleep phase: "dream" z ~ p(z), x ~ p_theta(x | z), and raise log q_phi(z | x)
  on the dream: a Monte Carlo step on E_{p_theta(x)} KL(p_theta(z|x) || q_phi(z|x)),
  the forward KL averaged over the model's own data, not the real data.
- **Reweighted wake-sleep** (Bornschein & Bengio 2015; Le, Kosiorek, Siddharth,
  Teh & Wood 2019). Draw K samples z_k ~ q(z|x) for a real x, with
  log w_k = log p(x, z_k) - log q(z_k | x) and self-normalised weights
  w~_k = w_k / sum_j w_j. Decoder: raise sum_k w~_k log p_theta(x, z_k) (the same
  gradient as the IWAE bound's in theta). Encoder ("wake-phase q update"):
  raise sum_k w~_k log q_phi(z_k | x), a self-normalised importance-sampling
  estimate of -grad KL(p(z|x) || q(z|x)) on the real x (biased for finite K,
  consistent as K grows). Le et al. (2019) recommend this wake-phase update
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

__all__ = ["wake_sleep_loss", "rws_loss", "rws_encoder_surrogate", "WAKE_SLEEP_OBJECTIVES"]

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


def _stats(model, loss, x, loc, scale, log_px_first):
    with torch.no_grad():
        kl_dims = kl_divergence(Normal(loc, scale, validate_args=False), model.prior.base_dist)
    return {"loss": loss.detach(), "recon": log_px_first.detach().sum(),
            "kl_dims": kl_dims.detach(), "loc": loc.detach()}


def wake_sleep_loss(model, x, y=None, *, num_samples: int = 1, generator=None):
    """Wake-sleep surrogate: wake (decoder) on real data, sleep (encoder) on dreams.

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
    -E_q grad log p(x|z) (wake) and in the encoder -grad log q(z_d | x_d) on
    n dreams (sleep); ``stats`` as :func:`vitoolkit.vae.train` records them.
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
    """The RWS encoder surrogate sum_k w~_k log q(z_k | x), per example, shape (n,).

    Its gradient in the encoder's weights is the wake-phase update: the
    self-normalised estimate of -grad_phi KL(p(z|x) || q_phi(z|x)).
    """
    x, y, num_samples = _check_arguments(model, x, y, num_samples, generator)
    loc, scale, z = _posterior_draws(model, x, y, num_samples, generator)
    log_q = Normal(loc, scale, validate_args=False).log_prob(z).sum(-1)
    with torch.no_grad():
        log_px = model.likelihood.distribution(model._decode_params(z, y)).log_prob(x)
        log_w = log_px + model.prior.base_dist.log_prob(z).sum(-1) - log_q
        weights = torch.softmax(log_w, 0)
    return (weights * log_q).sum(0)


def rws_loss(model, x, y=None, *, num_samples: int, generator=None):
    """Reweighted wake-sleep surrogate (wake-phase theta and phi updates).

    loss = -mean_n sum_k w~_k [log p_theta(x | z_k) + log q_phi(z_k | x)],
    z_k ~ q(z | x) (not reparameterised), w~ = softmax_k(log w_k) held fixed.

    Returns
    -------
    (loss, stats) as :func:`wake_sleep_loss`.
    """
    x, y, num_samples = _check_arguments(model, x, y, num_samples, generator)
    loc, scale, z = _posterior_draws(model, x, y, num_samples, generator)
    log_px = model.likelihood.distribution(model._decode_params(z, y)).log_prob(x)  # (K, n)
    log_q = Normal(loc, scale, validate_args=False).log_prob(z).sum(-1)  # (K, n)
    with torch.no_grad():
        log_w = log_px + model.prior.base_dist.log_prob(z).sum(-1) - log_q
        weights = torch.softmax(log_w, 0)  # self-normalised importance weights
    loss = -(weights * (log_px + log_q)).sum(0).mean()
    return loss, _stats(model, loss, x, loc, scale, log_px[0])
