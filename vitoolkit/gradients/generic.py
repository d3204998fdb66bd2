r"""Score-function and pathwise gradients for any ``torch.distributions`` family.

The Gaussian estimators of :mod:`~vitoolkit.gradients.gaussian` written for a
generic distribution q(x | params) built by a user function, so that the same
two ideas can be tried on, e.g., a Gamma (which has an implicit
reparameterisation, ``rsample``) or a Poisson (which has none):

- ``"score"``: :math:`f(x) \nabla_\lambda \log q(x \mid \lambda)` (Mohamed et al. 2020,
  eq. 13), :math:`\lambda` the params;
- ``"pathwise"``: :math:`\nabla_\lambda f(x(\lambda, \varepsilon))` through ``rsample``
  (eq. 34);
  refused with a clear error for a distribution without ``rsample``.

Per-sample estimates come from one batched call: the parameters are copied
once per draw, and the gradient of the summed objective with respect to copy i
is draw i's estimate.
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..distributions import sample
from ..validation import as_float_tensor
from ._checks import WORKING_COPIES, check_choice, check_num_samples, evaluate_cost, no_graph_is_constant

__all__ = ["distribution_gradients", "GENERIC_ESTIMATORS"]

#: The estimators of :func:`distribution_gradients`.
GENERIC_ESTIMATORS = ("score", "pathwise")


def _event_cost(cost, event_ndim):
    # Costs take (..., D); a scalar-event distribution's samples get a trailing D = 1.
    if event_ndim == 0:
        return lambda x: evaluate_cost(cost, x.unsqueeze(-1))
    return lambda x: evaluate_cost(cost, x)


def distribution_gradients(cost, make_distribution, params, *, estimator: str, num_samples: int,
                           generator: torch.Generator | None = None) -> tuple:
    r"""Per-sample estimates of d/d params E_{q(x | params)}[cost(x)].

    Parameters
    ----------
    cost : callable
        Maps samples ``(..., *event_shape)`` to ``(...)``; for a scalar event it
        receives (..., 1).
    make_distribution : callable
        ``make_distribution(*params) -> torch.distributions.Distribution``; the
        distribution's batch shape must follow the parameters' leading shape.
    params : sequence of array-like
        The parameters (converted to float64 tensors).
    estimator : {"score", "pathwise"}
    num_samples : int >= 2
    generator : torch.Generator, optional

    Returns
    -------
    tuple of Tensor
        One per parameter, each ``(num_samples, *param.shape)``.
    """
    key = check_choice(estimator, GENERIC_ESTIMATORS, "estimator")
    if not callable(make_distribution):
        raise TypeError("make_distribution must be callable: (*params) -> Distribution")
    if not callable(cost):
        raise TypeError(f"cost must be callable, got {type(cost).__name__}")
    if isinstance(params, (str, bytes, torch.Tensor)) or not hasattr(params, "__iter__"):
        raise TypeError(f"params must be a sequence of array-likes (one per parameter), "
                        f"got {type(params).__name__}")
    params = [as_float_tensor(p, f"params[{i}]", dtype=torch.float64) for i, p in enumerate(params)]
    n = check_num_samples(num_samples, minimum=2, values_per_sample=sum(p.numel() for p in params),
                          copies=WORKING_COPIES)
    copies = [p.expand(n, *p.shape).clone().requires_grad_(True) for p in params]
    with torch.enable_grad():
        dist = make_distribution(*copies)
        if not isinstance(dist, Distribution):
            raise TypeError(
                f"make_distribution must return a torch Distribution, got {type(dist).__name__}"
            )
        if key == "pathwise" and not dist.has_rsample:
            raise ValueError(
                f"{type(dist).__name__} has no rsample (it is not reparameterisable), so the "
                "pathwise estimator does not apply; use estimator='score'"
            )
        f_of = _event_cost(cost, len(dist.event_shape))
        if key == "pathwise":
            x = sample(dist, (), generator=generator, rsample=True)
            objective = f_of(x)
            if not objective.requires_grad:
                # A constant cost has gradient zero; one that varies without a graph is a step.
                no_graph_is_constant(objective, (
                    "the pathwise estimator differentiates the cost, but its output carries no "
                    "gradient with respect to the sample while its values vary across draws "
                    "(piecewise constant, or computed outside torch); use estimator='score'"))
        else:
            x = sample(dist, (), generator=generator).detach()
            objective = f_of(x).detach() * dist.log_prob(x)
        if objective.requires_grad:
            grads = torch.autograd.grad(objective.sum(), copies, allow_unused=True)
        else:
            grads = (None,) * len(copies)
    out = tuple(torch.zeros_like(c) if g is None else g.detach()
                for g, c in zip(grads, copies, strict=True))
    for i, g in enumerate(out):
        if not bool(torch.isfinite(g).all()):
            raise ValueError(f"the gradient for params[{i}] is not finite at some draws")
    return out
