r"""Per-sample estimators of the ELBO gradient for a factorised Gaussian q.

ELBO(loc, scale) = E_q[log p(x, z) - log q(z)] with q = prod_d N(z_d | loc_d, scale_d^2)
and z = loc + scale * eps. Its gradient has two routes (Mohamed et al. 2020) and
the reparameterised route has two members (Roeder, Wu & Duvenaud, NeurIPS 2017):

- ``"pathwise"`` (total reparameterised gradient): d/d lambda [log p(x, z) - log q(z | lambda)]
  with z = z(lambda, eps), all dependencies kept. It contains the score term
  -d/d lambda log q(z | lambda) at fixed z, whose expectation is zero but
  whose variance is not.
- ``"stl"`` (sticking the landing; Roeder et al. eq. 8): the same with the
  parameters inside log q detached, i.e. (d/d z [log p(x, z) - log q(z)]) dz/d lambda.
  Still unbiased; when q equals the posterior, log p(x, z) - log q(z) = log p(x)
  for every z, so every per-sample estimate is exactly zero.
- ``"score"``: [log p(x, z) - log q(z)] d/d lambda log q(z) (eq. 13); needs no
  gradient of the model, has the highest variance.
- ``"score_baseline"``: the same minus a constant baseline b (default: the mean
  of log p - log q on an independent pilot batch; black-box VI passes a moving
  average).
"""

from __future__ import annotations

import torch
from torch.distributions import Normal

from ..distributions import reparameterise
from ..validation import as_float_tensor
from ._checks import (
    WORKING_COPIES,
    as_params,
    check_choice,
    check_num_samples,
    evaluate_cost,
    no_graph_is_constant,
)
from .gaussian import GradientSamples

__all__ = ["ELBO_ESTIMATORS", "elbo_gradients", "gaussian_entropy"]

#: The estimators of :func:`elbo_gradients`.
ELBO_ESTIMATORS = ("pathwise", "stl", "score", "score_baseline")


def _q(loc, scale) -> Normal:
    # loc and scale are validated at the boundary; skip torch's per-call argument checks.
    return Normal(loc, scale, validate_args=False)


def gaussian_entropy(scale: torch.Tensor) -> torch.Tensor:
    """Entropy of prod_d N(loc_d, scale_d^2): sum_d log scale_d + D/2 log(2 pi e); shape (...).

    ``torch.distributions.Normal.entropy`` summed over the last dimension.
    """
    return _q(torch.zeros_like(scale), scale).entropy().sum(-1)


def _log_q(z, loc, scale):
    return _q(loc, scale).log_prob(z).sum(-1)


def _log_joint(log_joint, z, loc, scale):
    """log_joint(z), checked; a non-finite value is reported with the ranges of loc and scale."""
    return evaluate_cost(log_joint, z, name="log_joint", inputs={"loc": loc, "scale": scale})


def elbo_terms(log_joint, loc, scale, estimator, n, generator, baseline=None):
    """(GradientSamples, per-sample log p - log q) for validated float64 loc and scale."""
    eps = torch.randn((n, *loc.shape), generator=generator, dtype=torch.float64)
    if estimator in ("pathwise", "stl"):
        loc_i = loc.expand(n, *loc.shape).clone().requires_grad_(True)
        scale_i = scale.expand(n, *scale.shape).clone().requires_grad_(True)
        with torch.enable_grad():
            z = reparameterise(loc_i, scale_i, eps)
            if estimator == "stl":
                log_q = _log_q(z, loc, scale)  # parameters detached: Roeder et al. eq. 8
            else:
                log_q = _log_q(z, loc_i, scale_i)
            log_p = _log_joint(log_joint, z, loc, scale)
            if not log_p.requires_grad:
                # Constant in z: its gradient is zero and only log q's remains.
                no_graph_is_constant(log_p, (
                    f"the {estimator!r} ELBO gradient differentiates log_joint, but its output "
                    "carries no gradient with respect to z while its values vary across draws "
                    "(computed outside torch, or piecewise constant); use 'score'"))
            w = log_p - log_q
            g_loc, g_scale = torch.autograd.grad(w.sum(), (loc_i, scale_i))
        if not (bool(torch.isfinite(g_loc).all()) and bool(torch.isfinite(g_scale).all())):
            raise ValueError("the gradient of log_joint is not finite at some sampled z")
        return GradientSamples(g_loc.detach(), g_scale.detach()), w.detach()
    with torch.no_grad():
        z = reparameterise(loc, scale, eps)
        w = _log_joint(log_joint, z, loc, scale) - _log_q(z, loc, scale)
        if estimator == "score_baseline":
            if baseline is None:
                z0 = loc + scale * torch.randn(z.shape, generator=generator, dtype=torch.float64)
                b = (_log_joint(log_joint, z0, loc, scale) - _log_q(z0, loc, scale))
                b = b.mean(0)
            else:
                b = baseline.expand(loc.shape[:-1])
            centred = (w - b).unsqueeze(-1)
        else:
            centred = w.unsqueeze(-1)
        return GradientSamples(centred * eps / scale, centred * (eps**2 - 1) / scale), w


def elbo_gradients(log_joint, loc, scale, *, estimator: str, num_samples: int,
                   generator: torch.Generator | None = None, baseline=None) -> GradientSamples:
    r"""Per-sample estimates of d/d loc and d/d scale of the ELBO, one batched call.

    ELBO = E_q[log p(x, z) - log q(z)], q = N(loc, diag(scale^2)); the
    estimators and their trade-offs are in the module docstring.

    Parameters
    ----------
    log_joint : callable
        z of shape (..., D) -> log p(x, z) of shape (...), written in torch
        (the reparameterised estimators differentiate it).
    loc : array-like of shape (..., D)
    scale : array-like broadcastable to loc's shape, positive
    estimator : {"pathwise", "stl", "score", "score_baseline"}
    num_samples : int >= 2
        Refused before allocation if the draws would not fit in memory.
    generator : torch.Generator, optional
    baseline : float or Tensor of shape loc.shape[:-1], optional
        For ``"score_baseline"``.

    Returns
    -------
    GradientSamples
        Each float64 of shape ``(num_samples, *loc.shape)``.
    """
    key = check_choice(estimator, ELBO_ESTIMATORS, "estimator")
    loc, scale = as_params(loc, scale)
    n = check_num_samples(num_samples, minimum=2, values_per_sample=loc.numel(), copies=WORKING_COPIES)
    if not callable(log_joint):
        raise TypeError(f"log_joint must be callable, got {type(log_joint).__name__}")
    if baseline is not None:
        baseline = as_float_tensor(baseline, "baseline", dtype=torch.float64)
        try:
            baseline = baseline.expand(loc.shape[:-1])
        except RuntimeError as err:
            raise ValueError(f"baseline must broadcast to the batch shape {tuple(loc.shape[:-1])}, "
                             f"got shape {tuple(baseline.shape)}") from err
    return elbo_terms(log_joint, loc, scale, key, n, generator, baseline)[0]
