r"""Closed-form KL divergences: torch's registry, extended with the toolkit's pairs.

Pairs added here (each verified against an independent route in the tests):

- ``Wishart || Wishart`` (torch has none), with V the scale matrix, n the degrees of
  freedom, D the dimension and :math:`\psi_D(a) = \sum_{i=1}^D \psi(a + (1 - i)/2)` the
  multivariate digamma:

  .. math::

      \mathrm{KL} = \frac{n_p - n_q}{2} \psi_D\Big(\frac{n_p}{2}\Big)
          + \frac{n_p}{2} \big[\operatorname{tr}(V_q^{-1} V_p) - D\big]
          + \frac{n_q}{2} (\log\det V_q - \log\det V_p)
          + \log\Gamma_D\Big(\frac{n_q}{2}\Big) - \log\Gamma_D\Big(\frac{n_p}{2}\Big)

- ``NormalWishart || NormalWishart`` (Bishop PRML eq. 10.40, the factor
  :math:`q(\mu_k, \Lambda_k)`), from the chain rule
  :math:`\mathrm{KL}(p(a, b) \,\|\, q(a, b)) = \mathrm{KL}(p(b) \,\|\, q(b))
  + E_{p(b)} \mathrm{KL}(p(a \mid b) \,\|\, q(a \mid b))`:

  .. math::

      \mathrm{KL} = \mathrm{KL}(\mathcal W_p \,\|\, \mathcal W_q)
          + \frac12 \Big[D \Big(\frac{\beta_q}{\beta_p} - 1 - \log\frac{\beta_q}{\beta_p}\Big)
          + \beta_q \nu_p (m_p - m_q)^\top W_p (m_p - m_q)\Big]

- ``Normal || StandardNormal`` (the VAE's KL term, Kingma & Welling 2013,
  Appendix B), the general Normal-Normal form with :math:`q = \mathcal N(0, 1)`
  substituted, per coordinate:

  .. math::

      \mathrm{KL}\big(\mathcal N(m, s^2) \,\|\, \mathcal N(0, 1)\big) = \frac{m^2 + s^2 - 1}{2} - \log s

- ``MultivariateNormal || Independent(Normal, 1)`` and the reverse, so full and
  diagonal (mean-field) Gaussians can be compared directly.
"""

from __future__ import annotations

import torch
from torch.distributions import (
    Independent,
    MultivariateNormal,
    Normal,
    Wishart,
    register_kl,
)
from torch.distributions import kl_divergence as _torch_kl

from .. import expectations as _ex
from ..distributions import NormalWishart, StandardNormal
from ._checks import check_pair

__all__ = ["kl_divergence"]


def kl_divergence(p, q) -> torch.Tensor:
    r"""The Kullback-Leibler divergence KL(p || q) in nats, in closed form.

    .. math::

        \mathrm{KL}(p \,\|\, q) = E_{p}\big[\log p(x) - \log q(x)\big]

    Looks the pair up in ``torch.distributions.kl``'s registry, which this
    module extends (Wishart, Normal-Wishart, full vs diagonal Gaussians).

    Parameters
    ----------
    p, q : torch.distributions.Distribution
        Same event shape; batch shapes that broadcast.

    Returns
    -------
    Tensor of shape ``broadcast(p.batch_shape, q.batch_shape)``.

    Raises
    ------
    NotImplementedError
        When no closed form is registered for the pair; the message names both
        types and points to :func:`vitoolkit.divergences.monte_carlo_kl`.
    """
    check_pair(p, q)
    try:
        return _torch_kl(p, q)
    except NotImplementedError:
        raise NotImplementedError(
            f"no closed-form KL is registered for p={type(p).__name__}, q={type(q).__name__}; "
            "use vitoolkit.divergences.monte_carlo_kl(p, q, num_samples) for a Monte Carlo "
            "estimate with its standard error (or grid_divergence for 1-D/2-D densities)"
        ) from None


@register_kl(Wishart, Wishart)
def _kl_wishart_wishart(p: Wishart, q: Wishart) -> torch.Tensor:
    # The formula lives once in vitoolkit.expectations.kl_wishart; here only the scalars
    # it takes, from the Cholesky factors: tr(V_q^-1 V_p) = ||L_q^-1 L_p||_F^2.
    d = p.event_shape[-1]
    lp, lq = torch.broadcast_tensors(p.scale_tril, q.scale_tril)
    trace = torch.linalg.solve_triangular(lq, lp, upper=False).pow(2).sum((-2, -1))
    return _ex.kl_wishart(p.df, _ex.log_det_tril(lp), q.df, _ex.log_det_tril(lq), trace, d)


@register_kl(NormalWishart, NormalWishart)
def _kl_normal_wishart(p: NormalWishart, q: NormalWishart) -> torch.Tensor:
    # vitoolkit.expectations.kl_normal_wishart, with (m_p - m_q)^T W_p (m_p - m_q) as the
    # squared norm of L_p^T (m_p - m_q).
    d = p.event_shape[0]
    lp, lq = torch.broadcast_tensors(p.scale_tril, q.scale_tril)
    trace = torch.linalg.solve_triangular(lq, lp, upper=False).pow(2).sum((-2, -1))
    proj = ((p.loc - q.loc).unsqueeze(-2) @ p.scale_tril).squeeze(-2)
    return _ex.kl_normal_wishart(p.mean_precision, p.df, _ex.log_det_tril(lp), q.mean_precision,
                                 q.df, _ex.log_det_tril(lq), trace, proj.pow(2).sum(-1), d)


@register_kl(Normal, StandardNormal)
def _kl_normal_standard_normal(p: Normal, q: StandardNormal) -> torch.Tensor:
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1)/2 - log s per coordinate (Kingma &
    # Welling 2013, App. B). Products rather than pow: same values, cheaper backward.
    # A VAE step calls this once per update, hence the fast paths below.
    loc, scale = p.loc, p.scale
    kl = 0.5 * (loc * loc + scale * scale - 1) - scale.log()
    qloc = q.loc
    if qloc.dtype != kl.dtype:
        kl = kl.to(torch.promote_types(kl.dtype, qloc.dtype))
    ps, qs = kl.shape, qloc.shape
    if len(qs) <= len(ps) and ps[len(ps) - len(qs):] == qs:
        return kl  # q's batch shape is a suffix of p's: already the broadcast shape
    return kl.expand(torch.broadcast_shapes(ps, qs))


def _as_mvn(d: Independent) -> MultivariateNormal:
    return MultivariateNormal(d.base_dist.loc, scale_tril=torch.diag_embed(d.base_dist.scale),
                              validate_args=False)


def _is_diag_normal(d) -> bool:
    return (isinstance(d, Independent) and isinstance(d.base_dist, Normal)
            and d.reinterpreted_batch_ndims == 1)


@register_kl(MultivariateNormal, Independent)
def _kl_mvn_diag(p: MultivariateNormal, q: Independent) -> torch.Tensor:
    if not _is_diag_normal(q):
        raise NotImplementedError
    return _torch_kl(p, _as_mvn(q))


@register_kl(Independent, MultivariateNormal)
def _kl_diag_mvn(p: Independent, q: MultivariateNormal) -> torch.Tensor:
    if not _is_diag_normal(p):
        raise NotImplementedError
    return _torch_kl(_as_mvn(p), q)
