r"""Bayesian logistic regression: the one model both topics use.

The model (Bishop PRML 4.5, MacKay 1992), with a design matrix Phi of shape (n, D)
(the inputs, with a leading column of ones when ``fit_intercept``) and labels
y_n in {0, 1}::

    w ~ N(0, s^2 I_D),      y_n | w ~ Bernoulli(sigmoid(phi_n^T w)),   s = ``prior_std``.

:class:`LogisticPosterior` is its posterior as an unnormalised torch distribution
(``log_prob`` is the log joint), with the gradient and Hessian of the log joint
(PRML eq. 4.96-4.97) and the mode by Newton's method (IRLS, PRML 4.3.3), from which the
Laplace approximation N(mode, H^-1) follows (PRML 4.4). :mod:`vitoolkit.fitting`
(Laplace, NUTS, Gaussian VI, predictions: :mod:`vitoolkit.fitting.logistic`) and
:mod:`vitoolkit.gradients` (black-box VI: :class:`vitoolkit.gradients.bbvi.BayesianLogisticRegression`)
both use it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Distribution, Normal, constraints

from ..validation import (
    as_float_tensor,
    check_bool,
    check_finite,
    check_int,
    check_positive,
    check_shape,
)

__all__ = ["LogisticPosterior"]

_F64 = torch.float64


def _labels(y, n: int) -> torch.Tensor:
    """Labels of shape (n,) holding 0 and 1 only (bools accepted: they are labels here)."""
    if isinstance(y, torch.Tensor) and y.dtype == torch.bool:
        y = y.to(_F64)
    elif isinstance(y, np.ndarray) and y.dtype.kind == "b":
        y = y.astype(np.float64)
    t = as_float_tensor(y, "y", dtype=_F64)
    if tuple(t.shape) != (n,):
        raise ValueError(f"y must have shape ({n},) to match X, got {tuple(t.shape)}")
    if not bool(((t == 0) | (t == 1)).all()):
        raise ValueError(f"y must hold labels 0 and 1 only, got values {sorted(set(t.tolist()))[:5]}")
    return t

def _as_matrix(x, name: str) -> torch.Tensor:
    t = as_float_tensor(x, name, dtype=_F64, finite=False)
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (n_samples, n_features), got shape {tuple(t.shape)}")
    check_finite(t, name)
    return t


class LogisticPosterior(Distribution):
    r"""The unnormalised posterior of Bayesian logistic regression, as a torch distribution.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Inputs (standardise them first: the prior treats every weight alike).
    y : array-like of shape (n_samples,)
        Labels in {0, 1}.
    prior_std : float > 0
        s in w ~ N(0, s^2 I_D).
    fit_intercept : bool
        Prepend a column of ones to X, so w[0] is the intercept (with the same prior).

    Attributes
    ----------
    design : Tensor of shape (n_samples, D), the design matrix Phi (float64)
    labels : Tensor of shape (n_samples,), float64 zeros and ones
    dim : int, D = n_features + fit_intercept

    Notes
    -----
    ``log_prob(w)`` is the log joint log p(y, w | X) (every constant of the prior and the
    likelihood kept), not the normalised posterior: the normaliser log p(y | X) is the
    unknown evidence. There is no sampler (``sample`` raises); draws come from
    :func:`vitoolkit.fitting.reference.nuts_reference` and moments in 1-D/2-D from
    :func:`vitoolkit.fitting.reference.grid_reference`.
    """

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, X, y, prior_std: float = 1.0, *, fit_intercept: bool = True,
                 validate_args=None):
        X = _as_matrix(X, "X")
        y = _labels(y, X.shape[0])
        prior_std = check_positive(prior_std, "prior_std")
        self.fit_intercept = check_bool(fit_intercept, "fit_intercept")
        if validate_args is not None:
            validate_args = check_bool(validate_args, "validate_args")
        self.prior_std = prior_std
        self.n_features = X.shape[1]
        self.design = self.design_matrix(X)
        self.labels = y
        self.dim = self.design.shape[1]
        self._prior = Normal(torch.zeros((), dtype=_F64), torch.tensor(prior_std, dtype=_F64),
                             validate_args=False)
        super().__init__(torch.Size(), torch.Size((self.dim,)), validate_args=validate_args)

    def design_matrix(self, X) -> torch.Tensor:
        """Phi for new inputs X of shape (m, n_features): shape (m, D)."""
        X = _as_matrix(X, "X")
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} features, got {X.shape[1]}")
        if self.fit_intercept:
            X = torch.cat([torch.ones(X.shape[0], 1, dtype=_F64), X], 1)
        return X

    # ------------------------------------------------------------------ densities
    def _weights(self, w) -> torch.Tensor:
        if isinstance(w, torch.Tensor) and w.is_floating_point():
            w = w.to(_F64)  # keeps the autograd graph (the fits differentiate through it)
        else:
            w = as_float_tensor(w, "w", dtype=_F64, finite=False)
        if w.shape[-1:] != (self.dim,):
            raise ValueError(f"w must have shape (..., {self.dim}), got {tuple(w.shape)}")
        return w

    def log_prior(self, w) -> torch.Tensor:
        """log N(w; 0, s^2 I), w of shape (..., D) -> (...)."""
        w = self._weights(w)
        return self._prior.log_prob(w).sum(-1)

    def log_likelihood(self, w) -> torch.Tensor:
        """sum_n log Bernoulli(y_n; sigmoid(phi_n^T w)) (PRML eq. 4.90), (..., D) -> (...).

        In logit form, y a - softplus(a) with a = phi^T w, which never takes the log of 0.
        """
        a = self._weights(w) @ self.design.mT
        return (self.labels * a - F.softplus(a)).sum(-1)

    def log_prob(self, value) -> torch.Tensor:
        """The log joint log p(y, w) (the unnormalised log posterior), (..., D) -> (...)."""
        return self.log_likelihood(value) + self.log_prior(value)

    def grad_log_prob(self, w) -> torch.Tensor:
        """d/dw log p(y, w) = Phi^T (y - sigmoid(Phi w)) - w / s^2 (PRML eq. 4.96), (..., D)."""
        w = self._weights(w)
        return (self.labels - torch.sigmoid(w @ self.design.mT)) @ self.design - w / self.prior_std**2

    def hessian(self, w) -> torch.Tensor:
        """-d^2/dw dw^T log p(y, w) = Phi^T R Phi + I / s^2, R = diag(pi_n (1 - pi_n))
        (PRML eq. 4.97 plus the prior's precision), w of shape (D,) -> (D, D)."""
        w = self._weights(w)
        if w.dim() != 1:
            raise ValueError(f"hessian takes one w of shape ({self.dim},), got {tuple(w.shape)}")
        p = torch.sigmoid(self.design @ w)
        r = p * (1 - p)
        eye = torch.eye(self.dim, dtype=_F64)
        return self.design.mT @ (self.design * r[:, None]) + eye / self.prior_std**2

    def newton_mode(self, *, max_iter: int = 50, tol: float = 1e-12) -> torch.Tensor:
        """The posterior mode (the MAP weights) by Newton's method from w = 0, shape (D,).

        w <- w + H(w)^-1 grad log p(y, w) (iteratively reweighted least squares, PRML
        section 4.3.3, with the prior's precision in H): the log joint is strictly concave,
        so the iteration converges; it stops when the largest step is below ``tol``.
        With :meth:`hessian` at the mode it gives the Laplace approximation (PRML 4.4).
        """
        max_iter = check_int(max_iter, "max_iter", minimum=1)
        tol = check_positive(tol, "tol")
        w = torch.zeros(self.dim, dtype=_F64)
        for _ in range(max_iter):
            step = torch.linalg.solve(self.hessian(w), self.grad_log_prob(w))
            w = w + step
            if float(step.abs().max()) < tol:
                break
        return w

    def logits(self, w, X) -> torch.Tensor:
        """a = phi(x)^T w for new inputs X (m, n_features) and w (..., D): shape (..., m)."""
        return self._weights(w) @ self.design_matrix(X).mT

    def sample(self, sample_shape=torch.Size()):
        raise NotImplementedError(
            "LogisticPosterior has no exact sampler (its normaliser is unknown): draw from "
            "it with vitoolkit.fitting.reference.nuts_reference, or fit a Gaussian with "
            "fit_gaussian(posterior, 'reverse', method='stochastic', init=..., bounds=...)"
        )

    def box(self, loc, scale, width: float = 8.0) -> list:
        """Bounds [(lo, hi)] * D = loc +/- width * scale: what ``fit_gaussian(bounds=...)`` and
        grids need for a target without known moments. loc, scale: (D,) or scalars."""
        loc, scale = self._vector(loc, "loc"), self._vector(scale, "scale")
        if not bool((scale > 0).all()):
            raise ValueError(f"scale must be positive, got {scale.tolist()}")
        width = check_positive(width, "width")
        return [(float(m - width * s), float(m + width * s)) for m, s in zip(loc, scale, strict=True)]

    def _vector(self, value, name) -> torch.Tensor:
        """A number (the same for every weight) or a vector of shape (D,); never reshaped."""
        t = as_float_tensor(value, name, dtype=_F64)
        if t.dim() == 0:
            return t.expand(self.dim)
        check_shape(t.shape, (self.dim,), name)
        return t

    @property
    def sklearn_C(self) -> float:
        """The inverse penalty of the matching ``LogisticRegression``: C = s^2."""
        return self.prior_std**2

    def __repr__(self):
        return (f"LogisticPosterior(n={self.design.shape[0]}, D={self.dim}, "
                f"prior_std={self.prior_std:g}, fit_intercept={self.fit_intercept})")
