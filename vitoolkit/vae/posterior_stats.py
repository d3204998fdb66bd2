r"""What the KL term pulls towards N(0, I): the aggregate posterior and the correlation of codes.

The ELBO's KL term acts on each :math:`q(z \mid x_n)` separately, but averaged over a
data set of N points it splits into two parts ("ELBO surgery", Hoffman & Johnson
2016, eq. (2); the aggregate posterior of Makhzani et al. 2015, section 1):

.. math::

    \frac1N \sum_n \mathrm{KL}\big(q(z \mid x_n) \,\|\, p(z)\big)
        = I_q(n; z) + \mathrm{KL}\big(q(z) \,\|\, p(z)\big),

where :math:`q(z) = \frac1N \sum_n q(z \mid x_n)` is the *aggregate* posterior (a
mixture of N diagonal Gaussians) and

.. math::

    I_q(n; z) = E_n E_{q(z \mid x_n)}\big[\log q(z \mid x_n) - \log q(z)\big]

is the mutual information between the data index and the code under q,
:math:`0 \le I_q \le \log N`. A code that carries information about x *must* keep
each :math:`q(z \mid x_n)` away from the prior; what the objective lets approach
:math:`\mathcal N(0, I)` is the mixture q(z).

The mixture is finite, so :math:`\log q(z)` is exact (a log-sum-exp over its N
components) and :math:`\mathrm{KL}(q(z) \,\|\, p(z)) = E_{q(z)}[\log q(z) - \log p(z)]`
is estimated without bias by sampling the mixture.

A diagonal sigma(x) makes each q(z | x) factorise; it says nothing about the
codes *across* the data set: :func:`correlation_matrix` and
:func:`gaussian_total_correlation` measure their linear dependence, and
:func:`aggregate_total_correlation` any dependence between the coordinates of
the aggregate posterior, :math:`\mathrm{KL}(q(z) \,\|\, \prod_d q(z_d))` (the total
correlation term
of Chen, Li, Grosse & Duvenaud 2018, "Isolating sources of disentanglement in
VAEs", eq. (2)); its marginals q(z_d) are one-dimensional mixtures, so it too
is estimated without bias.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..divergences import Estimate, mean_and_stderr
from ..validation import as_float_tensor, check_int, check_memory
from ._model_inputs import _check_inputs
from .latent import encode_batched

__all__ = [
    "AggregatePosterior",
    "KLDecomposition",
    "aggregate_posterior",
    "aggregate_kl_to_prior",
    "aggregate_total_correlation",
    "kl_decomposition",
    "correlation_matrix",
    "max_abs_off_diagonal",
    "gaussian_total_correlation",
]

_LOG_2PI = math.log(2 * math.pi)


def _check_loc_scale(loc, scale) -> tuple[torch.Tensor, torch.Tensor]:
    loc = as_float_tensor(loc, "loc", dtype=torch.float64)
    scale = as_float_tensor(scale, "scale", dtype=torch.float64)
    if loc.ndim != 2 or loc.shape != scale.shape or loc.shape[0] < 1 or loc.shape[1] < 1:
        raise ValueError(f"loc and scale must both have shape (N, latent_dim) with N >= 1, got "
                         f"{tuple(loc.shape)} and {tuple(scale.shape)}")
    if bool((scale <= 0).any()):
        raise ValueError(f"scale must be positive, got minimum {float(scale.min()):.3g}")
    return loc, scale


class AggregatePosterior:
    r"""The aggregate posterior: the mixture of every example's encoder Gaussian, in float64.

    .. math::

        q(z) = \frac1N \sum_n \mathcal N\big(z; \mu_n, \mathrm{diag}(\sigma_n^2)\big)

    with :math:`\mu_n` the ``loc`` and :math:`\sigma_n` the ``scale`` of example n.

    Parameters
    ----------
    loc, scale : Tensor of shape (N, latent_dim)
        Means and standard deviations of the N encoder Gaussians q(z | x_n).
    """

    def __init__(self, loc, scale):
        self.loc, self.scale = _check_loc_scale(loc, scale)

    @property
    def num_components(self) -> int:
        return self.loc.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.loc.shape[1]

    @property
    def mean(self) -> torch.Tensor:
        """E_q[z] = mean of the component means, shape (latent_dim,)."""
        return self.loc.mean(0)

    @property
    def covariance(self) -> torch.Tensor:
        r"""The mixture's covariance by the law of total covariance, shape (L, L).

        :math:`\mathrm{Cov}_q[z] = \mathrm{Cov}_n(\mu_n) + \mathrm{diag}\big(\frac1N \sum_n \sigma_n^2\big)`.

        The between-component part uses the 1/N (population) normalisation: it is
        the exact covariance of the mixture.
        """
        centred = self.loc - self.mean
        return centred.T @ centred / self.num_components + torch.diag((self.scale ** 2).mean(0))

    def _check_z(self, z) -> torch.Tensor:
        z = as_float_tensor(z, "z", dtype=torch.float64)
        if z.ndim < 1 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape (..., {self.latent_dim}), got {tuple(z.shape)}")
        return z

    def component_log_prob(self, z) -> torch.Tensor:
        """log q(z | x_n) for every component: z of shape (..., L) -> (..., N)."""
        z = self._check_z(z)
        check_memory(z.numel() * self.num_components * 8 * 2, "z", tuple(z.shape),
                     f"the log densities under {self.num_components} components")
        u = (z.unsqueeze(-2) - self.loc) / self.scale  # (..., N, L)
        return -0.5 * (u * u).sum(-1) - self.scale.log().sum(-1) - 0.5 * self.latent_dim * _LOG_2PI

    def log_prob(self, z, *, batch_size: int = 256) -> torch.Tensor:
        r"""The exact mixture log-density; z (..., L) -> (...).

        :math:`\log q(z) = \operatorname{logsumexp}_n \log q(z \mid x_n) - \log N`.
        """
        z = self._check_z(z)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        flat = z.reshape(-1, z.shape[-1]) if z.ndim > 1 else z.reshape(1, -1)
        out = [torch.logsumexp(self.component_log_prob(flat[s:s + batch_size]), dim=-1)
               for s in range(0, flat.shape[0], batch_size)]
        return (torch.cat(out) - math.log(self.num_components)).reshape(z.shape[:-1])

    def marginal_log_prob(self, values, dim: int) -> torch.Tensor:
        """log density of the one-dimensional marginal q(z[dim]) at ``values`` (shape (m,)) -> (m,)."""
        dim = check_int(dim, "dim", minimum=0, maximum=self.latent_dim - 1)
        v = as_float_tensor(values, "values", dtype=torch.float64, ndim=(0, 1)).reshape(-1, 1)
        check_memory(v.shape[0] * self.num_components * 8 * 3, "values", tuple(v.shape),
                     f"the log densities under {self.num_components} components")
        loc, scale = self.loc[:, dim], self.scale[:, dim]
        u = (v - loc) / scale
        comp = -0.5 * u * u - scale.log() - 0.5 * _LOG_2PI
        return torch.logsumexp(comp, dim=-1) - math.log(self.num_components)

    def sample(self, num_samples: int, *, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw (z, n): a component index n uniformly, then z ~ q(z | x_n).

        Returns z of shape (num_samples, L) and the component indices (num_samples,).
        """
        num_samples = check_int(num_samples, "num_samples", minimum=1)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got "
                            f"{type(generator).__name__}")
        check_memory(num_samples * (3 * self.latent_dim + 2) * 8, "num_samples", num_samples,
                     "the draws of the mixture")
        idx = torch.randint(self.num_components, (num_samples,), generator=generator)
        eps = torch.randn(num_samples, self.latent_dim, generator=generator, dtype=torch.float64)
        return self.loc[idx] + self.scale[idx] * eps, idx


