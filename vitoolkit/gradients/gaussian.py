r"""Per-sample estimators of the gradient of a Gaussian expectation.

We want

.. math::

    \nabla_\theta E_{q_\theta}[f(x)], \qquad
    q_\theta(x) = \prod_d \mathcal N(x_d \mid \mu_d, \sigma_d^2), \quad \theta = (\mu, \sigma).

Sampling :math:`x \sim q` is not a differentiable operation of theta,
so the gradient cannot be obtained by backpropagating through a draw; the
estimators below each rewrite the gradient as an expectation that can be
sampled (Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in
Machine Learning", JMLR 2020; section numbers below refer to it).

Every estimator returns one gradient estimate per draw, computed for the whole
batch in one vectorised call, so the mean, variance and signal-to-noise ratio
of an estimator all come from the same draws.
"""

from __future__ import annotations

import enum
import math
from typing import NamedTuple

import torch

from ..distributions import reparameterise
from ..validation import as_float_tensor
from ._checks import (
    WORKING_COPIES,
    as_params,
    check_choice,
    check_finite_result,
    check_num_samples,
    describe_inputs,
    evaluate_cost,
    no_graph_is_constant,
)

__all__ = ["GradientSamples", "GradientEstimator", "GAUSSIAN_ESTIMATORS", "ESTIMATORS", "gaussian_gradients"]

_SQRT_2PI = math.sqrt(2.0 * math.pi)
# Measure-valued estimates evaluate the cost on (num_samples, ..., D, D) points; above this
# many elements the draws are processed in blocks to bound memory.
_MAX_BLOCK_ELEMENTS = 4_000_000


class GradientSamples(NamedTuple):
    """Per-sample gradient estimates: ``loc`` and ``scale``, each ``(num_samples, *loc.shape)``."""

    loc: torch.Tensor
    scale: torch.Tensor


class GradientEstimator(str, enum.Enum):
    r"""The named gradient estimators and their variance trade-offs.

    With :math:`x = \mu + \sigma \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`
    (section numbers of Mohamed, Rosca, Figurnov & Mnih, JMLR 2020):

    ``SCORE`` ("score")
        Score function / REINFORCE (section 4, eq. 13):
        :math:`f(x) \nabla_\theta \log q_\theta(x)`. Per sample
        :math:`f(x) \, \varepsilon / \sigma` and :math:`f(x) (\varepsilon^2 - 1) / \sigma`. Needs only values
        of f, so it works for any f, even a step; its variance grows with the
        size of f (it does not vanish when f is constant) and with the number
        of dimensions, because every coordinate's estimate carries all of f.
    ``SCORE_BASELINE`` ("score_baseline")
        Score function with a constant baseline b (section 7.4):
        :math:`(f(x) - b) \nabla_\theta \log q_\theta(x)`. Unbiased for any b independent
        of x because :math:`E_q[\nabla_\theta \log q_\theta] = 0`. ``b`` defaults to the
        mean of f over an independent pilot batch of the same size (what a moving average over past iterations
        approximates); pass ``baseline=`` to fix it. Removes the variance due
        to the level of f, not to its shape.
    ``SCORE_LOO`` ("score_loo")
        Leave-one-out baseline: :math:`b_i = \frac{1}{S - 1} \sum_{j \ne i} f(x_j)`, the
        mean of f over the other draws of the same batch (Kool, van Hoof & Welling 2019; Mnih & Rezende 2016).
        No pilot batch is needed; the per-sample estimates are unbiased and
        correlated only at order 1/num_samples.
    ``SCORE_OPTIMAL_CV`` ("score_optimal_cv")
        The variance-optimal control variate (section 7.2, eq. 61-62): the score
        itself times :math:`c^* = E[f s^2] / E[s^2]`, one coefficient per parameter
        (s the score of that parameter), with c* estimated on an independent
        pilot batch. At least as good as any constant baseline, per parameter.
    ``PATHWISE`` ("pathwise")
        Reparameterisation (section 5, eq. 34): :math:`f'(x)` and
        :math:`f'(x) \, \varepsilon`, by autograd on the batch. Usually lowest variance
        for smooth f of moderate curvature and insensitive to dimension, but it needs f differentiable
        and its variance grows with the size of :math:`f'`: for :math:`\cos(k x)` or
        :math:`\exp(-k x^2)` with large k it loses to the score function (section 3, figure 2).
    ``MEASURE_VALUED`` ("measure_valued")
        Gaussian weak derivatives (section 6, table 1):

        .. math::

            \frac{\partial}{\partial\mu} E_q[f]
                = \frac{E f(\mu + \sigma R) - E f(\mu - \sigma R')}{\sigma \sqrt{2\pi}},
            \qquad
            \frac{\partial}{\partial\sigma} E_q[f]
                = \frac{E f(\mu + \sigma M) - E f(\mu + \sigma \varepsilon)}{\sigma},

        with R, R' Rayleigh and M double-sided Maxwell. Needs only values of f, but 4 D
        evaluations per sample; low variance, the two halves drawn independently.
    ``MEASURE_VALUED_COUPLED`` ("measure_valued_coupled")
        The same with common random numbers (section 7.3): :math:`R' = R`, and
        :math:`\varepsilon = M U` with :math:`U \sim \mathrm{Uniform}(0, 1)` (which is N(0, 1) when M is
        double-sided Maxwell), plus shared values of the other coordinates.
        The halves cancel to first order, so the variance is far lower still.
    """

    SCORE = "score"
    SCORE_BASELINE = "score_baseline"
    SCORE_LOO = "score_loo"
    SCORE_OPTIMAL_CV = "score_optimal_cv"
    PATHWISE = "pathwise"
    MEASURE_VALUED = "measure_valued"
    MEASURE_VALUED_COUPLED = "measure_valued_coupled"

    def __str__(self) -> str:
        return self.value


