"""The multivariate Student-t distribution: the posterior predictive of the variational
mixture (PRML eq. 10.81, B.68)."""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, constraints

from .checks import (
    _check_lower_cholesky,
    _check_positive_tensor,
    _check_square,
    as_param,
    check_validate_args,
)

__all__ = ["MultivariateStudentT"]


class MultivariateStudentT(Distribution):
    r"""Multivariate Student-t St(x | mu, Sigma, nu) (Bishop PRML eq. 2.162, B.68).

    log p(x) = lgamma((nu+D)/2) - lgamma(nu/2) - D/2 log(nu pi) - 1/2 log det Sigma
               - (nu+D)/2 log(1 + (x-mu)^T Sigma^{-1} (x-mu) / nu).

    Parameters
    ----------
    df : Tensor of shape (...), nu > 0.
    loc : Tensor of shape (..., D).
    scale_tril : Tensor of shape (..., D, D), Cholesky factor of Sigma (the
        scale matrix, not the covariance: Cov = nu / (nu - 2) Sigma).
    """

    arg_constraints = {
        "df": constraints.positive,
        "loc": constraints.real_vector,
        "scale_tril": constraints.lower_cholesky,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, df, loc, scale_tril, validate_args=None):
        check_validate_args(validate_args)
        loc = as_param(loc, "loc")
        if loc.dim() < 1:
            raise ValueError(f"loc must have shape (..., D), got shape {tuple(loc.shape)}")
        dtype = loc.dtype
        self.loc = loc
        self.scale_tril = as_param(scale_tril, "scale_tril", dtype=dtype, min_ndim=2)
        self.df = as_param(df, "df", dtype=dtype)
        d = self.loc.shape[-1]
        _check_square(self.scale_tril, "scale_tril", d)
        # Checked whatever validate_args says (log_prob returns numbers for df <= 0).
        _check_positive_tensor(self.df, "df", 0.0, "positive (the degrees of freedom)")
        _check_lower_cholesky(self.scale_tril, "scale_tril")
        try:
            batch_shape = torch.broadcast_shapes(
                self.loc.shape[:-1], self.df.shape, self.scale_tril.shape[:-2]
            )
        except RuntimeError as err:
            raise ValueError(
                "MultivariateStudentT: batch shapes of df, loc and scale_tril do not broadcast: "
                f"{tuple(self.df.shape)}, {tuple(self.loc.shape[:-1])}, "
                f"{tuple(self.scale_tril.shape[:-2])}") from err
        super().__init__(batch_shape, torch.Size((d,)), validate_args=validate_args)

    @property
    def mean(self):
        m = self.loc.expand(self.batch_shape + self.event_shape).clone()
        m[self.df.expand(self.batch_shape) <= 1] = float("nan")
        return m

    @property
    def covariance_matrix(self):
        scale = self.scale_tril @ self.scale_tril.mT
        return (self.df / (self.df - 2))[..., None, None] * scale

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        z = torch.randn(shape, dtype=self.loc.dtype)
        chi2 = torch.distributions.Chi2(self.df.expand(self.batch_shape)).rsample(sample_shape)
        y = (self.scale_tril @ z.unsqueeze(-1)).squeeze(-1)
        return self.loc + y * torch.rsqrt(chi2 / self.df).unsqueeze(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        d = self.event_shape[0]
        diff = value - self.loc
        batch = torch.broadcast_shapes(diff.shape[:-1], self.scale_tril.shape[:-2])
        sol = torch.linalg.solve_triangular(
            self.scale_tril.expand(batch + (d, d)), diff.expand(batch + (d,)).unsqueeze(-1),
            upper=False,
        ).squeeze(-1)
        # log(1 + maha / nu) with maha = |sol|^2 computed from the scaled norm, so a point
        # 1e200 scales away gives a finite (very negative) log density, not -inf.
        top = sol.abs().amax(-1)
        safe = torch.where(top > 0, top, torch.ones_like(top))
        log_maha = 2 * (torch.log(safe) + 0.5 * torch.log((sol / safe.unsqueeze(-1)).pow(2).sum(-1)))
        log_maha = torch.where(top > 0, log_maha, torch.full_like(log_maha, -math.inf))
        half_logdet = torch.log(torch.diagonal(self.scale_tril, dim1=-2, dim2=-1)).sum(-1)
        nu = self.df
        return (
            torch.lgamma((nu + d) / 2)
            - torch.lgamma(nu / 2)
            - 0.5 * d * torch.log(nu * math.pi)
            - half_logdet
            - 0.5 * (nu + d) * torch.logaddexp(torch.zeros_like(log_maha), log_maha - torch.log(nu))
        )
