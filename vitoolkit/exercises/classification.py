"""Exercise ``predictive_log_loss`` (lesson 09): the posterior predictive's log loss per example.

Graded against the toolkit's core: the log-mean-exp of
:func:`vitoolkit.divergences.log_mean_exp` over the draws of the Bernoulli
log-likelihood, which is ``-log`` of the probability
:func:`vitoolkit.fitting.predictive` averages from the same draws (the tests check
that the two agree).
"""

from __future__ import annotations

import math

import torch
from torch.nn.functional import logsigmoid

from ..divergences import log_mean_exp
from .grading import Grader
from .registry import register

__all__ = ["predictive_log_loss"]


def predictive_log_loss(design, y, draws):
    r"""Per-example log loss of a Bayesian logistic regression's Monte Carlo posterior predictive.

    Bishop PRML eq. 4.145: with draws w_1..w_S of the posterior (or of an approximation
    to it) and a_sn = phi_n^T w_s::

        p(y_n = 1 | x_n, data) ~ (1/S) sum_s sigmoid(a_sn),
        loss_n = -log p(y_n | x_n, data) = -log (1/S) sum_s sigmoid((2 y_n - 1) a_sn).

    The MAP plug-in is the same formula with one draw, w_MAP. The mean of loss_n over
    the examples is scikit-learn's ``log_loss``.

    Parameters
    ----------
    design : Tensor of shape (N, D)
        Rows phi_n (a leading 1 for an intercept, if the model has one).
    y : Tensor of shape (N,)
        Labels, 0.0 or 1.0.
    draws : Tensor of shape (S, D)
        Posterior draws of the weights.

    Returns
    -------
    Tensor of shape (N,)
        loss_n for each example. Must stay finite and accurate for confident
        predictions (``|a| ~ 1e3``), where sigmoid rounds to exactly 0 or 1 in float64.
    """
    logits = draws @ design.T  # (S, N)
    sign = 2 * y - 1  # sigmoid(-a) = 1 - sigmoid(a)
    log_lik = torch.nn.functional.logsigmoid(sign * logits)  # log p(y_n | w_s), without log(0)
    s = draws.shape[0]
    return -(torch.logsumexp(log_lik, dim=0) - math.log(s))  # -log of the mean over the draws


def _log_lik(design, y, draws):
    return logsigmoid((2 * y - 1) * (draws @ design.T))


def _reference(design, y, draws):
    return -log_mean_exp(_log_lik(design, y, draws), dim=0)


def _mistakes(design, y, draws):
    ll = _log_lik(design, y, draws)
    a = draws @ design.T
    out = [
        ("that is the mean of the log-likelihoods over the draws (the expected log-likelihood), "
         "not the log of the averaged probability: average sigmoid over the draws, then take the log",
         lambda: -ll.mean(0)),
        ("that is the plug-in at the mean of the draws, sigmoid(phi^T mean(w)); the predictive "
         "averages sigmoid over the draws", lambda: -logsigmoid((2 * y - 1) * (design @ draws.mean(0)))),
        ("the label is ignored: for y = 0 the probability is 1 - sigmoid(a) = sigmoid(-a)",
         lambda: -log_mean_exp(logsigmoid(a), dim=0)),
        ("the labels are flipped: p(y = 1) = sigmoid(a), p(y = 0) = sigmoid(-a)",
         lambda: -log_mean_exp(logsigmoid(-(2 * y - 1) * a), dim=0)),
        ("the sign is wrong: the log loss is MINUS the log predictive probability",
         lambda: log_mean_exp(ll, dim=0)),
        ("that is the probability's loss 1 - p, not -log p", lambda: 1 - torch.exp(log_mean_exp(ll, 0))),
    ]
    if draws.shape[0] == design.shape[0]:
        out.insert(0, ("averaged over the wrong axis: the draws are the rows of draws @ design.T "
                       "(shape (S, N)); average over the S draws", lambda: -log_mean_exp(ll.T, dim=0)))
    return out


_UNSTABLE = ("not finite: for |phi^T w| ~ 1e3 sigmoid rounds to exactly 0 or 1 in float64, so "
             "log(sigmoid) or log(1 - p) is -inf; work with log-probabilities: log sigmoid(a) = "
             "-softplus(-a) (torch.nn.functional.logsigmoid), then a log-mean-exp over the draws")
_RTOL, _ATOL = 1e-9, 1e-12


def _case(g: Grader, fn, name, design, y, draws, hint=""):
    n, s = design.shape[0], draws.shape[0]
    with g.case(name) as case:
        hints = {(): "one loss per example, shape (N,); the mean over the examples is log_loss",
                 (s, n): "nothing was averaged: average the probabilities over the S draws (the first "
                         "axis of draws @ design.T)"}
        if s != n:
            hints[(s,)] = "averaged over the examples instead of the draws"
        got = case.tensor(case.call(fn, design, y, draws), "the log loss", (n,), hints)
        want = _reference(design, y, draws)
        case.compare(got, want, "the log loss", rtol=_RTOL, atol=_ATOL,
                     scale=want.abs() + _log_lik(design, y, draws).abs().mean(0),
                     mistakes=_mistakes(design, y, draws), nonfinite_hint=hint)


def _data(g: Grader, n, d, s, spread, scale=1.0):
    design = torch.cat([torch.ones(n, 1, dtype=torch.float64), g.randn(n, d - 1)], 1)
    y = g.bernoulli(0.5, n)
    centre = g.randn(d)
    return design, y, scale * (centre + spread * g.randn(s, d))


@register(reference=predictive_log_loss, lesson="09_vi_classification",
          title="per-example log loss of the Monte Carlo posterior predictive of logistic regression",
          imports="import math\n\nimport torch\n")
def grade_predictive_log_loss(fn, g: Grader) -> None:
    _case(g, fn, "random posterior draws (N = 12 examples, D = 3, S = 200 draws)", *_data(g, 12, 3, 200, 0.8))
    _case(g, fn, "S = N = 7: a wrong axis cannot hide behind the shape", *_data(g, 7, 2, 7, 1.0))
    design, y, _ = _data(g, 9, 4, 1, 0.0)
    _case(g, fn, "one draw (the MAP plug-in, S = 1)", design, y, g.randn(1, 4))
    _case(g, fn, "a wide posterior: the draws disagree on the sign of phi^T w", *_data(g, 10, 2, 400, 3.0))
    design, _, draws = _data(g, 8, 3, 50, 0.1, scale=2000.0)
    y = (design @ draws[0] < 0).double()  # every label against the confident prediction: -log(0)
    y[:3] = 1 - y[:3]  # ... but for three, which the prediction gets right: log(1) = 0
    _case(g, fn, "confident predictions, |phi^T w| ~ 1e3 (sigmoid rounds to 0 or 1)", design, y, draws,
          hint=_UNSTABLE)
    _case(g, fn, "many draws (S = 5000, N = 4)", *_data(g, 4, 3, 5000, 1.0))