#: Names of the estimators accepted by :func:`gaussian_gradients`.
#: The estimators of :func:`gaussian_gradients` (one name per set: the ELBO's are
#: :data:`~vitoolkit.gradients.elbo.ELBO_ESTIMATORS`, the discrete ones
#: :data:`~vitoolkit.gradients.discrete.DISCRETE_ESTIMATORS`).
GAUSSIAN_ESTIMATORS = tuple(e.value for e in GradientEstimator)
#: The former name of :data:`GAUSSIAN_ESTIMATORS`.
ESTIMATORS = GAUSSIAN_ESTIMATORS


def _randn(shape, generator):
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def _rand(shape, generator):
    return torch.rand(shape, generator=generator, dtype=torch.float64)


def _rayleigh(shape, generator):
    # Inverse CDF of Rayleigh(1): R = sqrt(-2 log(1 - U)).
    return torch.sqrt(-2.0 * torch.log1p(-_rand(shape, generator)))


def _double_sided_maxwell(shape, generator):
    # |M| ~ Maxwell(1) is the norm of a 3-D standard normal: |M|^2 ~ chi^2_3 = chi^2_2 + chi^2_1,
    # and chi^2_2 = -2 log(1 - U) (an exponential), which saves two normal draws.
    # The sign is a fair coin, taken from the sign of the normal (independent of its square).
    z = _randn(shape, generator)
    chi = torch.sqrt(-2.0 * torch.log1p(-_rand(shape, generator)) + z**2)
    return torch.where(z < 0, -chi, chi)


def _evaluate(cost, x, loc, scale):
    """cost(x) for points x drawn with (loc, scale), checked; an overflow names loc or scale."""
    inputs = {"loc": loc, "scale": scale}
    if isinstance(getattr(cost, "k", None), torch.Tensor):  # a test cost: its k may be the cause
        inputs["the cost's k"] = cost.k
    return evaluate_cost(cost, x, inputs=inputs)


def _score(cost, loc, scale, eps):
    f = _evaluate(cost, reparameterise(loc, scale, eps), loc, scale).unsqueeze(-1)
    return f, eps / scale, (eps**2 - 1) / scale


def _score_estimator(cost, loc, scale, n, generator, baseline):
    f, s_loc, s_scale = _score(cost, loc, scale, _randn((n, *loc.shape), generator))
    return GradientSamples(f * s_loc, f * s_scale)


def _pilot_mean(cost, loc, scale, n, generator):
    eps = _randn((n, *loc.shape), generator)
    return _evaluate(cost, reparameterise(loc, scale, eps), loc, scale).mean(0).unsqueeze(-1)


def _score_baseline(cost, loc, scale, n, generator, baseline):
    if baseline is None:
        b = _pilot_mean(cost, loc, scale, n, generator)
    else:
        b = as_float_tensor(baseline, "baseline", dtype=torch.float64)
        try:
            b = b.expand(loc.shape[:-1]).unsqueeze(-1)
        except RuntimeError as err:
            raise ValueError(
                f"baseline must broadcast to the batch shape {tuple(loc.shape[:-1])}, "
                f"got shape {tuple(b.shape)}"
            ) from err
    f, s_loc, s_scale = _score(cost, loc, scale, _randn((n, *loc.shape), generator))
    return GradientSamples((f - b) * s_loc, (f - b) * s_scale)


def _score_loo(cost, loc, scale, n, generator, baseline):
    f, s_loc, s_scale = _score(cost, loc, scale, _randn((n, *loc.shape), generator))
    b = (f.sum(0, keepdim=True) - f) / (n - 1)
    return GradientSamples((f - b) * s_loc, (f - b) * s_scale)