def aggregate_posterior(model, x, *, batch_size: int = 2048) -> AggregatePosterior:
    """The aggregate posterior of ``model``'s encoder over the rows of ``x`` (n, data_dim)."""
    x, _ = _check_inputs(model, x, None, needs=("encode",))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    loc, scale = encode_batched(model, x, batch_size=batch_size)
    return AggregatePosterior(loc, scale)


def _check_agg(agg) -> AggregatePosterior:
    if not isinstance(agg, AggregatePosterior):
        raise TypeError(f"agg must be an AggregatePosterior, got {type(agg).__name__}")
    return agg


def _check_draws(num_samples, agg: AggregatePosterior, minimum: int = 2) -> int:
    """A Monte Carlo sample size: an int >= minimum whose draws' log densities fit in memory."""
    num_samples = check_int(num_samples, "num_samples", minimum=minimum)
    # log_prob works in blocks of 256 draws; the draws, their densities and marginals are kept.
    check_memory(num_samples * (4 * agg.latent_dim + 8) * 8, "num_samples", num_samples,
                 "the draws and their log densities")
    return num_samples


def _standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * _LOG_2PI


def aggregate_kl_to_prior(agg: AggregatePosterior, num_samples: int, *, generator=None) -> Estimate:
    r"""KL(q(z) || N(0, I)) for the aggregate posterior, by Monte Carlo, in nats.

    :math:`E_{q(z)}[\log q(z) - \log p(z)]` with z drawn from the mixture; :math:`\log q(z)` is the
    exact mixture density, so the estimate is unbiased and its standard error is
    the sample standard deviation over sqrt(num_samples).

    Returns
    -------
    Estimate(value, stderr), float64 scalars.
    """
    num_samples = _check_draws(num_samples, _check_agg(agg))
    z, _ = agg.sample(num_samples, generator=generator)
    return mean_and_stderr(agg.log_prob(z) - _standard_normal_log_prob(z))


