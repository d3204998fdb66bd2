r"""Observation models p(x | z): what the decoder's outputs mean.

A likelihood turns the decoder's raw outputs (``(..., P * data_dim)``, P
parameters per pixel) into a ``torch.distributions`` object with event shape
``(data_dim,)``, so ``log_prob(x)`` sums over pixels and keeps the batch dims.
Each choice is a modelling assumption, and the familiar losses are their
negative log-likelihoods:

- ``"bernoulli"``: :math:`x_d \in \{0, 1\}`, :math:`p = \sigma(\text{logit})`;
  :math:`-\log p` is the binary cross-entropy (BCE). Kingma & Welling (2013), Appendix C.1. On *continuous*
  pixels in [0, 1] BCE is still computable, but it is not a normalised density
  on [0, 1] (it integrates to less than 1), so the "log-likelihood" it reports
  is not one; Loaiza-Ganem & Cunningham (NeurIPS 2019), section 3.
- ``"continuous_bernoulli"``: the normalised fix,
  :math:`p(x) = C(\lambda) \, \lambda^x (1 - \lambda)^{1 - x}` on [0, 1], Loaiza-Ganem &
  Cunningham (2019), eq. (3); ``torch.distributions.ContinuousBernoulli``.
- ``"gaussian"``: :math:`\mathcal N(x; \mu, \sigma^2)` with a fixed :math:`\sigma`
  (``observation_scale``);
  :math:`-\log p = \lVert x - \mu \rVert^2 / (2 \sigma^2) + \text{const}`, i.e. MSE
  scaled by :math:`1/(2 \sigma^2)`.
  Kingma & Welling (2013), Appendix C.2.
- ``"gaussian_learned"``: the decoder also outputs a per-pixel scale,
  :math:`\sigma = \operatorname{softplus}(\text{raw})` + ``min_scale`` (the floor keeps the density bounded
  on pixels that are always exactly 0).

Two per-pixel functions show why BCE on non-binary targets is not a likelihood
(Loaiza-Ganem & Cunningham 2019, section 3):

- :func:`bce_floor`: for a target :math:`y \in [0, 1]`, the minimum over p of
  :math:`\mathrm{BCE}(y, p) = -y \log p - (1 - y) \log(1 - p)` is reached at p = y and
  equals the binary entropy :math:`H(y) = -y \log y - (1 - y) \log(1 - y)`: zero only
  at y = 0 and y = 1, :math:`\log 2` at y = 1/2. A perfect decoder still pays H(y) per grey pixel.
- :func:`continuous_bernoulli_log_normaliser`: log C(lambda), the constant that
  turns lambda^x (1 - lambda)^(1 - x) into a density on [0, 1],
  C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) (C(1/2) = 2), eq. (3) of
  the paper; log C >= log 2 > 0, so BCE's "log-likelihood" is always below the
  normalised one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal

from ..validation import check_positive

__all__ = ["LIKELIHOODS", "Likelihood", "make_likelihood", "bce_floor",
           "continuous_bernoulli_log_normaliser"]

#: The named likelihoods.
LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_learned", "continuous_bernoulli")


class Likelihood:
    """A named observation model: parameters per pixel, support, and the distribution.

    Parameters
    ----------
    name : str
        One of :data:`LIKELIHOODS`.
    observation_scale : float
        Standard deviation of the fixed-variance Gaussian (``"gaussian"`` only).
    min_scale : float
        Floor on the learned standard deviation (``"gaussian_learned"`` only).
    """

    def __init__(self, name: str, observation_scale: float = 0.1, min_scale: float = 0.01):
        if not isinstance(name, str) or name not in LIKELIHOODS:
            raise ValueError(f"likelihood name must be one of {LIKELIHOODS}, got {name!r}")
        self.name = name
        self.observation_scale = check_positive(observation_scale, "observation_scale")
        self.min_scale = check_positive(min_scale, "min_scale")
        self.params_per_pixel = 2 if name == "gaussian_learned" else 1
        self.bounded = name in ("bernoulli", "continuous_bernoulli")

    def __repr__(self) -> str:
        return f"Likelihood({self.name!r})"

    def check_support(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` when ``x`` lies outside the likelihood's support."""
        if self.bounded:
            lo, hi = float(x.min()), float(x.max())
            if lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"{name} has values in [{lo:.4g}, {hi:.4g}], outside [0, 1], the support "
                    f"of the {self.name!r} likelihood; rescale the data to [0, 1] or use "
                    "likelihood='gaussian'"
                )

    def distribution(self, params: torch.Tensor):
        """p(x | z) from decoder outputs ``params`` of shape (..., P * data_dim).

        Returns a distribution with batch shape ``params.shape[:-1]`` and event
        shape ``(data_dim,)``.
        """
        if self.name == "bernoulli":
            base = Bernoulli(logits=params, validate_args=False)
        elif self.name == "continuous_bernoulli":
            base = ContinuousBernoulli(logits=params, validate_args=False)
        elif self.name == "gaussian":
            scale = torch.full((), self.observation_scale, dtype=params.dtype,
                               device=params.device).expand_as(params)
            base = Normal(params, scale, validate_args=False)
        else:
            loc, raw = params.chunk(2, dim=-1)
            base = Normal(loc, F.softplus(raw) + self.min_scale, validate_args=False)
        return Independent(base, 1, validate_args=False)

    def nll_sum(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-sum over the batch of log p(x | z): a scalar, the training loss's data term.

        For the Bernoulli this is one fused binary cross-entropy (the same value as
        ``-distribution(params).log_prob(x).sum()``, with a smaller autograd graph).
        """
        if self.name == "bernoulli":
            return F.binary_cross_entropy_with_logits(params, x, reduction="sum")
        return -self.distribution(params).log_prob(x).sum()

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | z), shape (..., data_dim)."""
        return self.distribution(params).mean


def make_likelihood(likelihood, **kwargs) -> Likelihood:
    """A :class:`Likelihood` from its name (or return an existing one)."""
    if isinstance(likelihood, Likelihood):
        return likelihood
    return Likelihood(likelihood, **kwargs)


def _unit_interval(values, name: str) -> torch.Tensor:
    t = torch.as_tensor(values)
    t = t.to(torch.float64) if not t.is_floating_point() else t
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or bool((t > 1).any()):
        raise ValueError(f"{name} must lie in [0, 1]")
    return t


def bce_floor(y) -> torch.Tensor:
    r"""The smallest binary cross-entropy a prediction can reach on target ``y``: H(y), nats.

    .. math::

        \min_p \big[-y \log p - (1 - y) \log(1 - p)\big] = H(y) = -y \log y - (1 - y) \log(1 - y),

    attained at p = y (set the derivative :math:`-y/p + (1 - y)/(1 - p)` to zero), with
    :math:`0 \log 0 = 0`.

    Parameters
    ----------
    y : Tensor (any shape), values in [0, 1]

    Returns
    -------
    Tensor of the same shape and floating dtype.
    """
    y = _unit_interval(y, "y")
    return -(torch.special.xlogy(y, y) + torch.special.xlogy(1 - y, 1 - y))


def continuous_bernoulli_log_normaliser(lam) -> torch.Tensor:
    r"""log C(lambda) of the continuous Bernoulli, Loaiza-Ganem & Cunningham (2019), eq. (3).

    .. math::

        C(\lambda) = \frac{2 \operatorname{artanh}(1 - 2\lambda)}{1 - 2\lambda}
            = \frac{\lvert \operatorname{logit} \lambda \rvert}{\lvert 1 - 2\lambda \rvert}

    for :math:`\lambda \ne 1/2`, and :math:`C(1/2) = 2`; near 1/2 the second-order Taylor
    expansion :math:`\log 2 + \frac43 d + \frac{104}{45} d^2`,
    :math:`d = (\lambda - 1/2)^2`, avoids 0/0.

    Parameters
    ----------
    lam : Tensor (any shape), values in (0, 1)

    Returns
    -------
    Tensor of the same shape and floating dtype (>= log 2).
    """
    lam = _unit_interval(lam, "lam")
    if bool((lam <= 0).any()) or bool((lam >= 1).any()):
        raise ValueError("lam must lie strictly inside (0, 1)")
    d = (lam - 0.5) ** 2
    near = d < 1e-6
    safe = torch.where(near, torch.full_like(lam, 0.25), lam)
    exact = torch.log(torch.abs(torch.log(safe) - torch.log1p(-safe))) - torch.log(
        torch.abs(1 - 2 * safe))
    taylor = math.log(2.0) + (4.0 / 3.0 + 104.0 / 45.0 * d) * d
    return torch.where(near, taylor, exact)