def _score_optimal_cv(cost, loc, scale, n, generator, baseline):
    # c* = E[f s^2] / E[s^2] for each parameter (Mohamed et al. eq. 62 with the score as the
    # control variate), estimated on an independent pilot batch so each estimate stays unbiased.
    f0, s0_loc, s0_scale = _score(cost, loc, scale, _randn((n, *loc.shape), generator))
    c_loc = (f0 * s0_loc**2).sum(0) / (s0_loc**2).sum(0)
    c_scale = (f0 * s0_scale**2).sum(0) / (s0_scale**2).sum(0)
    f, s_loc, s_scale = _score(cost, loc, scale, _randn((n, *loc.shape), generator))
    return GradientSamples((f - c_loc) * s_loc, (f - c_scale) * s_scale)


def _pathwise(cost, loc, scale, n, generator, baseline):
    if getattr(cost, "differentiable", True) is False:
        raise ValueError(
            f"the pathwise estimator needs a differentiable cost, but {cost!r} declares "
            "differentiable=False (its derivative is zero almost everywhere, so pathwise would "
            "return 0, not the gradient); use 'score', 'score_baseline' or 'measure_valued'"
        )
    eps = _randn((n, *loc.shape), generator)
    x = reparameterise(loc, scale, eps).requires_grad_(True)
    grad = None
    with torch.enable_grad():
        f = _evaluate(cost, x, loc, scale)
        if f.requires_grad:
            # Draws are independent, so the gradient of the summed cost holds every per-sample f'.
            (grad,) = torch.autograd.grad(f.sum(), x, allow_unused=True)
        else:
            # No graph: a constant (gradient exactly 0) is fine; values that vary do not.
            no_graph_is_constant(f, (
                "the pathwise estimator needs a cost that autograd can differentiate, but the "
                "cost's output carries no gradient with respect to its input while its values "
                "vary across draws (it is piecewise constant, e.g. built from a comparison, or "
                "computed outside torch); use 'score' or 'measure_valued'"))
    if grad is None:
        grad = torch.zeros_like(x)
    if not bool(torch.isfinite(grad).all()):
        text, _ = describe_inputs({"loc": loc, "scale": scale})
        raise ValueError(f"the cost's autograd gradient is not finite at some points drawn with {text}")
    grad = grad.detach()
    if bool((grad == 0).all()) and bool((f.detach().amax(0) > f.detach().amin(0)).any()):
        raise ValueError(
            "the pathwise estimator does not apply: the cost varies across draws but its "
            "autograd gradient is zero at every draw (a piecewise-constant cost such as a step), "
            "so pathwise would return 0 instead of the gradient; use 'score' or 'measure_valued'"
        )
    return GradientSamples(grad, grad * eps)


def _replace_diagonal(base, values):
    """(n, ..., D) base -> (D, n, ..., D) points whose slice d has coordinate d set to values_d.

    The perturbed-coordinate axis goes first so that cost parameters with a batch shape
    (e.g. k of shape (K, 1)) still broadcast against the trailing dimensions.
    """
    d = base.shape[-1]
    points = base.expand(d, *base.shape).clone()
    index = torch.arange(d)
    points[index, ..., index] = values.movedim(-1, 0)
    return points


def _evaluate_perturbed(cost, base, values, loc, scale):
    """cost at each single-coordinate perturbation of base: (n, ..., D)."""
    return _evaluate(cost, _replace_diagonal(base, values), loc, scale).movedim(0, -1)


def _measure_valued_block(cost, loc, scale, n, generator, coupled):
    shape = (n, *loc.shape)
    base_pos = loc + scale * _randn(shape, generator)
    base_neg = base_pos if coupled else loc + scale * _randn(shape, generator)
    # d/d mu: Rayleigh pair around mu (Mohamed et al. table 1), constant 1 / (sigma sqrt(2 pi)).
    r_pos = _rayleigh(shape, generator)
    r_neg = r_pos if coupled else _rayleigh(shape, generator)
    f_pos = _evaluate_perturbed(cost, base_pos, loc + scale * r_pos, loc, scale)
    f_neg = _evaluate_perturbed(cost, base_neg, loc - scale * r_neg, loc, scale)
    g_loc = (f_pos - f_neg) / (scale * _SQRT_2PI)
    # d/d sigma: double-sided Maxwell vs Gaussian, constant 1 / sigma.
    m = _double_sided_maxwell(shape, generator)
    eps = m * _rand(shape, generator) if coupled else _randn(shape, generator)
    f_pos = _evaluate_perturbed(cost, base_pos, loc + scale * m, loc, scale)
    f_neg = _evaluate_perturbed(cost, base_neg, reparameterise(loc, scale, eps), loc, scale)
    g_scale = (f_pos - f_neg) / scale
    return g_loc, g_scale


