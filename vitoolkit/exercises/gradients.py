"""Exercises ``score_function_gradient`` and ``pathwise_gradient`` (lesson 04).

Graded against :func:`vitoolkit.gradients.gaussian_gradients` (estimators
``"score"`` and ``"pathwise"``). The grader draws the student's noise ``eps`` from
a seeded generator exactly as ``gaussian_gradients`` draws its own (one
``torch.randn`` of shape ``(S, *loc.shape)`` in float64), hands the toolkit a generator
with the same seed, and verifies that both saw the same draws, so the two are
compared sample by sample. Unbiasedness is checked against
:func:`vitoolkit.gradients.exact_gaussian_gradient`.
"""

from __future__ import annotations

import math

import torch

from ..gradients import Cosine, GaussianBump, Linear, Quadratic, exact_gaussian_gradient, gaussian_gradients
from .grading import Failed, Grader
from .registry import register

__all__ = ["score_function_gradient", "pathwise_gradient"]


def score_function_gradient(cost, loc, scale, eps):
    r"""Per-sample score-function (REINFORCE) estimates of the gradient of E_q[cost(x)].

    q = N(loc, diag scale^2), x = loc + scale * eps with eps ~ N(0, I) given.
    Mohamed, Rosca, Figurnov & Mnih (JMLR 2020), section 4, eq. (13)::

        d/d theta E_q[f(x)] = E_q[ f(x) d/d theta log q(x; theta) ],

    so each draw gives f(x_s) times the score of q at x_s, for theta = loc and
    theta = scale, coordinate by coordinate.

    Parameters
    ----------
    cost : callable
        f: maps a tensor of shape (..., D) to (...).
    loc : Tensor of shape (D,) (or (B, D) for a batch of problems)
    scale : Tensor broadcastable to loc's shape, > 0
    eps : Tensor of shape (S, D) (or (S, B, D))
        Standard-normal draws.

    Returns
    -------
    g_loc, g_scale : Tensor of shape (S, D) (or (S, B, D))
        One estimate per draw; their mean over S estimates the gradient.
        Must stay accurate when ``|loc|`` is much larger than scale (loc ~ 1e8, scale ~ 1e-3).
    """
    x = loc + scale * eps
    f = cost(x).unsqueeze(-1)  # (S, ..., 1): one cost per draw, shared by every coordinate
    return f * eps / scale, f * (eps**2 - 1) / scale


def pathwise_gradient(cost, loc, scale, eps):
    r"""Per-sample pathwise (reparameterisation) estimates of the gradient of E_q[cost(x)].

    q = N(loc, diag scale^2), x = loc + scale * eps with eps ~ N(0, I) given.
    Mohamed, Rosca, Figurnov & Mnih (JMLR 2020), section 5, eq. (34)::

        d/d theta E_q[f(x)] = E_eps[ f'(x) dx/d theta ],

    so each draw gives the derivative of f at x_s times the derivative of the
    path x = loc + scale * eps with respect to loc and to scale. Use autograd
    (``torch.autograd.grad``) for f'.

    Parameters
    ----------
    cost : callable
        f: maps a tensor of shape (..., D) to (...), differentiable by autograd.
    loc : Tensor of shape (D,) (or (B, D) for a batch of problems)
    scale : Tensor broadcastable to loc's shape, > 0
    eps : Tensor of shape (S, D) (or (S, B, D))
        Standard-normal draws.

    Returns
    -------
    g_loc, g_scale : Tensor of shape (S, D) (or (S, B, D))
        One estimate per draw; their mean over S estimates the gradient.
        Must stay accurate when ``|loc|`` is much larger than scale (loc ~ 1e8, scale ~ 1e-3).
    """
    x = (loc + scale * eps).detach().requires_grad_(True)
    with torch.enable_grad():
        # The draws are independent, so the gradient of the summed cost holds every f'(x_s).
        (grad,) = torch.autograd.grad(cost(x).sum(), x)
    return grad, grad * eps


