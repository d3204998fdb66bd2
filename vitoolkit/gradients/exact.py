r"""Exact gradients of Gaussian expectations: closed forms and Gauss-Hermite quadrature.

The truth every estimator is measured against. For :math:`x \sim \mathcal N(\mu, \sigma^2)`,
the substitution :math:`x = \mu + \sqrt 2 \sigma t` turns :math:`E[f(x)]` into
:math:`\pi^{-1/2} \int e^{-t^2} f(\mu + \sqrt 2 \sigma t) \, dt`, which Gauss-Hermite
quadrature with n nodes integrates exactly for polynomials of degree < 2n and to
spectral accuracy for smooth f (Abramowitz & Stegun 25.4.46). The gradient is taken in
score form (Mohamed et al. 2020, eq. 13):

.. math::

    \frac{\partial}{\partial\mu_d} E[f]
        &= E\Big[f(x) \frac{x_d - \mu_d}{\sigma_d^2}\Big]
         = \frac{E[f \sqrt 2 \, t_d]}{\sigma_d}, \\
    \frac{\partial}{\partial\sigma_d} E[f]
        &= E\Big[f(x) \frac{(x_d - \mu_d)^2 - \sigma_d^2}{\sigma_d^3}\Big]
         = \frac{E[f (2 t_d^2 - 1)]}{\sigma_d},

so quadrature needs only values of f (no autograd). For a separable
:class:`~vitoolkit.gradients.costs.Cost` the rule is one-dimensional per
coordinate; for any other cost it is a tensor-product rule over D dimensions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..validation import check_int, check_memory
from ._checks import as_params, check_choice, check_finite_result, evaluate_cost
from .costs import Cost

__all__ = ["exact_gaussian_gradient", "gauss_hermite_expectation"]

_METHODS = ("auto", "closed_form", "quadrature")
_MAX_POINTS = 400_000
# NumPy's hermgauss overflows to NaN weights from about 380 nodes; 300 is far beyond
# what a smooth cost needs (200 is the default for separable costs).
MAX_NODES = 300


def _nodes(num_nodes: int):
    t, w = np.polynomial.hermite.hermgauss(num_nodes)
    return torch.from_numpy(t), torch.from_numpy(w / math.sqrt(math.pi))


def _default_nodes(d: int) -> int:
    return max(2, min(120, int(math.floor(_MAX_POINTS ** (1.0 / d) + 1e-9))))


def _check_points(num_points: int, loc, num_nodes, what: str) -> None:
    # Nodes, cost values and weighted products: about six float64 arrays of (points, *loc.shape).
    check_memory(6 * 8 * num_points * max(1, loc.numel()), "num_nodes", num_nodes,
                 f"{what} for a batch of {loc.numel()} parameters")


def _separable_quadrature(cost: Cost, loc, scale, num_nodes):
    _check_points(num_nodes, loc, num_nodes, f"{num_nodes} Gauss-Hermite nodes")
    cost._check_input_shape(loc.shape)
    t, w = _nodes(num_nodes)
    shape = (num_nodes,) + (1,) * loc.ndim
    t, w = t.reshape(shape), w.reshape(shape)
    g = cost.elementwise(loc + math.sqrt(2.0) * scale * t)
    value = (w * g).sum(0).sum(-1)
    g_loc = (w * g * math.sqrt(2.0) * t).sum(0) / scale
    g_scale = (w * g * (2 * t**2 - 1)).sum(0) / scale
    return value, g_loc, g_scale


def _product_quadrature(cost, loc, scale, num_nodes):
    d = loc.shape[-1]
    t, w = _nodes(num_nodes)
    grids = torch.meshgrid(*([t] * d), indexing="ij")
    nodes = torch.stack([g.reshape(-1) for g in grids], -1)  # (n^D, D)
    weights = torch.stack(
        [g.reshape(-1) for g in torch.meshgrid(*([w] * d), indexing="ij")], -1
    ).prod(-1)
    nodes = nodes.reshape(nodes.shape[0], *([1] * (loc.ndim - 1)), d)
    weights = weights.reshape(weights.shape[0], *([1] * (loc.ndim - 1)))
    f = evaluate_cost(cost, loc + math.sqrt(2.0) * scale * nodes, inputs={"loc": loc, "scale": scale})
    wf = (weights * f).unsqueeze(-1)
    value = (weights * f).sum(0)
    g_loc = (wf * math.sqrt(2.0) * nodes).sum(0) / scale
    g_scale = (wf * (2 * nodes**2 - 1)).sum(0) / scale
    return value, g_loc, g_scale


def _quadrature(cost, loc, scale, num_nodes):
    d = loc.shape[-1]
    if isinstance(cost, Cost):
        n = 200 if num_nodes is None else num_nodes
        return _separable_quadrature(cost, loc, scale, n)
    n = _default_nodes(d) if num_nodes is None else num_nodes
    if n**d > 10 * _MAX_POINTS or (num_nodes is None and n < 6):
        raise ValueError(
            f"Gauss-Hermite quadrature over D={d} dimensions with {n} nodes per dimension "
            f"needs {n}^{d} cost evaluations; pass a separable vitoolkit.gradients.costs.Cost "
            "(quadrature is then one-dimensional per coordinate) or estimate by Monte Carlo"
        )
    _check_points(n**d, loc, n, f"{n}^{d} Gauss-Hermite nodes")
    return _product_quadrature(cost, loc, scale, n)


def gauss_hermite_expectation(cost, loc, scale, *, num_nodes: int | None = None) -> torch.Tensor:
    r"""The Gaussian expectation of ``cost`` by Gauss-Hermite quadrature; shape loc.shape[:-1].

    :math:`E_{\mathcal N(\text{loc}, \text{scale}^2)}[\text{cost}(x)]`, with the nodes of
    the module docstring (Abramowitz & Stegun 25.4.46). Parameters are as in
    :func:`exact_gaussian_gradient`.
    """
    loc, scale = as_params(loc, scale)
    num_nodes = _check_nodes(num_nodes)
    if not callable(cost):
        raise TypeError(f"cost must be callable (..., D) -> (...), got {type(cost).__name__}")
    with torch.no_grad():
        value = _quadrature(cost, loc, scale, num_nodes)[0]
    return check_finite_result(value, "the Gauss-Hermite expectation", _inputs(cost, loc, scale))


def _inputs(cost, loc, scale) -> dict:
    """The numbers a result depends on, for naming the cause of an overflow."""
    inputs = {"loc": loc, "scale": scale}
    if isinstance(cost, Cost):
        inputs["the cost's k"] = cost.k
    return inputs


def _check_nodes(num_nodes):
    if num_nodes is None:
        return None
    return check_int(num_nodes, "num_nodes", minimum=2, maximum=MAX_NODES)


def exact_gaussian_gradient(cost, loc, scale, *, method: str = "auto",
                            num_nodes: int | None = None):
    r"""The exact gradient of a Gaussian expectation of ``cost`` with respect to loc and scale.

    .. math::

        \nabla_{\mu, \sigma} E_q[f(x)], \qquad
        q(x) = \prod_d \mathcal N(x_d \mid \mu_d, \sigma_d^2),

    with f the ``cost``, :math:`\mu` the ``loc`` and :math:`\sigma` the ``scale``. By
    closed form when the cost knows it (the :mod:`~vitoolkit.gradients.costs` test
    costs), otherwise by
    Gauss-Hermite quadrature of the score-form identities in the module
    docstring (Mohamed et al. 2020, eq. 13), accurate for smooth costs.

    Parameters
    ----------
    cost : callable
        Maps a tensor (..., D) to (...).
    loc : array-like of shape (..., D)
    scale : array-like broadcastable to loc's shape, positive
    method : {"auto", "closed_form", "quadrature"}
        ``"auto"`` uses the closed form when available, else quadrature.
    num_nodes : int in [2, 300], optional
        Gauss-Hermite nodes per dimension (default 200 for a separable cost,
        else as many as keep the tensor-product rule under 400,000 points).
        NumPy's rule loses its weights to overflow beyond about 380 nodes.

    Returns
    -------
    (Tensor, Tensor)
        d/d loc and d/d scale, float64, each of loc's (broadcast) shape.
    """
    key = check_choice(method, _METHODS, "method")
    loc, scale = as_params(loc, scale)
    num_nodes = _check_nodes(num_nodes)
    if not callable(cost):
        raise TypeError(f"cost must be callable (..., D) -> (...), got {type(cost).__name__}")
    has_closed_form = isinstance(cost, Cost)
    if key == "closed_form" and not has_closed_form:
        raise ValueError(
            f"no closed form for {cost!r}: use method='quadrature' (or 'auto'), or a "
            "vitoolkit.gradients.costs.Cost"
        )
    with torch.no_grad():
        if has_closed_form and key != "quadrature":
            g_loc, g_scale = cost.exact_gradient(loc, scale)
        else:
            _, g_loc, g_scale = _quadrature(cost, loc, scale, num_nodes)
    check_finite_result((g_loc, g_scale), "the exact gradient", _inputs(cost, loc, scale))
    shape = torch.broadcast_shapes(g_loc.shape, loc.shape)
    return g_loc.expand(shape).clone(), g_scale.expand(shape).clone()
