r"""The Gaussian variational family, unconstrained for the optimiser.

:math:`q = \mathcal N(m, L L^\top)`, sampled as :math:`z = m + L \varepsilon`,
:math:`\varepsilon \sim \mathcal N(0, I)`:

- ``family="full"``: L lower triangular with a positive diagonal, stored as its
  strictly-lower part and log of its diagonal (a Cholesky parameterisation).
- ``family="diagonal"`` (mean-field): :math:`L = \mathrm{diag}(\exp(\text{log scale}))`.

Everything is float64. Points are handled as (..., D) internally; a target with
event shape () is the case D = 1 and gets a scalar ``Normal`` back.
"""

from __future__ import annotations

import torch
from torch.distributions import Independent, MultivariateNormal, Normal

from ..divergences import entropy
from ..validation import check_int

__all__ = ["GaussianParams", "FAMILIES", "STANDARD_NORMAL", "base_noise"]

#: The variational families.
FAMILIES = ("full", "diagonal")
#: N(0, 1) in float64: the base density of the reparameterisation x = m + L eps.
STANDARD_NORMAL = Normal(torch.tensor(0.0, dtype=torch.float64),
                         torch.tensor(1.0, dtype=torch.float64), validate_args=False)


class GaussianParams:
    """Trainable (loc, Cholesky factor) of a Gaussian q.

    Parameters
    ----------
    loc : Tensor of shape (D,)
    scale_tril : Tensor of shape (D, D), lower triangular with positive diagonal
    family : {"full", "diagonal"}
    scalar_event : bool
        True when the target's event shape is (): q is returned as a ``Normal``.
    """

    def __init__(self, loc: torch.Tensor, scale_tril: torch.Tensor, family: str,
                 scalar_event: bool = False):
        self.family = family
        self.scalar_event = scalar_event
        self.dim = loc.shape[-1]
        self.loc = loc.detach().clone().to(torch.float64).requires_grad_(True)
        diag = torch.diagonal(scale_tril).detach().to(torch.float64)
        self.log_diag = diag.log().clone().requires_grad_(True)
        if family == "full":
            self.lower = torch.tril(scale_tril.detach().to(torch.float64), -1).clone()
            self.lower.requires_grad_(True)
        else:
            self.lower = None

    def parameters(self) -> list:
        return [p for p in (self.loc, self.log_diag, self.lower) if p is not None]

    def scale_tril(self) -> torch.Tensor:
        """L, shape (D, D)."""
        diag = torch.diag_embed(self.log_diag.exp())
        if self.lower is None:
            return diag
        return torch.tril(self.lower, -1) + diag

    def transform(self, eps: torch.Tensor) -> torch.Tensor:
        r"""Reparameterisation :math:`z = m + L \varepsilon` for base noise of shape (..., D)."""
        if self.lower is None:
            return self.loc + eps * self.log_diag.exp()
        return self.loc + eps @ self.scale_tril().mT

    def torch_distribution(self):
        """q as a torch distribution on (..., D) points that keeps the gradient to the parameters.

        ``Independent(Normal, 1)`` (diagonal) or ``MultivariateNormal`` (full): the
        log-density and entropy come from torch, not from a formula written here.
        """
        scale = self.log_diag.exp()
        if self.lower is None:
            return Independent(Normal(self.loc, scale, validate_args=False), 1,
                               validate_args=False)
        return MultivariateNormal(self.loc, scale_tril=self.scale_tril(), validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""log q(x) for x of shape (..., D) -> (...).

        By the change of variables :math:`x = m + L \varepsilon`,

        .. math::

            \log q(x) = \log \mathcal N(\varepsilon; 0, I) - \log\lvert\det L\rvert, \qquad
            \varepsilon = L^{-1} (x - m),

        with torch's standard normal density. Equal to
        ``torch_distribution().log_prob(x)`` (tested) and cheaper for the optimiser: the
        small D x D factor is inverted once instead of solved against every point, which
        also keeps the backward pass a matrix product.
        """
        if self.lower is None:
            eps = (x - self.loc) * torch.exp(-self.log_diag)
        else:
            eye = torch.eye(self.dim, dtype=torch.float64)
            inv = torch.linalg.solve_triangular(self.scale_tril(), eye, upper=False)
            eps = (x - self.loc) @ inv.mT
        return STANDARD_NORMAL.log_prob(eps).sum(-1) - self.log_diag.sum()

    def entropy(self) -> torch.Tensor:
        r"""The entropy of q by the same change of variables (PRML eq. B.41).

        .. math::

            H[q] = D \, H[\mathcal N(0, 1)] + \log\lvert\det L\rvert

        The standard normal's entropy comes from :func:`vitoolkit.divergences.entropy`; the
        gradient to log L_ii is then exactly 1, as it is in exact arithmetic.
        """
        return self.dim * entropy(STANDARD_NORMAL) + self.log_diag.sum()

    def expected_log_q(self, eps, log_base, log_w) -> torch.Tensor:
        r"""E_q[log q] = -H[q], in closed form for a Gaussian (the base noise is not needed).

        A richer family (:class:`vitoolkit.fitting.flows.FlowParams`) overrides it with
        the weighted sum over the base noise of
        :math:`\log \mathcal N(\varepsilon) - \log\lvert\det \partial z / \partial \varepsilon\rvert`.
        """
        return -self.entropy()

    def is_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.parameters())

    def snapshot(self) -> list:
        return [p.detach().clone() for p in self.parameters()]

    def restore(self, values: list) -> None:
        with torch.no_grad():
            for p, v in zip(self.parameters(), values, strict=True):
                p.copy_(v)

    def distribution(self):
        """The current q as a detached torch distribution.

        ``Normal`` for a scalar event, ``Independent(Normal, 1)`` for a diagonal
        family, ``MultivariateNormal`` for a full one.
        """
        loc = self.loc.detach().clone()
        scale = self.log_diag.detach().exp()
        if self.scalar_event:
            return Normal(loc[0], scale[0])
        if self.lower is None:
            return Independent(Normal(loc, scale), 1)
        return MultivariateNormal(loc, scale_tril=self.scale_tril().detach().clone())


def base_noise(num_samples: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    r"""Fixed standard-normal base noise for reparameterised objectives, shape (N', D).

    N' is ``num_samples`` rounded up to an even number.

    Antithetic pairs (eps, -eps) make the sample mean exactly 0, and a whitening
    by the Cholesky factor of the sample second moment makes the sample
    covariance exactly I (when there are at least as many pairs as dimensions; otherwise the
    second moment is singular and only the antithetic pairing is applied). Expectations of
    polynomials of degree <= 2 under
    z = m + L eps are then exact, so for a Gaussian target the Monte Carlo reverse
    KL objective equals the true one, and for any target the noise left in the
    objective is what the non-quadratic part of log p carries. Keeping the noise
    fixed (common random numbers) makes the objective a smooth deterministic
    function that L-BFGS can minimise (sample-average approximation).
    """
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    half = (num_samples + 1) // 2
    eps = torch.randn(half, dim, generator=generator, dtype=torch.float64)
    eps = torch.cat([eps, -eps])
    # the antithetic pairs have rank min(half, D): whiten only when the moment is invertible
    if half >= dim:
        second = eps.mT @ eps / eps.shape[0]
        chol = torch.linalg.cholesky(second)
        eps = torch.linalg.solve_triangular(chol, eps.mT, upper=False).mT
    return eps