# ----------------------------------------------------------------------------- references
def _draws(seed: int, shape) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _reference(estimator: str, cost, loc, scale, seed: int, num_samples: int):
    """The toolkit's per-sample estimates and the eps they used (checked to be the grader's eps)."""
    loc_b, scale_b = torch.broadcast_tensors(loc, scale)
    eps = _draws(seed, (num_samples, *loc_b.shape))
    ref = gaussian_gradients(cost, loc, scale, estimator=estimator, num_samples=num_samples,
                             generator=torch.Generator().manual_seed(seed))
    # The comparison is sample by sample, so the toolkit must have drawn exactly these eps.
    if estimator == "score":
        f = cost(loc_b + scale_b * eps).unsqueeze(-1)
        same = torch.allclose(ref.loc, f * eps / scale_b, rtol=1e-12, atol=0.0)
    else:
        same = torch.allclose(ref.scale, ref.loc * eps, rtol=1e-12, atol=1e-300)
    if not same:  # pragma: no cover - only if gaussian_gradients changes how it draws
        raise RuntimeError("the exercise grader and vitoolkit.gradients.gaussian_gradients no longer "
                           "draw the same noise; update vitoolkit/exercises/gradients.py")
    return eps, ref.loc, ref.scale


def _autograd(cost, x):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(cost(x).sum(), x)
    return grad


def _score_mistakes(cost, loc, scale, eps, part: str):
    x = loc + scale * eps
    f = cost(x).unsqueeze(-1)
    f_eps = cost(eps).unsqueeze(-1)
    grad = _autograd(cost, x)
    if part == "loc":
        return [
            ("these are pathwise (reparameterisation) estimates, not score-function ones",
             lambda: grad),
            ("the factor 1/scale is missing (that is the score with respect to a standardised location)",
             lambda: f * eps),
            ("there is an extra factor 1/scale: eps is already standardised, x - loc = scale * eps",
             lambda: f * eps / scale**2),
            ("the cost factor f(x) is missing: the estimate is f(x) times the score", lambda: eps / scale),
            ("the cost was evaluated at eps instead of at the sample x = loc + scale * eps",
             lambda: f_eps * eps / scale),
            ("a baseline was subtracted (f(x) - mean f): unbiased, but this exercise asks for the plain "
             "estimator", lambda: (f - f.mean(0, keepdim=True)) * eps / scale),
            ("the score was recomputed from x - loc, which cancels catastrophically when |loc| >> scale; "
             "eps is given, use it", lambda: f * (x - loc) / scale**2),
        ]
    return [
        ("these are pathwise (reparameterisation) estimates, not score-function ones",
         lambda: grad * eps),
        ("the -1 in the score with respect to scale is missing (the estimator is then biased)",
         lambda: f * eps**2 / scale),
        ("that is the score of loc, not of scale", lambda: f * eps / scale),
        ("the factor 1/scale is missing (that is the derivative with respect to log scale)",
         lambda: f * (eps**2 - 1)),
        ("that is the derivative with respect to the variance scale^2, not the standard deviation scale",
         lambda: f * (eps**2 - 1) / (2 * scale**2)),
        ("there is an extra factor 1/scale", lambda: f * (eps**2 - 1) / scale**2),
        ("the cost factor f(x) is missing", lambda: (eps**2 - 1) / scale),
        ("the cost was evaluated at eps instead of at the sample x = loc + scale * eps",
         lambda: f_eps * (eps**2 - 1) / scale),
        ("a baseline was subtracted (f(x) - mean f): unbiased, but this exercise asks for the plain "
         "estimator", lambda: (f - f.mean(0, keepdim=True)) * (eps**2 - 1) / scale),
        ("the score was recomputed from x - loc, which cancels catastrophically when |loc| >> scale; "
         "eps is given, use it", lambda: f * ((x - loc) ** 2 - scale**2) / scale**3),
    ]


