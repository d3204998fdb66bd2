r"""The conjugate Normal-Normal model: a latent-variable model whose evidence is exact.

    z ~ N(m0, s0^2),    x_i | z ~ N(z, s^2),  i = 1..n.

Everything an ELBO lesson needs is closed form here (Bishop PRML section 2.3.3;
Murphy, PML1 section 3.4.1):

- posterior  p(z | x) = N(m_n, s_n^2),  1/s_n^2 = 1/s0^2 + n/s^2,
  m_n = s_n^2 (m0/s0^2 + sum_i x_i / s^2);
- evidence   log p(x) = log N(x; m0 1, s^2 I + s0^2 1 1^T);
- ELBO of a Gaussian q(z) = N(m, v):
  ELBO(q) = sum_i [-1/2 log(2 pi s^2) - ((x_i - m)^2 + v) / (2 s^2)] - KL(q || p(z)),

so the identity log p(x) = ELBO(q) + KL(q || p(z | x)) can be checked to
floating-point precision for any q.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import MultivariateNormal, Normal

from .distributions import sample
from .divergences import Estimate, kl_divergence, mean_and_stderr

__all__ = ["ConjugateGaussian"]


def _positive(value, name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.dim() != 0 or not bool(torch.isfinite(t)) or float(t) <= 0:
        raise ValueError(f"{name} must be a positive finite scalar, got {value!r}")
    return t


class ConjugateGaussian:
    """The model z ~ N(prior_loc, prior_scale^2), x_i | z ~ N(z, noise_scale^2).

    Parameters
    ----------
    prior_loc : float
    prior_scale : float > 0
    noise_scale : float > 0

    All results are float64 tensors.
    """

    def __init__(self, prior_loc: float = 0.0, prior_scale: float = 1.0, noise_scale: float = 1.0):
        loc = torch.as_tensor(prior_loc, dtype=torch.float64)
        if loc.dim() != 0 or not bool(torch.isfinite(loc)):
            raise ValueError(f"prior_loc must be a finite scalar, got {prior_loc!r}")
        self.prior_loc = loc
        self.prior_scale = _positive(prior_scale, "prior_scale")
        self.noise_scale = _positive(noise_scale, "noise_scale")

    @property
    def prior(self) -> Normal:
        """p(z) = N(prior_loc, prior_scale^2)."""
        return Normal(self.prior_loc, self.prior_scale)

    def _data(self, x) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x, dtype=np.float64) if not isinstance(x, torch.Tensor)
                            else x, dtype=torch.float64)
        if x.dim() != 1 or x.shape[0] < 1:
            raise ValueError(f"x must have shape (n,) with n >= 1, got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or infinite values")
        return x

    def sample_data(self, n: int, *, generator: torch.Generator | None = None):
        """Draw (z, x) from the model: z of shape (), x of shape (n,)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        z = sample(self.prior, generator=generator)
        x = sample(Normal(z, self.noise_scale), (n,), generator=generator)
        return z, x

    def posterior(self, x) -> Normal:
        """Exact p(z | x) = N(m_n, s_n^2) (PRML eq. 2.141-2.142)."""
        x = self._data(x)
        precision = 1 / self.prior_scale**2 + x.shape[0] / self.noise_scale**2
        var = 1 / precision
        mean = var * (self.prior_loc / self.prior_scale**2 + x.sum() / self.noise_scale**2)
        return Normal(mean, var.sqrt())

    def log_evidence(self, x) -> torch.Tensor:
        """Exact log p(x) = log N(x; m0 1, s^2 I + s0^2 1 1^T)."""
        x = self._data(x)
        n = x.shape[0]
        cov = self.noise_scale**2 * torch.eye(n, dtype=torch.float64) + self.prior_scale**2
        return MultivariateNormal(self.prior_loc.expand(n), covariance_matrix=cov).log_prob(x)

    def log_joint(self, x, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) for z of any shape (...), returning shape (...)."""
        x = self._data(x)
        z = torch.as_tensor(z, dtype=torch.float64)
        lik = Normal(z.unsqueeze(-1), self.noise_scale).log_prob(x).sum(-1)
        return lik + self.prior.log_prob(z)

    def expected_log_likelihood(self, x, q: Normal) -> torch.Tensor:
        """E_q[log p(x | z)] = sum_i [-1/2 log 2 pi s^2 - ((x_i - m)^2 + v) / (2 s^2)]."""
        x = self._data(x)
        m, v = q.loc.unsqueeze(-1), q.scale.pow(2).unsqueeze(-1)
        s2 = self.noise_scale**2
        return (-0.5 * torch.log(2 * math.pi * s2) - ((x - m) ** 2 + v) / (2 * s2)).sum(-1)

    def elbo(self, x, q: Normal) -> torch.Tensor:
        """Closed-form ELBO(q) = E_q[log p(x | z)] - KL(q || p(z)) for Gaussian ``q``.

        ``q`` may be batched (a grid of variational parameters); returns q's batch shape.
        """
        if not isinstance(q, Normal):
            raise TypeError(f"q must be a torch.distributions.Normal, got {type(q).__name__}")
        return self.expected_log_likelihood(x, q) - kl_divergence(q, self.prior)

    def elbo_monte_carlo(self, x, q, num_samples: int, *,
                         generator: torch.Generator | None = None) -> Estimate:
        """Monte Carlo ELBO E_q[log p(x, z) - log q(z)] from ``num_samples`` draws of q."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
        z = sample(q, (num_samples,), generator=generator)
        return mean_and_stderr(self.log_joint(x, z) - q.log_prob(z))
