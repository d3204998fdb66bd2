r"""Entropies and cross-entropies, the pieces an ELBO is assembled from.

.. math::

    \mathrm{ELBO}(q) &= E_q[\log p(x \mid z)] + E_q[\log p(z)] + H[q] \\
        &= E_q[\log p(x \mid z)] - \mathrm{KL}(q \,\|\, p(z)),

and :math:`E_q[\log p(z)] = -H[q, p]` with the cross-entropy
:math:`H[q, p] = H[q] + \mathrm{KL}(q \,\|\, p)` (Bishop PRML eq. 1.121, Cover & Thomas
eq. 2.26 for the decomposition). Closed forms used here (all in nats):

- Gaussian :math:`\mathcal N(m, S)` in D dimensions (PRML eq. B.41):
  :math:`H = \frac D2 (1 + \log 2\pi) + \frac12 \log\det S`.
- Gaussian cross-entropy:

  .. math::

      H[\mathcal N(m_q, S_q), \mathcal N(m_p, S_p)] = \frac12 \big[D \log 2\pi + \log\det S_p
          + \operatorname{tr}(S_p^{-1} S_q) + (m_q - m_p)^\top S_p^{-1} (m_q - m_p)\big].

- Dirichlet, Wishart, Normal-Wishart: torch's and :mod:`vitoolkit.distributions`'
  ``entropy`` (PRML eq. B.22, B.82).
"""

from __future__ import annotations

import torch

from ._checks import check_distribution, check_pair
from .closed_form import kl_divergence

__all__ = ["entropy", "cross_entropy"]


def entropy(q) -> torch.Tensor:
    r"""The entropy of q in nats, in closed form (shape ``q.batch_shape``).

    .. math::

        H[q] = -E_q[\log q(z)]
    """
    check_distribution(q, "q")
    try:
        return q.entropy()
    except NotImplementedError:
        raise NotImplementedError(
            f"{type(q).__name__} has no closed-form entropy; estimate -q.log_prob(z) "
            "over samples z ~ q instead"
        ) from None


def cross_entropy(q, p) -> torch.Tensor:
    r"""The cross-entropy of p under q in nats, in closed form.

    .. math::

        H[q, p] = -E_q[\log p(z)] = H[q] + \mathrm{KL}(q \,\|\, p)

    ``-cross_entropy(q, prior)`` is the :math:`E_q[\log p(z)]` term of an ELBO.
    """
    check_pair(q, p, names=("q", "p"))
    return entropy(q) + kl_divergence(q, p)