def _pathwise_mistakes(cost, loc, scale, eps, part: str):
    x = loc + scale * eps
    grad = _autograd(cost, x)
    f = cost(x).unsqueeze(-1)
    n = eps.shape[0]
    at_loc = _autograd(cost, (loc + 0 * scale).expand_as(x))
    if part == "loc":
        return [
            ("the gradient was taken at loc instead of at each sample x = loc + scale * eps",
             lambda: at_loc),
            ("each estimate is divided by S: differentiate the sum of the costs, not their mean "
             "(the draws are independent)", lambda: grad / n),
            ("each estimate is divided by the number of costs: differentiate their sum, not their mean",
             lambda: grad / (grad.numel() / grad.shape[-1])),
            ("every row is the average over the draws: return one estimate per draw",
             lambda: grad.mean(0, keepdim=True).expand_as(grad)),
            ("these are score-function estimates; the pathwise estimator differentiates the cost along "
             "the path x = loc + scale * eps", lambda: f * eps / scale),
        ]
    return [
        ("g_scale is missing the factor dx/dscale = eps", lambda: grad),
        ("g_scale multiplies by x; the path derivative dx/dscale is eps", lambda: grad * x),
        ("g_scale has an extra factor scale", lambda: grad * eps * scale),
        ("the gradient was taken at loc instead of at each sample x", lambda: at_loc * eps),
        ("each estimate is divided by S: differentiate the sum of the costs, not their mean",
         lambda: grad * eps / n),
        ("each estimate is divided by the number of costs: differentiate their sum, not their mean",
         lambda: grad * eps / (grad.numel() / grad.shape[-1])),
        ("every row is the average over the draws: return one estimate per draw",
         lambda: (grad * eps).mean(0, keepdim=True).expand_as(grad)),
        ("these are score-function estimates; the pathwise estimator differentiates the cost along "
         "the path", lambda: f * (eps**2 - 1) / scale),
        ("dx/dscale was recomputed as (x - loc) / scale, which cancels catastrophically when "
         "|loc| >> scale; eps is given, use it", lambda: grad * ((x - loc) / scale)),
    ]


_RTOL, _ATOL = 1e-6, 1e-10


def _atol(want: torch.Tensor) -> float:
    # Per-sample values span many magnitudes (an estimate is ~0 where eps^2 ~ 1); rounding in an
    # equivalent formula is relative to the largest value, so the absolute tolerance scales with it.
    return _ATOL + 1e-12 * float(want.abs().max())
_PRECISION = ("small errors that grow with |loc| / scale point to lost precision: recomputing "
              "x - loc cancels catastrophically when |loc| >> scale, and eps is given")


def _output_hints(s: int, shape: tuple[int, ...]) -> dict:
    return {shape: "you averaged (or summed) over the draws: return one estimate per draw, shape (S, ...)",
            (s, *shape[:-1]): "the dimension axis is gone (summed over D?): one estimate per coordinate",
            (s,): "the dimension axis is gone (summed over D?): one estimate per coordinate",
            (): "a single number was returned: one estimate per draw and coordinate is expected"}


def _per_sample_cases(g: Grader, fn, estimator: str, name: str, cost, loc, scale, num_samples: int, *,
                      split: bool = False, fallback: str = ""):
    """Per-sample comparison with the toolkit: one check for (g_loc, g_scale), or one each (``split``)."""
    seed = g.new_seed()
    eps, ref_loc, ref_scale = _reference(estimator, cost, loc, scale, seed, num_samples)
    mistakes = _score_mistakes if estimator == "score" else _pathwise_mistakes
    shape = tuple(ref_loc.shape)
    outputs: list = []
    label = {"loc": "g_loc", "scale": "g_scale"}
    for group in ([("loc",), ("scale",)] if split else [("loc", "scale")]):
        with g.case(f"{name}: {label[group[0]]}" if split else name) as case:
            if not outputs:
                outputs.append(case.unpack(case.call(fn, cost, loc, scale, eps), ("g_loc", "g_scale")))
            out = outputs[0]
            for part in group:
                want = ref_loc if part == "loc" else ref_scale
                got = case.tensor(out[0 if part == "loc" else 1], label[part], shape,
                                  _output_hints(num_samples, shape[1:]))
                # A float32 answer: normwise, relative to the largest estimate (an estimate near 0 is a
                # difference of rounded terms of that size).
                case.compare(got, want, label[part], rtol=_RTOL, atol=_atol(want),
                             scale=want.abs().max() if case.low_dtype is not None else None,
                             mistakes=mistakes(cost, loc, scale, eps, part), fallback=fallback)
            if len(group) > 1:
                case.note = "g_loc and g_scale correct"


