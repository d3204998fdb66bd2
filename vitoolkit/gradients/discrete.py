r"""Gradients of expectations under discrete q: REINFORCE, Gumbel-softmax, enumeration.

For a Bernoulli or Categorical q with logits theta, sampling is not
reparameterisable (there is no ``rsample``: a small change of theta moves no
sample until one jumps), so the estimators are:

- the score function (REINFORCE; Williams 1992; Mohamed et al. 2020, eq. 13):
  :math:`f(b) \nabla_\theta \log q(b)`, with
  :math:`\nabla_\theta \log q(b) = b - \sigma(\theta)` (Bernoulli) or
  :math:`\mathrm{onehot}(b) - \operatorname{softmax}(\theta)` (Categorical); optionally with
  a baseline;
- the Gumbel-softmax / Concrete relaxation (Jang, Gu & Poole 2017; Maddison,
  Mnih & Teh 2017): replace the one-hot b by
  :math:`y = \operatorname{softmax}((\theta + G) / \tau)`, :math:`G \sim \mathrm{Gumbel}` (the core's
  :func:`vitoolkit.distributions.gumbel_softmax_sample`; exact draws
  of b come from its hard half, :func:`vitoolkit.distributions.gumbel_max_sample`;
  for Bernoulli, the binary Concrete :math:`\sigma((\theta + L) / \tau)`,
  :math:`L \sim \mathrm{Logistic}`), and differentiate f(y) by autograd. It is biased (it
  differentiates :math:`E[f(y)]`, not :math:`E[f(b)]`); the bias shrinks as the temperature
  :math:`\tau \to 0` while the variance grows. ``"straight_through"`` uses the hard b forwards and y's
  gradient
  backwards (Bengio et al. 2013), also biased;
- the exact gradient by enumerating every outcome.

Shapes: Bernoulli logits (..., D) are D independent bits and ``cost`` maps
(..., D) in {0, 1}^D to (...). Categorical logits (..., K) are one variable
with K classes and ``cost`` maps a one-hot (..., K) to (...).
"""

from __future__ import annotations

import itertools

import torch

from ..distributions import gumbel_max_sample, gumbel_softmax_sample
from ..validation import as_float_tensor, check_memory, check_positive
from ._checks import WORKING_COPIES, check_choice, check_num_samples, evaluate_cost, no_graph_is_constant

__all__ = [
    "DISCRETE_ESTIMATORS",
    "FAMILIES",
    "discrete_gradients",
    "exact_discrete_gradient",
    "discrete_expectation",
]

#: The discrete families.
FAMILIES = ("bernoulli", "categorical")
#: The estimators of :func:`discrete_gradients`.
DISCRETE_ESTIMATORS = ("score", "score_baseline", "score_loo", "gumbel_softmax", "straight_through")
_MAX_BITS = 20


def _check_logits(logits, family: str) -> torch.Tensor:
    t = as_float_tensor(logits, "logits", dtype=torch.float64)
    if t.ndim == 0:
        raise ValueError(
            f"logits must have shape (..., D) for bernoulli or (..., K) for categorical, "
            f"got a scalar {t.item()!r}"
        )
    if family == "categorical" and t.shape[-1] < 2:
        raise ValueError(f"categorical logits need K >= 2 classes, got shape {tuple(t.shape)}")
    return t


def _draw(logits, family, n, generator):
    """Hard samples (n, *logits.shape) in {0, 1}: bits or one-hot rows."""
    if family == "bernoulli":
        u = torch.rand((n, *logits.shape), generator=generator, dtype=torch.float64)
        return (u < torch.sigmoid(logits)).to(torch.float64)
    return gumbel_max_sample(logits, (n,), generator=generator)


def _score_of(b, logits, family):
    if family == "bernoulli":
        return b - torch.sigmoid(logits)
    return b - torch.softmax(logits, -1)


