"""The Normal-Wishart (Gauss-Wishart) distribution of Bishop's variational mixture
(PRML eq. 10.40)."""

from __future__ import annotations

import warnings

import torch
from torch.distributions import Distribution, MultivariateNormal, Wishart, constraints
from torch.distributions.utils import broadcast_all

from .. import expectations as _ex
from .checks import (
    _check_lower_cholesky,
    _check_positive_tensor,
    _check_square,
    as_param,
    check_validate_args,
)
from .expected import expected_log_det_wishart

__all__ = ["NormalWishart"]


class NormalWishart(Distribution):
    r"""Gauss-Wishart distribution over a mean and a precision matrix.

    p(mu, Lambda) = N(mu | m, (beta Lambda)^{-1}) W(Lambda | W, nu)
    (Bishop PRML eq. 10.40 and B.68-B.80).

    A draw is a pair ``(mean, precision)`` of shapes ``sample_shape + batch_shape
    + (D,)`` and ``... + (D, D)``; :meth:`log_prob` takes such a pair.

    Parameters
    ----------
    loc : Tensor of shape (..., D)
        m, the mean of mu.
    mean_precision : Tensor of shape (...)
        beta > 0, how many pseudo-observations the mean is worth.
    df : Tensor of shape (...)
        nu > D - 1, the Wishart degrees of freedom.
    scale_matrix : Tensor of shape (..., D, D), optional
        W, the Wishart scale (E[Lambda] = nu W). Give this or ``scale_tril``.
    scale_tril : Tensor of shape (..., D, D), optional
        Lower Cholesky factor of W.
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "mean_precision": constraints.positive,
        "df": constraints.positive,
        "scale_tril": constraints.lower_cholesky,
    }
    has_rsample = False

    def __init__(self, loc, mean_precision, df, *, scale_matrix=None, scale_tril=None,
                 validate_args=None):
        check_validate_args(validate_args)
        if (scale_matrix is None) == (scale_tril is None):
            raise ValueError("NormalWishart: give exactly one of scale_matrix or scale_tril")
        loc = as_param(loc, "loc", min_ndim=1)
        dtype = loc.dtype
        mean_precision = as_param(mean_precision, "mean_precision", dtype=dtype)
        df = as_param(df, "df", dtype=dtype)
        if scale_tril is None:
            scale_matrix = as_param(scale_matrix, "scale_matrix", dtype=dtype, min_ndim=2)
            _check_square(scale_matrix, "scale_matrix", loc.shape[-1])
            scale_tril, info = torch.linalg.cholesky_ex(scale_matrix)
            if bool((info != 0).any()):
                raise ValueError("scale_matrix must be symmetric positive definite")
        else:
            scale_tril = as_param(scale_tril, "scale_tril", dtype=dtype, min_ndim=2)
            _check_square(scale_tril, "scale_tril", loc.shape[-1])
            _check_lower_cholesky(scale_tril, "scale_tril")
        d = loc.shape[-1]
        try:
            mean_precision, df = broadcast_all(mean_precision, df)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"NormalWishart: mean_precision and df do not broadcast: {err}") from None
        try:
            batch_shape = torch.broadcast_shapes(
                loc.shape[:-1], mean_precision.shape, df.shape, scale_tril.shape[:-2]
            )
        except RuntimeError as err:
            raise ValueError(
                "NormalWishart: batch shapes of loc, mean_precision, df and the scale do not "
                f"broadcast: {tuple(loc.shape[:-1])}, {tuple(mean_precision.shape)}, "
                f"{tuple(df.shape)}, {tuple(scale_tril.shape[:-2])}"
            ) from err
        # Checked whatever validate_args says: the entropy, KL and expectations return
        # numbers for invalid parameters, not errors.
        if bool((~(df > d - 1)).any()):
            raise ValueError(f"NormalWishart: df must exceed D - 1 = {d - 1} (the Wishart degrees "
                             f"of freedom), got {df}")
        _check_positive_tensor(mean_precision, "mean_precision")
        self.loc = loc.expand(batch_shape + (d,))
        self.mean_precision = mean_precision.expand(batch_shape)
        self.df = df.expand(batch_shape)
        self.scale_tril = scale_tril.expand(batch_shape + (d, d))
        super().__init__(batch_shape, torch.Size((d,)), validate_args=validate_args)

    @property
    def wishart(self) -> Wishart:
        """The marginal W(Lambda | W, nu) as a torch ``Wishart``."""
        return Wishart(self.df, scale_tril=self.scale_tril, validate_args=False)

    @property
    def scale_matrix(self) -> torch.Tensor:
        """W = L L^T."""
        return self.scale_tril @ self.scale_tril.mT

    @property
    def expected_precision(self) -> torch.Tensor:
        """E[Lambda] = nu W (PRML B.80)."""
        return self.df[..., None, None] * self.scale_matrix

    @property
    def expected_log_det_precision(self) -> torch.Tensor:
        """E[log det Lambda] (PRML eq. 10.65)."""
        return expected_log_det_wishart(self.df, self.scale_tril)

    @property
    def mean(self) -> torch.Tensor:
        """E[mu] = m."""
        return self.loc

    def expected_mahalanobis(self, x: torch.Tensor) -> torch.Tensor:
        r"""E[(x - mu)^T Lambda (x - mu)] = D / beta + nu (x - m)^T W (x - m) (PRML eq. 10.64).

        ``x`` has shape (..., D) broadcasting against the batch shape.
        """
        diff = x - self.loc
        proj = (diff.unsqueeze(-2) @ self.scale_tril).squeeze(-2)
        d = self.loc.shape[-1]
        return d / self.mean_precision + self.df * proj.pow(2).sum(-1)

    def expand(self, batch_shape, _instance=None):
        """A view of this distribution with a larger ``batch_shape`` (torch's convention)."""
        batch_shape = torch.Size(batch_shape)
        d = self.event_shape[0]
        return NormalWishart(
            self.loc.expand(batch_shape + (d,)),
            self.mean_precision.expand(batch_shape),
            self.df.expand(batch_shape),
            scale_tril=self.scale_tril.expand(batch_shape + (d, d)),
            validate_args=False,
        )

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad(), warnings.catch_warnings():
            # torch's Bartlett sampler redraws singular matrices and warns; the redraw is exact.
            warnings.filterwarnings("ignore", message="Singular sample detected")
            precision = self.wishart.sample(sample_shape)
            precision = 0.5 * (precision + precision.mT)
            cov_prec = self.mean_precision[..., None, None] * precision
            mean = MultivariateNormal(
                self.loc.expand(precision.shape[:-1]), precision_matrix=cov_prec,
                validate_args=False,
            ).sample()
        return mean, precision

    def log_prob(self, value):
        mean, precision = value
        log_w = self.wishart.log_prob(precision)
        normal = MultivariateNormal(
            self.loc, precision_matrix=self.mean_precision[..., None, None] * precision,
            validate_args=False,
        )
        return log_w + normal.log_prob(mean)

    def entropy(self):
        r"""H = H[W(Lambda)] + E_Lambda H[N(m, (beta Lambda)^-1)]
        = H[W] + D/2 (1 + log 2 pi) - D/2 log beta - 1/2 E[log det Lambda] (PRML B.82, B.41)."""
        d = self.event_shape[0]
        log_det_w = _ex.log_det_tril(self.scale_tril)
        e_log_det = _ex.expected_log_det_wishart_unchecked(self.df, log_det_scale=log_det_w, dim=d)
        # E[log det (beta Lambda)^-1] = -(D log beta + E[log det Lambda])
        return (_ex.wishart_entropy(self.df, log_det_w, d)
                + _ex.gaussian_entropy(-(d * torch.log(self.mean_precision) + e_log_det), d))
