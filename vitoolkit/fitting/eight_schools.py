r"""The eight-schools model (Rubin 1981; Gelman et al., BDA3, section 5.5) and its exact posterior.

.. math::

    y_j \sim \mathcal N(\theta_j, \sigma_j^2), \qquad
    \theta_j \sim \mathcal N(\mu, \tau^2), \qquad
    \mu \sim \mathcal N(0, 5^2), \qquad \tau \sim \text{half-Cauchy}(0, 5)

for the J = 8 schools' estimated coaching effects :math:`y_j` (the priors of Yao,
Vehtari, Simpson & Gelman 2018, "Yes, but did it work?", ICML, section 4.2). The
posterior has a funnel: small :math:`\tau` pins every :math:`\theta_j` to :math:`\mu`.

:class:`EightSchools` is the log joint density on the unconstrained coordinates
:math:`w = (\mu, \log\tau, \theta_1, \dots, \theta_8)` (centred) or
:math:`(\mu, \log\tau, \eta_1, \dots, \eta_8)` with :math:`\theta_j = \mu + \tau \eta_j`
(non-centred), the log-Jacobian of :math:`\tau = e^{\log\tau}` (and of
:math:`\theta = \mu + \tau \eta`) included. Integrated over w it gives p(y), the evidence.

:func:`eight_schools_reference` is exact up to quadrature: theta integrates out in
closed form (BDA3 eq. 5.17-5.20),

.. math::

    p(\mu, \log\tau \mid y) \propto p(\mu)\, p(\tau)\, \tau
        \prod_j \mathcal N(y_j; \mu, \sigma_j^2 + \tau^2), \qquad
    \theta_j \mid \mu, \tau, y \sim \mathcal N\Big(\frac{y_j/\sigma_j^2 + \mu/\tau^2}
        {1/\sigma_j^2 + 1/\tau^2}, \frac{1}{1/\sigma_j^2 + 1/\tau^2}\Big),

so the 2-D marginal is integrated on a grid (:func:`~vitoolkit.fitting.grid_reference`)
and the moments of theta follow from the conditional ones (the laws of total
expectation and variance); the grid's normaliser is log p(y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import Distribution, HalfCauchy, Normal, constraints

from ..validation import as_float_tensor, check_bool, check_int
from .reference import GridReference, grid_reference

__all__ = ["EightSchools", "SchoolsReference", "eight_schools_reference", "SCHOOLS_Y",
           "SCHOOLS_SIGMA", "to_centred"]

_F64 = torch.float64
#: The estimated effects and their standard errors (BDA3 table 5.2).
SCHOOLS_Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)
SCHOOLS_SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)
_MU_SCALE, _TAU_SCALE = 5.0, 5.0


def _priors(mu, log_tau):
    zero = torch.zeros((), dtype=_F64)
    tau = log_tau.exp()
    return (Normal(zero, _MU_SCALE).log_prob(mu)
            + HalfCauchy(torch.tensor(_TAU_SCALE, dtype=_F64)).log_prob(tau) + log_tau)


class EightSchools(Distribution):
    r"""The eight-schools log joint density log p(y, w) on unconstrained w of shape (..., 10).

    The model and the coordinates w are in the module docstring.

    Parameters
    ----------
    centred : bool, default True
        w = (mu, log tau, theta) (centred) or (mu, log tau, eta), theta = mu + tau eta.
    """

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, centred: bool = True, validate_args=None):
        self.centred = check_bool(centred, "centred")
        validate_args = None if validate_args is None else check_bool(validate_args, "validate_args")
        self.y = torch.tensor(SCHOOLS_Y, dtype=_F64)
        self.sigma = torch.tensor(SCHOOLS_SIGMA, dtype=_F64)
        super().__init__(torch.Size(), torch.Size((10,)), validate_args=validate_args)

    def log_prob(self, value):
        value = torch.as_tensor(value, dtype=_F64)
        mu, log_tau, rest = value[..., 0], value[..., 1], value[..., 2:]
        tau = log_tau.exp().unsqueeze(-1)
        if self.centred:
            theta = rest
            group = Normal(mu.unsqueeze(-1), tau).log_prob(theta).sum(-1)
        else:  # eta ~ N(0, 1): the density of theta = mu + tau eta times its Jacobian tau^J
            theta = mu.unsqueeze(-1) + tau * rest
            group = Normal(torch.zeros((), dtype=_F64), 1.0).log_prob(rest).sum(-1)
        return _priors(mu, log_tau) + group + Normal(theta, self.sigma).log_prob(self.y).sum(-1)


def to_centred(w):
    """Map non-centred draws (mu, log tau, eta) of shape (..., 10) to (mu, log tau, theta).

    theta_j = mu + tau eta_j with tau = exp(log tau). ``w`` must be finite, and its log tau
    small enough that theta is finite (a ValueError naming ``w`` otherwise).
    """
    w = as_float_tensor(w, "w", dtype=_F64)
    if w.dim() < 1 or w.shape[-1] != 10:
        raise ValueError(f"w must have shape (..., 10) (mu, log tau, eta_1..eta_8), got "
                         f"{tuple(w.shape)}")
    theta = w[..., :1] + w[..., 1:2].exp() * w[..., 2:]
    if not bool(torch.isfinite(theta).all()):
        raise ValueError("w gives a non-finite theta = mu + exp(log tau) eta (log tau or eta too "
                         "large)")
    return torch.cat([w[..., :2], theta], -1)


class _Marginal(Distribution):
    """p(y, mu, log tau) with theta integrated out, on (..., 2)."""

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self):
        self.y = torch.tensor(SCHOOLS_Y, dtype=_F64)
        self.sigma = torch.tensor(SCHOOLS_SIGMA, dtype=_F64)
        super().__init__(torch.Size(), torch.Size((2,)), validate_args=False)

    def log_prob(self, value):
        value = torch.as_tensor(value, dtype=_F64)
        mu, log_tau = value[..., 0], value[..., 1]
        sd = (self.sigma.pow(2) + (2 * log_tau).exp().unsqueeze(-1)).sqrt()
        return _priors(mu, log_tau) + Normal(mu.unsqueeze(-1), sd).log_prob(self.y).sum(-1)


@dataclass(frozen=True)
class SchoolsReference:
    """The exact posterior moments of w = (mu, log tau, theta_1..8) and log p(y).

    Attributes
    ----------
    mean : Tensor of shape (10,)
    covariance : Tensor of shape (10, 10)
    log_evidence : float, log p(y)
    marginal : GridReference of (mu, log tau)
    """

    mean: torch.Tensor
    covariance: torch.Tensor
    log_evidence: float
    marginal: GridReference

    @property
    def std(self) -> torch.Tensor:
        return self.covariance.diagonal().sqrt()


def eight_schools_reference(num_points: int = 301) -> SchoolsReference:
    """Exact posterior moments and evidence by the 2-D marginal on a grid (module docstring).

    Parameters
    ----------
    num_points : int >= 3, grid points per axis over mu in [-40, 50], log tau in [-14, 7]
    """
    num_points = check_int(num_points, "num_points", minimum=3)
    marginal = grid_reference(_Marginal(), [(-40.0, 50.0), (-14.0, 7.0)], num_points=num_points)
    mu, log_tau = marginal.points[:, 0], marginal.points[:, 1]
    y = torch.tensor(SCHOOLS_Y, dtype=_F64)
    prec = 1 / torch.tensor(SCHOOLS_SIGMA, dtype=_F64).pow(2) + (-2 * log_tau).exp().unsqueeze(-1)
    cond_var = 1 / prec  # (G, 8)
    cond_mean = cond_var * (y / torch.tensor(SCHOOLS_SIGMA, dtype=_F64).pow(2)
                            + (mu * (-2 * log_tau).exp()).unsqueeze(-1))
    m = torch.cat([marginal.points, cond_mean], -1)  # (G, 10): E[w | mu, log tau]
    v = torch.cat([torch.zeros_like(marginal.points), cond_var], -1)
    w = marginal.weights
    mean = w @ m
    centred = m - mean
    cov = (centred.mT * w) @ centred + torch.diag(w @ v)
    if not math.isfinite(marginal.log_normaliser):
        raise FloatingPointError("the eight-schools evidence is not finite")
    return SchoolsReference(mean=mean, covariance=cov, log_evidence=marginal.log_normaliser,
                            marginal=marginal)
