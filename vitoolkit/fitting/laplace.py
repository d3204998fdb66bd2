r"""The Laplace approximation: a Gaussian at the mode, with the curvature there.

For an unnormalised density p~(w) = Z p(w) (Bishop PRML 4.4, eq. 4.132-4.135)::

    w_MAP = argmax log p~(w),      A = -grad grad log p~(w_MAP),
    q(w)  = N(w; w_MAP, A^-1),     log Z ~ log p~(w_MAP) + D/2 log 2 pi - 1/2 log |A|.

It needs only ``log_prob`` and its derivatives, like reverse-KL VI, but it looks at a
single point: it matches the local curvature of the mode, not the mass around it, so a
skewed posterior gets the mode's centre and the mode's width (PRML 4.4, fig. 4.14).

The mode is found by scipy's trust-region Newton method (``scipy.optimize.minimize``,
``method="trust-exact"``, Conn, Gould & Toint 2000, ch. 7; Nocedal & Wright 2006,
algorithm 4.3) with the gradient and Hessian from torch's automatic differentiation,
which converges quadratically near the mode and copes with indefinite curvature away
from it.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch.distributions import MultivariateNormal

from .. import exceptions
from ..validation import as_float_tensor, check_int, check_positive
from ._checks import as_vector, check_target
from .objectives import NonFiniteTargetError
from .optimise import one_thread

__all__ = ["LaplaceFit", "laplace_approximation"]

_F64 = torch.float64


@dataclass(frozen=True)
class LaplaceFit:
    """A Laplace approximation N(loc, covariance) of a target.

    Attributes
    ----------
    loc : Tensor of shape (D,), the mode (MAP)
    covariance : Tensor of shape (D, D), the inverse of ``hessian``
    hessian : Tensor of shape (D, D), -grad grad log p~ at the mode (the precision A)
    distribution : MultivariateNormal
    log_prob_at_mode : float, log p~(w_MAP)
    log_evidence : float, the Laplace estimate of log Z = log integral p~ (PRML eq. 4.135)
    n_iter : int, Newton iterations
    converged : bool
    seconds : float, wall time (mode search and Hessian)
    """

    loc: torch.Tensor
    covariance: torch.Tensor
    hessian: torch.Tensor
    distribution: MultivariateNormal
    log_prob_at_mode: float
    log_evidence: float
    n_iter: int
    converged: bool
    seconds: float

    @property
    def scale(self) -> torch.Tensor:
        """Marginal standard deviations, shape (D,)."""
        return torch.diagonal(self.covariance).sqrt()


def laplace_approximation(target, *, init=None, hessian=None, gtol: float = 1e-8,
                          max_iter: int = 200) -> LaplaceFit:
    """Fit the Laplace approximation of ``target`` (see the module docstring).

    Parameters
    ----------
    target : torch.distributions.Distribution
        Unbatched, event shape (D,), with a twice-differentiable ``log_prob`` (normalised or not).
    init : array-like of shape (D,), optional
        Starting point of the mode search (default zeros).
    hessian : callable, optional
        ``hessian(w)`` -> Tensor (D, D), the Hessian of -log p~ at w of shape (D,), when it is
        known in closed form (e.g. :meth:`LogisticPosterior.hessian`); default: torch's
        automatic differentiation (D backward passes).
    gtol : float
        Stop when the gradient's norm is below ``gtol`` (a stop at rounding level with the
        norm below ``1000 * gtol`` also counts as converged).
    max_iter : int

    Returns
    -------
    LaplaceFit

    Warns
    -----
    ConvergenceWarning
        The mode search stopped before the gradient vanished.

    Raises
    ------
    TypeError
        ``target`` is not a torch distribution, ``hessian`` not callable, a count or
        tolerance of the wrong kind.
    ValueError
        The curvature at the mode is not positive definite (no Gaussian matches it: the
        mode is a saddle or the density is flat in some direction), ``init`` of the wrong
        shape, or a non-positive ``gtol``.
    NonFiniteTargetError
        ``log_prob`` (or its gradient or Hessian) is NaN or infinite at ``init`` or at a
        point of the search.
    """
    d = check_target(target, "target", vector_event=True)
    x0 = (np.zeros(d) if init is None else
          as_vector(init, "init", d).numpy().astype(float, copy=True))
    if hessian is not None and not callable(hessian):
        raise TypeError(f"hessian must be a callable w -> (D, D) tensor or None, got "
                        f"{type(hessian).__name__}")
    gtol = check_positive(gtol, "gtol")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    from scipy.optimize import minimize

    start = time.perf_counter()

    def negative_log_p(w):
        return -target.log_prob(w)

    def fun(x):
        w = torch.tensor(x, dtype=_F64, requires_grad=True)
        value = negative_log_p(w)
        (grad,) = torch.autograd.grad(value, w)
        value = float(value.detach())
        # log p = -inf is allowed (the trust region shrinks away from it); NaN, log p = +inf
        # and a non-finite gradient at a finite value are not
        bad_grad = math.isfinite(value) and not bool(torch.isfinite(grad).all())
        if math.isnan(value) or value == -math.inf or bad_grad:
            raise NonFiniteTargetError(
                f"target ({type(target).__name__}).log_prob returned {-value} with gradient "
                f"{grad.tolist()} at w={list(x)} during the Laplace mode search")
        return value, grad.numpy()

    def hess(x):
        w = torch.tensor(x, dtype=_F64)
        if hessian is not None:
            h = as_float_tensor(hessian(w), "hessian(w)", dtype=_F64, finite=False)
            if tuple(h.shape) != (d, d):
                raise ValueError(f"hessian(w) must return shape ({d}, {d}), got {tuple(h.shape)}")
        else:
            h = torch.autograd.functional.hessian(negative_log_p, w, vectorize=True)
        if not bool(torch.isfinite(h).all()):
            raise NonFiniteTargetError(f"the Hessian of -log p is not finite at w={list(x)}")
        return h.detach().numpy()

    with one_thread():
        w0 = torch.tensor(x0, dtype=_F64)
        f0 = -float(target.log_prob(w0).detach())
        if not math.isfinite(f0):
            raise NonFiniteTargetError(f"target.log_prob is {-f0} at init {x0.tolist()}; start "
                                       "where it is finite")
        res = minimize(fun, x0, jac=True, hess=hess, method="trust-exact",
                       options={"gtol": gtol, "maxiter": max_iter})
        loc = torch.tensor(res.x, dtype=_F64)
        precision = torch.as_tensor(hess(res.x), dtype=_F64)
        precision = 0.5 * (precision + precision.mT)
        chol, info = torch.linalg.cholesky_ex(precision)
        if int(info) != 0:
            raise ValueError("the Hessian of -log p at the mode found is not positive definite, so "
                             "no Gaussian matches the curvature there (a saddle point, or a density "
                             "flat in some direction: add a proper prior)")
        covariance = torch.cholesky_inverse(chol)
        covariance = 0.5 * (covariance + covariance.mT)
        log_p_mode = float(target.log_prob(loc))
    grad_norm = float(np.linalg.norm(res.jac))
    # trust-exact may report failure once its steps hit rounding level, at a vanishing gradient
    converged = bool(res.success) or grad_norm <= 1e3 * gtol
    if not converged:
        warnings.warn(f"the Laplace mode search stopped after {res.nit} iterations with gradient "
                      f"norm {grad_norm:.3g} ({res.message}); raise max_iter", exceptions.ConvergenceWarning,
                      stacklevel=2)
    log_det = 2 * float(torch.log(torch.diagonal(chol)).sum())
    log_evidence = log_p_mode + 0.5 * d * math.log(2 * math.pi) - 0.5 * log_det
    return LaplaceFit(loc=loc, covariance=covariance, hessian=precision,
                      distribution=MultivariateNormal(loc, covariance_matrix=covariance),
                      log_prob_at_mode=log_p_mode, log_evidence=log_evidence, n_iter=int(res.nit),
                      converged=converged, seconds=time.perf_counter() - start)
