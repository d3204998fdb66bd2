"""Exercise ``rws_encoder_weights`` (lesson 08): reweighted wake-sleep's encoder update.

Graded against the toolkit's own implementation: the weights against
:func:`vitoolkit.vae.wake_sleep.rws_weights` (which ``train(..., objective="rws")``
uses), the encoder's objective against ``sum_k w~_k log q(z_k | x)`` as
:func:`vitoolkit.vae.wake_sleep.rws_encoder_surrogate` forms it.
"""

from __future__ import annotations

import torch

from ..vae.wake_sleep import rws_weights
from .grading import Grader
from .registry import register

__all__ = ["rws_encoder_weights"]


def rws_encoder_weights(log_joint, log_q):
    r"""Self-normalised importance weights and the encoder's wake-phase objective of RWS.

    Reweighted wake-sleep (Bornschein & Bengio 2015, eq. 4-5 and the "wake-phase q
    update"; Le et al. 2019). For each example x draw z_1..z_K ~ q(z | x) and set::

        log w_k = log p(x, z_k) - log q(z_k | x),
        w~_k    = w_k / sum_j w_j                    (self-normalised, sum_k w~_k = 1),
        J(x)    = sum_k w~_k log q(z_k | x).

    The weights are held fixed when differentiating: the gradient of J in the encoder's
    parameters is a self-normalised estimate of -grad KL(p(z | x) || q(z | x)), the
    forward KL, on the real x.

    Parameters
    ----------
    log_joint : Tensor of shape (K, B)
        log p(x_b, z_kb) for K draws (first axis) of each of B examples.
    log_q : Tensor of shape (K, B)
        log q(z_kb | x_b) for the same draws.

    Returns
    -------
    (weights, objective) : Tensors of shapes (K, B) and (B,)
        The normalised weights (each column sums to 1) and J per example. Must be
        accurate for log-weights around +1e3 and -1e4, where exp overflows (underflows)
        in float64.
    """
    log_w = log_joint - log_q
    log_w = log_w - log_w.max(dim=0, keepdim=True).values  # the largest weight becomes exp(0) = 1
    w = torch.exp(log_w)
    weights = w / w.sum(dim=0, keepdim=True)
    return weights, (weights * log_q).sum(dim=0)


def _reference(log_joint, log_q):
    weights = rws_weights(log_joint, log_q)
    return weights, (weights * log_q).sum(0)


_WRONG_AXIS = ("normalised over the wrong axis: the K draws of one example are the first axis "
               "(shape (K, B)); each column must sum to 1")


def _weight_mistakes(lj, lq):
    out = [
        ("the weights are not normalised: divide each w_k by the sum over the K draws",
         lambda: torch.exp(lj - lq)),
        ("the weights use log p(x, z) alone: the importance weight is p(x, z) / q(z | x), "
         "log w = log p(x, z) - log q(z | x)", lambda: torch.softmax(lj, 0)),
        ("the weights are inverted: log w = log p(x, z) - log q(z | x), not log q - log p",
         lambda: torch.softmax(lq - lj, 0)),
        ("the log-weights were normalised (divided by their sum) instead of the weights",
         lambda: (lj - lq) / (lj - lq).sum(0)),
        ("uniform weights 1/K: that is the ELBO's average, not importance weighting",
         lambda: torch.full_like(lj, 1.0 / lj.shape[0])),
    ]
    if lj.shape[0] == lj.shape[1]:
        out.insert(0, (_WRONG_AXIS, lambda: torch.softmax(lj - lq, 1)))
    return out


def _objective_mistakes(lj, lq):
    w = rws_weights(lj, lq)
    k = lj.shape[0]
    return [
        ("the objective weights log p(x, z_k); the encoder's objective weights log q(z_k | x) "
         "(log p(x, z) is the decoder's)", lambda: (w * lj).sum(0)),
        ("the objective weights the log-weights log p - log q; the encoder's objective is "
         "sum_k w~_k log q(z_k | x)", lambda: (w * (lj - lq)).sum(0)),
        ("the objective is the plain mean of log q over the draws: weight each by w~_k",
         lambda: lq.mean(0)),
        ("the objective is a mean (divided by K) where the normalised weights already sum to 1",
         lambda: (w * lq).sum(0) / k),
    ]


_UNSTABLE = ("not finite: exp of log-weights near +1e3 overflows to inf (and near -1e4 underflows "
             "to 0, so 0/0) in float64; subtract each column's largest log-weight before "
             "exponentiating (a softmax over the draws)")
_RTOL, _ATOL = 1e-9, 1e-12


def _case(g: Grader, fn, name, lj, lq, hint=""):
    k, b = lj.shape
    with g.case(name) as case:
        out = case.unpack(case.call(fn, lj, lq), ("weights", "objective"))
        hints = {(k,): _WRONG_AXIS} if k != b else {}
        weights = case.tensor(out[0], "weights", (k, b), {
            **({(b,): _WRONG_AXIS} if k != b else {}),
            (): "one weight per draw and example: shape (K, B)"})
        want_w, want_j = _reference(lj, lq)
        case.compare(weights, want_w, "weights", rtol=_RTOL, atol=_ATOL,
                     mistakes=_weight_mistakes(lj, lq), nonfinite_hint=hint)
        objective = case.tensor(out[1], "objective", (b,), {
            **hints, (k, b): "nothing was summed: J(x) = sum_k w~_k log q(z_k | x), one number "
                             "per example", (): "one objective per example, shape (B,)"})
        # rounding is relative to the terms w~_k |log q_k| the sum combines
        case.compare(objective, want_j, "objective", rtol=_RTOL, atol=_ATOL,
                     scale=(want_w * lq.abs()).sum(0), mistakes=_objective_mistakes(lj, lq),
                     nonfinite_hint=hint)


@register(reference=rws_encoder_weights, lesson="08_wake_sleep",
          title="RWS: self-normalised importance weights and the encoder's wake-phase objective")
def grade_rws_encoder_weights(fn, g: Grader) -> None:
    lq = -3 + g.randn(10, 4)
    _case(g, fn, "random draws, K = 10 draws of B = 4 examples", lq + 2 * g.randn(10, 4) - 5, lq)
    lq = g.randn(5, 5) - 2
    _case(g, fn, "K = B = 5: a wrong axis cannot hide behind the shape", lq + 3 * g.randn(5, 5), lq)
    lq = g.randn(1, 3)
    _case(g, fn, "K = 1: one draw gets all the weight", lq - 1 + g.randn(1, 3), lq)
    lq = -2 + g.randn(8, 3)
    with g.case("equal log-weights (p proportional to q) give uniform weights 1/K") as case:
        out = case.unpack(case.call(fn, lq + 1.5, lq), ("weights", "objective"))
        w = case.tensor(out[0], "weights", (8, 3))
        case.compare(w, torch.full_like(lq, 1 / 8), "weights", rtol=_RTOL, atol=_ATOL,
                     mistakes=_weight_mistakes(lq + 1.5, lq))
    lq = -5 + g.randn(20, 4)
    _case(g, fn, "stable for log-weights around +1e3 (exp overflows)", lq + 1e3 + 3 * g.randn(20, 4), lq,
          hint=_UNSTABLE)
    lq = -5 + g.randn(20, 4)
    _case(g, fn, "stable for log-weights around -1e4 (exp underflows)", lq - 1e4 + 3 * g.randn(20, 4), lq,
          hint=_UNSTABLE)
    lq = -4 + g.randn(500, 2)
    _case(g, fn, "many draws, one dominant (K = 500, B = 2)", lq + 10 * g.randn(500, 2), lq)