def aggregate_total_correlation(agg: AggregatePosterior, num_samples: int, *, dims=None,
                                generator=None) -> Estimate:
    r"""Total correlation KL(q(z) || prod_d q(z_d)) of the aggregate posterior, Monte Carlo, nats.

    :math:`E_{q(z)}[\log q(z) - \sum_d \log q(z_d)]` with z drawn from the mixture; every
    density is exact (the joint is the N-component mixture, each marginal the
    mixture of the components' one-dimensional marginals), so the estimate is
    unbiased. Zero exactly when the coordinates of q(z) are independent, however
    small their linear correlations; Chen et al. (2018), eq. (2).

    Parameters
    ----------
    agg : AggregatePosterior
    num_samples : int >= 2
    dims : sequence of int, optional
        Coordinates to include (e.g. the active units); default all. The total
        correlation of a subset is that of the subset's joint marginal.
    generator : torch.Generator, optional

    Returns
    -------
    Estimate(value, stderr)
    """
    num_samples = _check_draws(num_samples, _check_agg(agg))
    if dims is not None:
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
            raise TypeError(f"dims must be a sequence of unit indices, got {dims!r}")
        dims = [check_int(d, f"dims[{i}]", minimum=0, maximum=agg.latent_dim - 1)
                for i, d in enumerate(dims)]
        if not dims:
            raise ValueError(f"dims must be non-empty indices in 0..{agg.latent_dim - 1}, got []")
        idx = torch.as_tensor(dims, dtype=torch.long)
        agg = AggregatePosterior(agg.loc[:, idx], agg.scale[:, idx])
    z, _ = agg.sample(num_samples, generator=generator)
    marginals = sum(agg.marginal_log_prob(z[:, d], d) for d in range(agg.latent_dim))
    return mean_and_stderr(agg.log_prob(z) - marginals)


class KLDecomposition(NamedTuple):
    r"""The ELBO-surgery split of the average KL term, in nats (Hoffman & Johnson 2016, eq. (2)).

    ``average_kl = mutual_information + aggregate_kl``: the module docstring's
    :math:`\frac1N \sum_n \mathrm{KL}(q(z \mid x_n) \,\|\, p(z)) = I_q(n; z)
    + \mathrm{KL}(q(z) \,\|\, p(z))`.
    """

    average_kl: float  # 1/N sum_n KL(q(z|x_n) || p(z)), closed form
    aggregate_kl: Estimate  # KL(q(z) || p(z)), Monte Carlo
    mutual_information: Estimate  # I_q(n; z) = average_kl - aggregate_kl, same draws
    log_num_components: float  # log N, the upper bound on the mutual information


