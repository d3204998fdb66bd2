r"""Observation models p(x | z): what the decoder's outputs mean.

A likelihood turns the decoder's raw outputs (``(..., P * data_dim)``, P
parameters per pixel) into a ``torch.distributions`` object with event shape
``(data_dim,)``, so ``log_prob(x)`` sums over pixels and keeps the batch dims.
Each choice is a modelling assumption, and the familiar losses are their
negative log-likelihoods:

- ``"bernoulli"``: x_d in {0, 1}, p = sigmoid(logit); -log p is the binary
  cross-entropy (BCE). Kingma & Welling (2013), Appendix C.1. On *continuous*
  pixels in [0, 1] BCE is still computable, but it is not a normalised density
  on [0, 1] (it integrates to less than 1), so the "log-likelihood" it reports
  is not one; Loaiza-Ganem & Cunningham (NeurIPS 2019), section 3.
- ``"continuous_bernoulli"``: the normalised fix, p(x) = C(lambda)
  lambda^x (1 - lambda)^(1 - x) on [0, 1], Loaiza-Ganem & Cunningham (2019),
  eq. (3); ``torch.distributions.ContinuousBernoulli``.
- ``"gaussian"``: N(x; mu, sigma^2) with a fixed sigma (``observation_scale``);
  -log p = ||x - mu||^2 / (2 sigma^2) + const, i.e. MSE scaled by 1/(2 sigma^2).
  Kingma & Welling (2013), Appendix C.2.
- ``"gaussian_learned"``: the decoder also outputs a per-pixel scale,
  sigma = softplus(raw) + ``min_scale`` (the floor keeps the density bounded
  on pixels that are always exactly 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal

__all__ = ["LIKELIHOODS", "Likelihood", "make_likelihood"]

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
        if name not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {name!r}")
        for value, label in ((observation_scale, "observation_scale"), (min_scale, "min_scale")):
            if not (isinstance(value, (int, float)) and value > 0 and value < float("inf")):
                raise ValueError(f"{label} must be a positive finite number, got {value!r}")
        self.name = name
        self.observation_scale = float(observation_scale)
        self.min_scale = float(min_scale)
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
