"""Sampling with a local ``torch.Generator``: :func:`sample` for any distribution, the
reparameterised Gaussian sample and the Gumbel-max / Gumbel-softmax draws."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.distributions import Distribution

from ..validation import check_bool, check_real
from .checks import (
    as_param,
    check_distribution_arg,
    check_draw_memory,
    check_sample_shape,
)

__all__ = ["sample", "reparameterise", "GumbelSoftmaxSample", "gumbel_max_sample", "gumbel_softmax_sample",
           "check_temperature"]


def sample(dist: Distribution, sample_shape=torch.Size(), *, generator=None, rsample=False):
    """Draw ``dist.sample(sample_shape)`` (or ``rsample``) from a local generator.

    Parameters
    ----------
    dist : torch.distributions.Distribution
    sample_shape : tuple of int
    generator : torch.Generator, optional
        When given, the draw is a deterministic function of the generator's
        state, and the global random state is left untouched.
    rsample : bool
        Use the reparameterised sampler (keeps gradients).
    """
    check_distribution_arg(dist, "dist")
    sample_shape = check_sample_shape(sample_shape)
    rsample = check_bool(rsample, "rsample")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    check_draw_memory(sample_shape, dist.batch_shape + dist.event_shape)
    draw = dist.rsample if rsample else dist.sample
    if generator is None:
        return draw(torch.Size(sample_shape))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return draw(torch.Size(sample_shape))


class GumbelSoftmaxSample(NamedTuple):
    """A categorical draw and its relaxation from the same Gumbel noise.

    ``hard``: one-hot argmax(logits + G), an exact draw of Cat(softmax(logits));
    ``soft``: softmax((logits + G) / temperature), a point of the simplex.
    Both have the shape of the logits.
    """

    soft: torch.Tensor
    hard: torch.Tensor


def reparameterise(loc: torch.Tensor, scale: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r"""The reparameterised Gaussian sample z = loc + scale * eps, eps ~ N(0, I) given.

    Kingma & Welling (2013), section 2.4 (eq. 4's g(eps, x) for a Gaussian q): the sample is a
    differentiable function of (loc, scale), which is what pathwise gradients differentiate.
    ``loc`` and ``scale`` broadcast against ``eps`` (e.g. (D,) or (n, D) against (S, ..., D));
    no input checks (the topic modules' inner loops call it).
    """
    return loc + scale * eps


def check_temperature(temperature, name: str = "temperature") -> float:
    """A positive finite temperature (the Gumbel-softmax tau), as a float."""
    return check_real(temperature, name, minimum=0.0, strict_minimum=True)


def gumbel_softmax_sample(logits: torch.Tensor, temperature: float, sample_shape=torch.Size(), *,
                          generator=None) -> GumbelSoftmaxSample:
    r"""Gumbel-max draw and Gumbel-softmax (Concrete) relaxation sharing one noise draw.

    With G_c ~ Gumbel(0, 1) i.i.d. (G = -log(-log U), U ~ Uniform(0, 1)):

    - argmax_c (logits_c + G_c) is an exact draw of Cat(softmax(logits))
      (the Gumbel-max trick; Maddison, Mnih & Teh 2017, section 2);
    - y = softmax((logits + G) / tau) is the Gumbel-softmax / Concrete sample
      (Jang, Gu & Poole 2017, eq. 1; Maddison et al. 2017, eq. 10): differentiable
      in the logits, and y tends to the one-hot draw as tau -> 0.

    Parameters
    ----------
    logits : Tensor of shape (..., K)
        Unnormalised log-probabilities (gradients flow through ``soft``).
    temperature : float > 0
    sample_shape : tuple of int
        Leading shape of independent draws.
    generator : torch.Generator, optional

    Returns
    -------
    GumbelSoftmaxSample(soft, hard), each of shape ``sample_shape + logits.shape``.
    """
    tau = check_temperature(temperature)
    logits, perturbed = _gumbel_perturbed(logits, sample_shape, generator, arrays=4)
    return GumbelSoftmaxSample(torch.softmax(perturbed / tau, dim=-1),
                               _one_hot_argmax(perturbed.detach()))


def gumbel_max_sample(logits: torch.Tensor, sample_shape=torch.Size(), *,
                      generator=None) -> torch.Tensor:
    r"""Exact one-hot draws of Cat(softmax(logits)) by the Gumbel-max trick:
    one_hot(argmax_c (logits_c + G_c)), G_c ~ Gumbel(0, 1) i.i.d. (Maddison, Mnih & Teh 2017,
    section 2).

    The ``hard`` half of :func:`gumbel_softmax_sample`, without the relaxation: for the same
    ``generator`` state both give the same draws.

    Parameters
    ----------
    logits : Tensor of shape (..., K)
        Unnormalised log-probabilities (-inf allowed, not for a whole row).
    sample_shape : tuple of int
        Leading shape of independent draws.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor of shape ``sample_shape + logits.shape``, one-hot along the last dimension, with the
    dtype of ``logits`` and no gradient.
    """
    logits, perturbed = _gumbel_perturbed(logits, sample_shape, generator, arrays=3)
    return _one_hot_argmax(perturbed.detach())


def _gumbel_perturbed(logits, sample_shape, generator, arrays: int):
    """Validated logits and logits + G for G ~ Gumbel(0, 1) of shape sample_shape + logits.shape
    (G = -log(-log U), U clamped away from 0 and 1)."""
    logits = as_param(logits, "logits", min_ndim=1, allow_neg_inf=True)
    if logits.shape[-1] < 1:
        raise ValueError(f"logits must have at least one category, got shape {tuple(logits.shape)}")
    if bool(torch.isneginf(logits).all(-1).any()):
        raise ValueError("logits: every category is -inf in some row (no probability mass)")
    sample_shape = check_sample_shape(sample_shape)
    check_draw_memory(sample_shape, logits.shape, arrays=arrays)
    shape = sample_shape + logits.shape
    u = torch.rand(shape, generator=generator, dtype=logits.dtype, device=logits.device)
    tiny = torch.finfo(logits.dtype).tiny
    gumbel = -torch.log(-torch.log(u.clamp(tiny, 1.0 - torch.finfo(logits.dtype).eps)))
    return logits, logits + gumbel


def _one_hot_argmax(perturbed: torch.Tensor) -> torch.Tensor:
    hard = torch.nn.functional.one_hot(perturbed.argmax(-1), perturbed.shape[-1])
    return hard.to(perturbed.dtype)
