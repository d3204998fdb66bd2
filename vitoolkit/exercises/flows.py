"""Exercise ``flow_log_density`` (lesson 10): one planar flow layer by the change of variables.

Graded against the toolkit's flow code: Pyro's ``Planar`` layer built by
:func:`vitoolkit.fitting.flows.planar_layer` and pushed by
:func:`vitoolkit.fitting.flows.push_forward`.
"""

from __future__ import annotations

import math

import torch

from ..fitting.family import STANDARD_NORMAL
from ..fitting.flows import planar_layer, push_forward
from .grading import Grader
from .registry import register

__all__ = ["flow_log_density"]


def flow_log_density(eps, u, w, b):
    r"""Push base draws through one planar layer; return z and log q(z).

    eps ~ N(0, I_D) and z = f(eps) = eps + u tanh(w^T eps + b) (Rezende & Mohamed 2015,
    eq. 10; here w^T u > -1, so f is invertible). By the change of variables
    (their eq. 5-6, 11-12)::

        log q(z) = log N(eps; 0, I) - log |det df/d eps|,
        det df/d eps = 1 + (1 - tanh^2(w^T eps + b)) w^T u.

    Parameters
    ----------
    eps : Tensor of shape (..., D)
        Base draws.
    u, w : Tensor of shape (D,)
    b : float

    Returns
    -------
    (z, log_q) : Tensors of shapes (..., D) and (...).
    """
    a = torch.tanh(eps @ w + b)
    z = eps + a.unsqueeze(-1) * u
    log_det = torch.log(torch.abs(1 + (1 - a**2) * (w @ u)))
    log_base = -0.5 * (eps**2).sum(-1) - 0.5 * eps.shape[-1] * math.log(2 * math.pi)
    return z, log_base - log_det


def _reference(eps, u, w, b):
    with torch.no_grad():
        z, log_det = push_forward([planar_layer(u, w, b)], eps)
    return z, STANDARD_NORMAL.log_prob(eps).sum(-1) - log_det


def _mistakes(eps, u, w, b):
    z, log_q = _reference(eps, u, w, b)
    log_base = STANDARD_NORMAL.log_prob(eps).sum(-1)
    log_det = log_base - log_q
    a = torch.tanh(eps @ w + b)
    return [
        ("the log-determinant has the wrong sign: log q(z) = log N(eps) MINUS log|det J| (the "
         "layer spreads or squeezes the mass)", lambda: log_base + log_det),
        ("the Jacobian is missing: log q(z) is not log N(eps); a change of variables needs "
         "- log|det J|", lambda: log_base),
        ("the base density was evaluated at z; it belongs at eps, the point before the layer",
         lambda: STANDARD_NORMAL.log_prob(z).sum(-1) - log_det),
        ("the derivative of tanh is missing from det J: it is 1 + (1 - tanh^2(.)) w^T u",
         lambda: log_base - torch.log(torch.abs(1 + w @ u)).expand(log_q.shape)),
        ("the derivative of tanh is 1 - tanh^2, not 1 - tanh",
         lambda: log_base - torch.log(torch.abs(1 + (1 - a) * (w @ u)))),
    ]


_RTOL, _ATOL = 1e-8, 1e-10


def _case(g: Grader, fn, name, eps, u, w, b):
    with g.case(name) as case:
        want_z, want_lq = _reference(eps, u, w, b)
        out = case.unpack(case.call(fn, eps, u, w, b), ("z", "log_q"))
        batch, d = tuple(eps.shape[:-1]), eps.shape[-1]
        z = case.tensor(out[0], "z", (*batch, d))
        case.compare(z, want_z, "z", rtol=_RTOL, atol=_ATOL,
                     fallback="z = eps + u tanh(w^T eps + b)")
        lq = case.tensor(out[1], "log_q", batch, {(*batch, d): "log q(z) is one number per draw: "
                                                  "sum the base log-density over the last dimension"})
        case.compare(lq, want_lq, "log_q", rtol=_RTOL, atol=_ATOL, mistakes=_mistakes(eps, u, w, b))


def _params(g: Grader, d: int, scale: float):
    w = g.randn(d)
    u = scale * g.randn(d)
    wu = float(w @ u)
    if wu <= -0.9:  # keep the layer invertible, w^T u > -1, by flipping u's component along w
        u = u - 2 * (wu / float(w @ w)) * w
    return u, w, float(g.randn(1))


@register(reference=flow_log_density, lesson="10_richer_families",
          title="z and log q(z) after one planar flow layer (change of variables)",
          imports="import math\n\nimport torch\n")
def grade_flow_log_density(fn, g: Grader) -> None:
    u, w, b = _params(g, 2, 1.0)
    _case(g, fn, "200 draws in 2-D", g.randn(200, 2), u, w, b)
    u, w, b = _params(g, 5, 2.0)
    _case(g, fn, "a batch of shape (3, 40) in 5-D, a strong layer", g.randn(3, 40, 5), u, w, b)
    w = g.randn(3)
    u = -0.95 * w / float(w @ w)  # w^T u = -0.95: the layer nearly folds
    _case(g, fn, "a layer that nearly folds (w^T u = -0.95)", g.randn(100, 3), u, w, 0.3)
