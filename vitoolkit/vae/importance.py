r"""Importance sampling with a VAE-like model: the log weights p(x, z)/q(z|x) and their estimate.

The weights

.. math::

    w_j = \frac{p(x \mid z_j) \, p(z_j)}{q(z_j \mid x)}, \quad z_j \sim q(z \mid x), \qquad
    \log p(x) \approx \log \frac1k \sum_{j=1}^k w_j \;(\text{the IWAE bound } \mathcal L_k
    \text{ in expectation}),

behind the IWAE bound (Burda, Grosse & Salakhutdinov 2015, eq. (8)), the
importance-sampled :math:`\log p(x)` (Kingma & Welling 2013, Appendix D) and the
amortisation-gap diagnostics. This module turns (model, x, k)
into log weights, decoded in chunks so memory stays bounded, and, for a k * n too large
to keep, streams them into :class:`~vitoolkit.divergences.StreamingImportanceEstimate`.
The summary itself (log-mean-exp, standard error, Pareto k-hat, the warning) is the
shared core's, :mod:`vitoolkit.divergences.importance`.

The model is duck-typed: it needs ``prior`` and ``decode(z[, y])`` (and ``encode(x[, y])``
for the model's own proposal); a :class:`~vitoolkit.vae.VAE` also offers the unchecked
``_encode_params``/``_decoder_distribution`` used in the inner loops.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal

from ..divergences import StreamingImportanceEstimate
from ..exceptions import ResourceLimitError
from ..validation import check_memory, check_num_samples

__all__ = [
    "MAX_DRAWS",
    "check_draws",
    "check_num_samples",
    "log_importance_weights",
    "posterior_importance",
    "posterior_log_weights",
    "posterior_params",
]

# Decoder activations held in memory at once by the importance-sampling loops
# (k * n * widest layer); bounds memory for k = 5000 without slowing small runs.
_CHUNK_ELEMENTS = 2**22


# Importance-sampling estimators keep every log weight (k x n entries) up to this size;
# beyond it they stream over the samples (running log-sum-exp), holding only one chunk
# of draws and each example's Pareto tail (2**24 float32 = 64 MiB).
_STREAM_ELEMENTS = 2**24


#: Most importance draws (samples x examples) one call evaluates: beyond, even streamed, the
#: call would run for hours, so it is refused like an oversized allocation.
MAX_DRAWS = 2**34


def check_draws(num_samples: int, n: int, name: str = "num_samples") -> None:
    """Refuse k * n importance draws beyond :data:`MAX_DRAWS` (ResourceLimitError naming it)."""
    draws = num_samples * n
    if draws > MAX_DRAWS:
        shown = f"{draws:.3g}" if draws < 10**300 else f"about 10**{len(str(draws)) - 1}"
        raise ResourceLimitError(
            f"{name}={num_samples} for {n} examples asks for {shown} decoder "
            f"evaluations, more than the {MAX_DRAWS:.3g} one call may take (hours of "
            f"computing); use a smaller {name}")


def log_importance_weights(model, x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                           num_samples: int | None = None, *, eps: torch.Tensor | None = None,
                           y: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    r"""The log importance weights of draws from a diagonal Gaussian q, shape (k, n).

    .. math::

        \log w_j = \log p(x \mid z_j) + \log p(z_j) - \log q(z_j \mid x), \qquad
        z_j = \mu + \sigma \odot \varepsilon_j,

    with :math:`\mu` the ``loc``, :math:`\sigma` the ``scale`` and
    :math:`\varepsilon_j \sim \mathcal N(0, I)`.

    The one implementation of the importance weights behind the IWAE bound (Burda
    et al. 2015, eq. (8)), the importance-sampled log p(x) and the amortisation-gap
    diagnostics; :math:`q = \mathcal N(\mu, \mathrm{diag}(\sigma^2))` may be the encoder's output or any other
    diagonal Gaussian. Samples are decoded in chunks to bound memory.

    Parameters
    ----------
    model : VAE-like module
        Has ``prior`` (a distribution over z with event shape (latent_dim,)) and
        ``decode(z[, y])`` returning p(x | z) with ``log_prob(x)`` per example.
    x : Tensor of shape (n, data_dim)
    loc, scale : Tensors of shape (n, latent_dim)
    num_samples : int, optional
        k: draws eps ~ N(0, I) from ``generator`` (chunk by chunk). Give either
        this or ``eps``.
    eps : Tensor of shape (k, n, latent_dim), optional
        Standard-normal draws to use (common random numbers across proposals).
    y : Tensor of shape (n, conditional_dim), optional
    generator : torch.Generator, optional

    Returns
    -------
    Tensor of shape (k, n), differentiable in the model's parameters, loc and scale.
    """
    return torch.cat(list(_log_weight_chunks(model, x, loc, scale, num_samples, eps=eps, y=y,
                                             generator=generator)), dim=0)


def _sample_chunk(model, x) -> int:
    """Samples decoded at once: ~_CHUNK_ELEMENTS decoder activations for the n examples."""
    width = getattr(model, "_decoder_width", x.shape[-1])
    return max(1, _CHUNK_ELEMENTS // (x.shape[0] * width))


def _log_weight_chunks(model, x, loc, scale, num_samples=None, *, eps=None, y=None,
                       generator=None):
    """Yield the log weights of :func:`log_importance_weights` chunk by chunk, (k_c, n) each."""
    if (num_samples is None) == (eps is None):
        raise ValueError("give exactly one of num_samples and eps")
    k = int(num_samples) if eps is None else eps.shape[0]
    decode = getattr(model, "_decoder_distribution", None)
    if decode is None:
        def decode(z, y):
            return model.decode(z) if y is None else model.decode(z, y)
    q = Normal(loc, scale, validate_args=False)
    prior = model.prior
    chunk = _sample_chunk(model, x)
    for start in range(0, k, chunk):
        kc = min(chunk, k - start)
        if eps is None:
            e = torch.randn((kc, *loc.shape), generator=generator, device=loc.device,
                            dtype=loc.dtype)
        else:
            e = eps[start:start + kc]
        z = loc + scale * e
        yield decode(z, y).log_prob(x) + prior.log_prob(z) - q.log_prob(z).sum(-1)


def _graph_bytes_per_draw(model, x) -> int:
    """Rough bytes autograd keeps per importance draw and example (decoder activations)."""
    decoder = getattr(model, "decoder", None)
    layers = 1 if decoder is None else max(1, sum(
        1 for m in decoder.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))))
    width = getattr(model, "_decoder_width", x.shape[-1])
    return 2 * layers * width * x.element_size()


def _needs_graph(model, *tensors) -> bool:
    if not torch.is_grad_enabled():
        return False
    return any(t.requires_grad for t in tensors) or any(
        p.requires_grad for p in model.parameters())


def posterior_params(model, x, y=None):
    """(loc, scale) of q(z|x): the model's ``_encode_params(x, y)`` when it has one (a
    :class:`~vitoolkit.vae.VAE`, no input checks), else those of ``model.encode(x[, y])``."""
    encode = getattr(model, "_encode_params", None)
    if encode is not None:
        return encode(x, y)
    q = model.encode(x) if y is None else model.encode(x, y)
    base = getattr(q, "base_dist", q)
    return base.loc, base.scale


def posterior_log_weights(model, x, y, num_samples: int, generator=None) -> torch.Tensor:
    """log w_j for k draws z_j from the model's own q(z|x), shape (k, n).

    The one route from (model, x, k) to the log weights with the encoder as proposal,
    behind :meth:`~vitoolkit.vae.VAE.iwae_bound`, :meth:`~vitoolkit.vae.VAE.log_likelihood`,
    the IWAE training objective and :func:`vitoolkit.vae.diagnostics.iwae_curve`.
    """
    loc, scale = posterior_params(model, x, y)
    return log_importance_weights(model, x, loc, scale, num_samples, y=y, generator=generator)


def posterior_importance(model, x, y, num_samples: int, generator=None,
                         *, what: str = "importance sampling", name: str = "num_samples"):
    """Importance sampling with the model's own q(z|x): the log weights, or their estimate.

    Returns ``(log_w, estimate)``: with up to ``_STREAM_ELEMENTS`` log weights (or when
    a gradient is wanted) ``log_w`` is the (k, n) tensor of :func:`posterior_log_weights`
    and ``estimate`` None; beyond, the draws are streamed, ``log_w`` is None and
    ``estimate`` the :class:`~vitoolkit.divergences.ImportanceEstimate`. A gradient through k
    draws needs every draw's activations at once: ``check_memory`` refuses a k that cannot
    fit (naming ``name``); under ``torch.no_grad()`` the draws are streamed and only a k whose
    Pareto tails cannot fit is refused.
    """
    loc, scale = posterior_params(model, x, y)
    n = x.shape[0]
    if num_samples * n <= _STREAM_ELEMENTS:
        return log_importance_weights(model, x, loc, scale, num_samples, y=y,
                                      generator=generator), None
    if _needs_graph(model, x, loc, scale):
        check_memory(num_samples * n * _graph_bytes_per_draw(model, x), name, num_samples,
                     f"the autograd graph of {what} over {n} examples (the backward pass needs "
                     "every draw's activations; under torch.no_grad() the draws are streamed)")
        return log_importance_weights(model, x, loc, scale, num_samples, y=y,
                                      generator=generator), None
    itemsize = x.element_size()
    chunk = min(_sample_chunk(model, x), num_samples)
    per_chunk = chunk * n * _graph_bytes_per_draw(model, x)
    check_memory(per_chunk + StreamingImportanceEstimate.memory_bytes(num_samples, n, itemsize),
                 name, num_samples, f"{what} over {n} examples (one chunk of draws and each "
                 "example's Pareto tail)")
    acc = StreamingImportanceEstimate(num_samples)
    with torch.no_grad():
        for lw in _log_weight_chunks(model, x, loc, scale, num_samples, y=y,
                                     generator=generator):
            acc.update(lw)
    return None, acc.result(loc.dtype)
