"""Exercise ``gumbel_softmax_relaxation`` (lesson 07): the relaxed sample from given uniform noise.

Graded against the toolkit's own sampler,
:func:`vitoolkit.distributions.gumbel_softmax_sample`: the grader draws the uniform
numbers from a seeded generator and asks the toolkit for the sample from a generator
with the same seed, so both turn the same noise into a relaxed sample.
"""

from __future__ import annotations

import torch

from ..distributions import gumbel_softmax_sample
from .grading import Grader
from .registry import register

__all__ = ["gumbel_softmax_relaxation"]


def gumbel_softmax_relaxation(logits, uniform, temperature):
    r"""The Gumbel-softmax (Concrete) sample made from given uniform noise.

    With U_c ~ Uniform(0, 1) i.i.d., G_c = -log(-log U_c) is a standard Gumbel draw
    (Maddison, Mnih & Teh 2017, section 2), and the relaxed one-hot sample is
    (Jang, Gu & Poole 2017, eq. 1; Maddison et al. 2017, eq. 10)::

        y_c = exp((logits_c + G_c) / tau) / sum_j exp((logits_j + G_j) / tau),

    a point of the probability simplex over the K categories (the last dimension).
    As tau -> 0, y tends to the one-hot vector at argmax_c (logits_c + G_c), an exact
    draw of Cat(softmax(logits)). It must stay finite for logits hundreds of nats
    apart and for tau as small as 0.01, where exp overflows.

    Parameters
    ----------
    logits : Tensor of shape (..., K)
        Unnormalised log-probabilities of the K categories.
    uniform : Tensor of shape (S, ..., K)
        Uniform(0, 1) numbers, strictly inside (0, 1): S draws of the noise, one per
        category; ``logits`` broadcasts against them.
    temperature : float > 0
        tau.

    Returns
    -------
    Tensor of shape (S, ..., K): nonnegative, summing to 1 over the last dimension.
    """
    gumbel = -torch.log(-torch.log(uniform))
    return torch.softmax((logits + gumbel) / temperature, dim=-1)


def _reference(logits, seed: int, draws: int, tau: float):
    """The uniform noise and the toolkit's sample made from it (the same seeded generator)."""
    shape = (draws, *logits.shape)
    uniform = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    sample = gumbel_softmax_sample(logits, tau, (draws,),
                                   generator=torch.Generator().manual_seed(seed))
    return uniform, sample.soft.detach()


def _mistakes(logits, uniform, tau):
    gumbel = -torch.log(-torch.log(uniform))
    return [
        ("the softmax runs over the wrong dimension: normalise over the categories, the LAST "
         "dimension (dim=-1), not over the draws",
         lambda: torch.softmax((logits + gumbel) / tau, dim=0)),
        ("the temperature is missing: divide (logits + G) by tau before the softmax",
         lambda: torch.softmax(logits + gumbel, dim=-1)),
        ("the temperature multiplies; it divides: softmax((logits + G) / tau)",
         lambda: torch.softmax((logits + gumbel) * tau, dim=-1)),
        ("only the noise is divided by tau; the logits must be too: softmax((logits + G) / tau)",
         lambda: torch.softmax(logits + gumbel / tau, dim=-1)),
        ("the noise is log U, not Gumbel: a Gumbel draw is G = -log(-log U)",
         lambda: torch.softmax((logits + torch.log(uniform)) / tau, dim=-1)),
        ("the noise is logistic, log U - log(1 - U) (the binary Concrete's); a Gumbel draw is "
         "G = -log(-log U)",
         lambda: torch.softmax((logits + torch.log(uniform) - torch.log1p(-uniform)) / tau,
                               dim=-1)),
        ("the Gumbel draw has the wrong sign: G = -log(-log U), not log(-log U)",
         lambda: torch.softmax((logits + torch.log(-torch.log(uniform))) / tau, dim=-1)),
        ("this is the hard sample one_hot(argmax(logits + G)); the relaxation is the softmax of "
         "(logits + G) / tau, which is differentiable",
         lambda: torch.nn.functional.one_hot((logits + gumbel).argmax(-1),
                                             logits.shape[-1]).to(torch.float64)),
        ("this is softmax(logits): the noise is missing, so every draw is the same",
         lambda: torch.softmax(logits / tau, dim=-1).expand_as(uniform)),
    ]


_RTOL, _ATOL = 1e-9, 1e-12
_OVERFLOW = ("exp((logits + G) / tau) overflowed: subtract the largest entry of each row before "
             "exponentiating, or use torch.softmax")


def _case(g: Grader, fn, name: str, logits, draws: int, tau: float):
    with g.case(name) as case:
        uniform, want = _reference(logits, g.new_seed(), draws, tau)
        shape = tuple(want.shape)
        got = case.tensor(case.call(fn, logits, uniform, tau), "y", shape,
                          {tuple(logits.shape): "one relaxed sample per draw: the output has the "
                                                "uniform noise's shape (S, ..., K)"})
        case.compare(got, want, "y", rtol=_RTOL, atol=_ATOL, mistakes=_mistakes(logits, uniform, tau),
                     nonfinite_hint=_OVERFLOW)


@register(reference=gumbel_softmax_relaxation, lesson="07_discrete_latents",
          title="the Gumbel-softmax (Concrete) relaxed sample from logits, uniform noise and tau")
def grade_gumbel_softmax_relaxation(fn, g: Grader) -> None:
    _case(g, fn, "100 draws, 4 categories, tau = 0.5", g.randn(4), 100, 0.5)
    _case(g, fn, "a batch of logits of shape (3, 6, 5), 20 draws, tau = 2", 2 * g.randn(3, 6, 5),
          20, 2.0)
    _case(g, fn, "tau = 1: the relaxation of Jang et al. at its starting temperature",
          g.randn(2, 10), 30, 1.0)
    _case(g, fn, "low temperature, tau = 0.01 (nearly one-hot)", 3 * g.randn(8, 4), 25, 0.01)
    logits = torch.tensor([[800.0, 0.0, -800.0], [0.0, 0.0, 0.0], [-5.0, 400.0, 399.0]],
                          dtype=torch.float64)
    _case(g, fn, "extreme logits (hundreds of nats apart), tau = 0.1", logits, 15, 0.1)
    _case(g, fn, "two categories (the binary case), tau = 0.25", g.randn(7, 2), 40, 0.25)