def _binary_concrete(theta, temperature, generator):
    """sigmoid((theta + L) / tau), L ~ Logistic(0, 1), and its hard bits, one draw per entry."""
    tiny, eps = torch.finfo(theta.dtype).tiny, torch.finfo(theta.dtype).eps
    u = torch.rand(theta.shape, generator=generator, dtype=theta.dtype).clamp(tiny, 1 - eps)
    y = torch.sigmoid((theta + (torch.log(u) - torch.log1p(-u))) / temperature)
    return y, (y > 0.5).to(y.dtype)


def _relaxed_gradients(cost, logits, family, n, generator, temperature, straight_through):
    # One copy of the logits per draw: the gradient of the summed cost w.r.t. copy i is draw i's.
    theta = logits.expand(n, *logits.shape).clone().requires_grad_(True)
    grad = None
    with torch.enable_grad():
        if family == "bernoulli":
            y, hard = _binary_concrete(theta, temperature, generator)
        else:
            y, hard = gumbel_softmax_sample(theta, temperature, generator=generator)
        if straight_through:
            y = hard + y - y.detach()
        f = evaluate_cost(cost, y)
        if f.requires_grad:
            (grad,) = torch.autograd.grad(f.sum(), theta, allow_unused=True)
        else:
            no_graph_is_constant(f, (
                "the Gumbel-softmax estimator differentiates the cost at relaxed (continuous) "
                "inputs, but the cost's output carries no gradient with respect to them while "
                "its values vary across draws (computed outside torch, or piecewise constant)"))
    if grad is None:
        grad = torch.zeros_like(theta)
    if not bool(torch.isfinite(grad).all()):
        raise ValueError("the cost's gradient at the relaxed samples is not finite")
    return grad.detach()


def _check_family(family) -> str:
    return check_choice(family, FAMILIES, "family")


def discrete_gradients(cost, logits, *, family: str, estimator: str, num_samples: int,
                       generator: torch.Generator | None = None, temperature: float | None = None,
                       baseline=None) -> torch.Tensor:
    r"""Per-sample estimates of d/d logits E_{q(b | logits)}[cost(b)], one batched call.

    Parameters
    ----------
    cost : callable
        Bernoulli: (..., D) in {0, 1}^D -> (...); Categorical: one-hot (..., K) -> (...).
        The relaxed estimators evaluate it at points of [0, 1]^D or the simplex,
        so it must be written in torch and accept such inputs.
    logits : array-like of shape (..., D) or (..., K)
    family : {"bernoulli", "categorical"}
    estimator : {"score", "score_baseline", "score_loo", "gumbel_softmax", "straight_through"}
        The score-function estimators are unbiased: per sample (f(b) - c) (b - p)
        with p = sigmoid or softmax of the logits and c = 0, a constant baseline
        (``baseline``, default the mean of f on an independent pilot batch) or
        the leave-one-out mean of the other draws. The relaxed estimators are
        biased (module docstring) and need ``temperature``.
    num_samples : int >= 2
    generator : torch.Generator, optional
    temperature : float, optional
        tau > 0 of the relaxation.
    baseline : float or Tensor of shape logits.shape[:-1], optional

    Returns
    -------
    Tensor of shape ``(num_samples, *logits.shape)``, float64.
    """
    family = _check_family(family)
    if getattr(estimator, "value", estimator) in ("pathwise", "reparameterised", "reparameterized"):
        raise ValueError(
            f"{family} sampling has no rsample (it is not reparameterisable: samples jump), so "
            "the pathwise estimator does not exist; use 'score', 'score_baseline', 'score_loo', "
            "or the biased relaxation 'gumbel_softmax'"
        )
    key = check_choice(estimator, DISCRETE_ESTIMATORS, "estimator")
    logits = _check_logits(logits, family)
    n = check_num_samples(num_samples, minimum=2, values_per_sample=logits.numel(), copies=WORKING_COPIES)
    if not callable(cost):
        raise TypeError(f"cost must be callable, got {type(cost).__name__}")
    if key in ("gumbel_softmax", "straight_through"):
        if temperature is None:
            raise ValueError(f"estimator {key!r} needs a temperature > 0")
        tau = check_positive(temperature, "temperature")
        return _relaxed_gradients(cost, logits, family, n, generator, tau,
                                  key == "straight_through")
    with torch.no_grad():
        b = _draw(logits, family, n, generator)
        f = evaluate_cost(cost, b).unsqueeze(-1)
        score = _score_of(b, logits, family)
        if key == "score":
            return f * score
        if key == "score_loo":
            return (f - (f.sum(0, keepdim=True) - f) / (n - 1)) * score
        if baseline is None:
            c = evaluate_cost(cost, _draw(logits, family, n, generator)).mean(0).unsqueeze(-1)
        else:
            c = as_float_tensor(baseline, "baseline", dtype=torch.float64)
            try:
                c = c.expand(logits.shape[:-1]).unsqueeze(-1)
            except RuntimeError as err:
                raise ValueError(f"baseline must broadcast to the batch shape "
                                 f"{tuple(logits.shape[:-1])}, got shape {tuple(c.shape)}") from err
        return (f - c) * score