def _measure_valued(cost, loc, scale, n, generator, baseline, coupled=False):
    d = loc.shape[-1]
    per_draw = max(1, loc.numel() * d)
    block = max(1, _MAX_BLOCK_ELEMENTS // per_draw)
    if n <= block:
        return GradientSamples(*_measure_valued_block(cost, loc, scale, n, generator, coupled))
    # Only very wide problems reach here: blocks of draws bound the (n, ..., D, D) evaluation.
    parts = [
        _measure_valued_block(cost, loc, scale, min(block, n - start), generator, coupled)
        for start in range(0, n, block)
    ]
    return GradientSamples(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


def _measure_valued_coupled(cost, loc, scale, n, generator, baseline):
    return _measure_valued(cost, loc, scale, n, generator, baseline, coupled=True)


_DISPATCH = {
    "score": _score_estimator,
    "score_baseline": _score_baseline,
    "score_loo": _score_loo,
    "score_optimal_cv": _score_optimal_cv,
    "pathwise": _pathwise,
    "measure_valued": _measure_valued,
    "measure_valued_coupled": _measure_valued_coupled,
}


def gaussian_gradients(cost, loc, scale, *, estimator, num_samples: int,
                       generator: torch.Generator | None = None, baseline=None) -> GradientSamples:
    r"""Per-sample estimates of the gradient of a Gaussian expectation of ``cost``.

    .. math::

        \nabla_\theta E_{q_\theta}[f(x)], \qquad
        q_\theta(x) = \prod_d \mathcal N(x_d \mid \mu_d, \sigma_d^2), \quad
        \theta = (\mu, \sigma) = (\text{loc}, \text{scale}),

    with f the ``cost`` and q factorised over the last dimension.
    The gradient is rewritten as
    an expectation and sampled (Mohamed et al. 2020, eq. 13 score function,
    eq. 34 pathwise, table 1 measure-valued); see :class:`GradientEstimator`
    for each estimator's formula and variance trade-off. The mean of the
    returned samples estimates the gradient; their variance is the estimator's.

    Parameters
    ----------
    cost : callable
        Maps a tensor of shape (..., D) to (...), acting independently on the
        leading dimensions (e.g. a :class:`vitoolkit.gradients.costs.Cost`).
        An attribute ``differentiable = False`` marks a cost the pathwise
        estimator must refuse.
    loc : array-like of shape (..., D)
        Means mu. Leading dimensions are a batch of independent problems.
    scale : array-like broadcastable to loc's shape, positive
        Standard deviations sigma.
    estimator : str or GradientEstimator
        One of :data:`GAUSSIAN_ESTIMATORS`.
    num_samples : int >= 2
        Number of draws (one gradient estimate per draw).
    generator : torch.Generator, optional
        Local source of randomness; the global state is left untouched.
    baseline : float or Tensor of shape loc.shape[:-1], optional
        The constant baseline of ``"score_baseline"`` (default: a pilot-batch mean of f).

    Returns
    -------
    GradientSamples
        ``loc`` and ``scale``, each float64 of shape ``(num_samples, *loc.shape)``.

    Raises
    ------
    TypeError
        A count that is not an integer (``2.0``, ``True``), a non-numeric loc or
        scale, a cost that is not callable.
    ValueError
        Non-positive scale, num_samples < 2, an unknown estimator (the message
        lists the valid ones), a cost output of the wrong shape or with
        non-finite values, or ``"pathwise"`` for a non-differentiable cost
        (declared ``differentiable = False``, or whose values vary across the
        draws while autograd finds no gradient). A cost that is constant in x is
        differentiable, with gradient zero.
    vitoolkit.exceptions.ResourceLimitError
        ``num_samples`` too large for memory (a ``ValueError``; raised before
        anything is allocated).
    """
    key = check_choice(estimator, GAUSSIAN_ESTIMATORS, "estimator")
    loc, scale = as_params(loc, scale)
    n = check_num_samples(num_samples, minimum=2, values_per_sample=loc.numel(), copies=WORKING_COPIES)
    if not callable(cost):
        raise TypeError(f"cost must be callable (..., D) -> (...), got {type(cost).__name__}")
    with torch.no_grad():
        samples = _DISPATCH[key](cost, loc, scale, n, generator, baseline)
    # Finite cost values can still overflow once multiplied by a score or divided by a scale.
    inputs = {"loc": loc, "scale": scale}
    if baseline is not None and key == "score_baseline":
        inputs["baseline"] = as_float_tensor(baseline, "baseline", dtype=torch.float64)
    return check_finite_result(samples, f"the {key!r} gradient estimates", inputs)