def kl_decomposition(agg: AggregatePosterior, num_samples: int, *, generator=None) -> KLDecomposition:
    r"""Split the average KL term into the mutual information and KL(aggregate || prior).

    The average KL is exact (closed form per component, Kingma & Welling 2013,
    Appendix B). The mutual information is estimated on the same draws
    :math:`(z, n) \sim q` as :math:`E[\log q(z \mid x_n) - \log q(z)]`, so the two Monte
    Carlo estimates add up to the exact average (their noise is opposite), up to the
    noise of :math:`E[\log q(z \mid x_n) - \log p(z)]` around its mean, which is zero in expectation.

    Returns
    -------
    KLDecomposition
    """
    num_samples = _check_draws(num_samples, _check_agg(agg))
    z, idx = agg.sample(num_samples, generator=generator)
    log_agg = agg.log_prob(z)
    loc, scale = agg.loc[idx], agg.scale[idx]
    u = (z - loc) / scale
    log_own = -0.5 * (u * u).sum(-1) - scale.log().sum(-1) - 0.5 * agg.latent_dim * _LOG_2PI
    mi = mean_and_stderr(log_own - log_agg)
    agg_kl = mean_and_stderr(log_agg - _standard_normal_log_prob(z))
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1)/2 - log s per dimension.
    per = 0.5 * (agg.loc ** 2 + agg.scale ** 2 - 1).sum(-1) - agg.scale.log().sum(-1)
    return KLDecomposition(float(per.mean()), agg_kl, mi, math.log(agg.num_components))


# -- dependence across the data set ---------------------------------------------


def correlation_matrix(codes) -> torch.Tensor:
    """Pearson correlation matrix of the columns of ``codes`` (n, L), float64, shape (L, L).

    Columns with zero variance get correlation 0 with every other column (1 on the diagonal).
    """
    c = as_float_tensor(codes, "codes", dtype=torch.float64)
    if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] < 1:
        raise ValueError(f"codes must have shape (n >= 2, latent_dim), got {tuple(c.shape)}")
    c = c - c.mean(0)
    cov = c.T @ c / (c.shape[0] - 1)
    sd = cov.diagonal().sqrt()
    safe = torch.where(sd > 0, sd, torch.ones_like(sd))
    corr = cov / safe[:, None] / safe[None, :]
    corr = torch.where((sd[:, None] > 0) & (sd[None, :] > 0), corr, torch.zeros_like(corr))
    corr.fill_diagonal_(1.0)
    return corr


def max_abs_off_diagonal(matrix) -> float:
    """The largest ``abs(m[i, j])`` with i != j of a square matrix (0 for a 1x1 matrix)."""
    m = as_float_tensor(matrix, "matrix", dtype=torch.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square, got shape {tuple(m.shape)}")
    if m.shape[0] < 2:
        return 0.0
    off = m[~torch.eye(m.shape[0], dtype=torch.bool)]
    return float(off.abs().max())


def gaussian_total_correlation(covariance) -> float:
    r"""Total correlation of a zero-mean Gaussian with covariance Sigma, in nats.

    .. math::

        \mathrm{KL}\Big(\mathcal N(0, \Sigma) \,\Big\|\, \prod_i \mathcal N(0, \Sigma_{ii})\Big)
            = \frac12 \Big(\sum_i \log \Sigma_{ii} - \log\det \Sigma\Big) = -\frac12 \log\det R,

    R the correlation matrix (Watanabe 1960's total correlation of a Gaussian); 0 exactly
    when the coordinates are uncorrelated, :math:`-\frac12 \log(1 - \rho^2)` in two
    dimensions.
    """
    cov = as_float_tensor(covariance, "covariance", dtype=torch.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] < 1:
        raise ValueError(f"covariance must be square, got shape {tuple(cov.shape)}")
    sign, logdet = torch.linalg.slogdet(cov)
    if float(sign) <= 0 or bool((cov.diagonal() <= 0).any()) \
            or not bool(torch.allclose(cov, cov.T, rtol=1e-8, atol=1e-12)):
        raise ValueError("covariance must be symmetric positive definite")
    return float(0.5 * (cov.diagonal().log().sum() - logdet))