def _outcomes(logits, family):
    """Every outcome, shape (M, *logits.shape), and its log probability, shape (M, *batch, ...)."""
    width = logits.shape[-1]
    batch_ones = (1,) * (logits.ndim - 1)
    if family == "bernoulli":
        if width > _MAX_BITS:
            raise ValueError(
                f"enumeration over D={width} Bernoulli bits needs 2^{width} outcomes; "
                f"use D <= {_MAX_BITS} or a Monte Carlo estimator"
            )
        outcomes = 2**width
        check_memory(4 * 8 * outcomes * logits.numel(), "logits", f"<shape {tuple(logits.shape)}>",
                     f"{outcomes} outcomes for each of {logits.numel() // width} problems")
        table = torch.tensor(list(itertools.product((0.0, 1.0), repeat=width)),
                             dtype=torch.float64)
        b = table.reshape(table.shape[0], *batch_ones, width).expand(-1, *logits.shape)
        log_p = (b * torch.nn.functional.logsigmoid(logits)
                 + (1 - b) * torch.nn.functional.logsigmoid(-logits)).sum(-1)
    else:
        eye = torch.eye(width, dtype=torch.float64)
        b = eye.reshape(width, *batch_ones, width).expand(-1, *logits.shape)
        log_p = (b * torch.log_softmax(logits, -1)).sum(-1)
    return b, log_p


def discrete_expectation(cost, logits, *, family: str) -> torch.Tensor:
    """E_q[cost(b)] by enumeration; shape logits.shape[:-1]."""
    family = _check_family(family)
    logits = _check_logits(logits, family)
    with torch.no_grad():
        b, log_p = _outcomes(logits, family)
        return (log_p.exp() * evaluate_cost(cost, b)).sum(0)


def exact_discrete_gradient(cost, logits, *, family: str) -> torch.Tensor:
    r"""The exact gradient in the logits of E_q[cost(b)], by enumerating every outcome.

    .. math::

        \nabla_\theta E_q[f(b)] = \sum_b q(b) \, f(b) \, (b - p),

    with p the probabilities (``sigmoid`` or ``softmax`` of the logits) and b one-hot
    for a Categorical.

    Bernoulli enumerates the 2^D bit vectors (D <= 20); Categorical the K classes.

    Returns
    -------
    Tensor of logits' shape, float64.
    """
    family = _check_family(family)
    logits = _check_logits(logits, family)
    with torch.no_grad():
        b, log_p = _outcomes(logits, family)
        f = evaluate_cost(cost, b)
        weights = (log_p.exp() * f).unsqueeze(-1)
        return (weights * _score_of(b, logits, family)).sum(0)
