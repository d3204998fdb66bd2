r"""Entropies and cross-entropies, the pieces an ELBO is assembled from.

ELBO(q) = E_q[log p(x | z)] + E_q[log p(z)] + H[q]
        = E_q[log p(x | z)] - KL(q || p(z)),

and E_q[log p(z)] = -H[q, p] with the cross-entropy H[q, p] = H[q] + KL(q || p)
(Bishop PRML eq. 1.121, Cover & Thomas eq. 2.26 for the decomposition).
Closed forms used here (all in nats):

- Gaussian N(m, S) in D dimensions: H = D/2 (1 + log 2 pi) + 1/2 log det S  (PRML eq. B.41).
- Gaussian cross-entropy H[N(m_q, S_q), N(m_p, S_p)] =
  1/2 [D log 2 pi + log det S_p + tr(S_p^{-1} S_q) + (m_q - m_p)^T S_p^{-1} (m_q - m_p)].
- Dirichlet, Wishart, Normal-Wishart: torch's and :mod:`vitoolkit.distributions`'
  ``entropy`` (PRML eq. B.22, B.82).
"""

from __future__ import annotations

import torch

from ._checks import check_distribution, check_pair
from .closed_form import kl_divergence

__all__ = ["entropy", "cross_entropy"]


def entropy(q) -> torch.Tensor:
    """H[q] = -E_q[log q(z)] in nats, in closed form (shape ``q.batch_shape``)."""
    check_distribution(q, "q")
    try:
        return q.entropy()
    except NotImplementedError:
        raise NotImplementedError(
            f"{type(q).__name__} has no closed-form entropy; estimate -q.log_prob(z) "
            "over samples z ~ q instead"
        ) from None


def cross_entropy(q, p) -> torch.Tensor:
    """H[q, p] = -E_q[log p(z)] = H[q] + KL(q || p), in nats, in closed form.

    ``-cross_entropy(q, prior)`` is the E_q[log p(z)] term of an ELBO.
    """
    check_pair(q, p, names=("q", "p"))
    return entropy(q) + kl_divergence(q, p)