def _unbiased_case(g: Grader, fn, estimator: str, cost, loc, scale, num_samples: int):
    """The means over many draws against the exact gradient, within 4.5 standard errors."""
    seed = g.new_seed()
    eps, ref_loc, ref_scale = _reference(estimator, cost, loc, scale, seed, num_samples)
    exact = exact_gaussian_gradient(cost, loc, scale)
    name = (f"unbiased: the mean of S = {num_samples} estimates is within 4.5 standard errors of the "
            f"exact gradient ({cost!r})")
    with g.case(name) as case:
        out = case.unpack(case.call(fn, cost, loc, scale, eps), ("g_loc", "g_scale"))
        worst = []
        for index, (label, want_exact, ref) in enumerate((("g_loc", exact[0], ref_loc),
                                                          ("g_scale", exact[1], ref_scale))):
            got = case.tensor(out[index], label, tuple(ref.shape),
                              _output_hints(num_samples, tuple(ref.shape[1:])))
            case.finite(got, label)
            mean = got.mean(0)
            stderr = got.std(0) / math.sqrt(num_samples)
            z = (mean - want_exact).abs() / stderr.clamp_min(1e-300)
            # The toolkit's estimates are unbiased (tested in tests/test_gradients.py); a function that
            # reproduces them sample by sample passes whatever this draw's z is.
            same = bool(((got - ref).abs() <= _atol(ref) + _RTOL * ref.abs()).all())
            if not same and bool((z > 4.5).any()):
                if bool((stderr[z > 4.5] == 0).any()):
                    raise Failed(f"{label} is biased: its estimates do not vary across the draws, and "
                                 "their common value is not the exact gradient")
                raise Failed(f"{label} is biased: its mean differs from the exact gradient by "
                             f"{float(z.max()):.3g} standard errors (false-alarm rate of a correct "
                             "estimator at 4.5 standard errors: about 7e-6 per coordinate)")
            worst.append(float(z.max()))
        case.note = f"largest deviation {max(worst):.2f} standard errors (limit 4.5)"


def _grade(fn, g: Grader, estimator: str) -> None:
    d = 3
    _per_sample_cases(g, fn, estimator, "per-sample estimates: cost (x - k)^2, D = 3, S = 64",
                      Quadratic(float(g.uniform(-1, 1, 1))), g.randn(d), g.uniform(0.5, 2.0, d), 64,
                      split=True)
    _per_sample_cases(g, fn, estimator, "cost cos(2 x), D = 2, S = 50", Cosine(2.0), g.randn(2),
                      g.uniform(0.3, 1.5, 2), 50)
    _per_sample_cases(g, fn, estimator, "batch of problems: loc, scale of shape (4, 2), eps (S, 4, 2)",
                      GaussianBump(0.5), g.randn(4, 2), g.uniform(0.5, 2.0, 4, 2), 16)
    _per_sample_cases(g, fn, estimator, "broadcasting: a scalar scale against loc of shape (3,)",
                      Quadratic(0.5), g.randn(3), torch.tensor(0.7, dtype=torch.float64), 16)
    _per_sample_cases(g, fn, estimator, "precision when |loc| >> scale (loc ~ 1e8, scale ~ 1e-3)",
                      Linear(1.0), 1e8 * (1 + g.uniform(0, 1, 2)), g.uniform(0.5e-3, 2e-3, 2), 16,
                      fallback=_PRECISION)
    _unbiased_case(g, fn, estimator, Quadratic(0.5), g.randn(2), g.uniform(0.5, 1.5, 2), 20_000)


@register(reference=score_function_gradient, lesson="04_gradient_estimators",
          title="per-sample score-function estimates of d/d(loc, scale) E_q[cost(x)]")
def grade_score_function_gradient(fn, g: Grader) -> None:
    _grade(fn, g, "score")


@register(reference=pathwise_gradient, lesson="04_gradient_estimators",
          title="per-sample pathwise (reparameterisation) estimates of d/d(loc, scale) E_q[cost(x)]")
def grade_pathwise_gradient(fn, g: Grader) -> None:
    _grade(fn, g, "pathwise")
