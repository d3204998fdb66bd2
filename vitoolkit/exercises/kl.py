"""Exercise ``gaussian_kl`` (lesson 01): the closed-form KL between diagonal Gaussians.

Graded against :func:`vitoolkit.divergences.kl_divergence` on
``Independent(Normal, 1)`` pairs, the toolkit's own closed form.
"""

from __future__ import annotations

import torch
from torch.distributions import Independent, Normal

from ..divergences import kl_divergence
from .grading import Grader
from .registry import register

__all__ = ["gaussian_kl"]


def gaussian_kl(mu_q, sigma_q, mu_p, sigma_p):
    r"""KL(q || p) for q = N(mu_q, diag sigma_q^2) and p = N(mu_p, diag sigma_p^2).

    Both Gaussians factorise over the last dimension, so the KL is a sum of
    one-dimensional KLs (the Gaussian closed form; Kingma & Welling 2013,
    Appendix B, is the case p = N(0, I))::

        KL = sum_d [ log(sigma_p,d / sigma_q,d)
                     + (sigma_q,d^2 + (mu_q,d - mu_p,d)^2) / (2 sigma_p,d^2) - 1/2 ]

    Parameters
    ----------
    mu_q, sigma_q : Tensor of shape (..., D)
        Mean and standard deviation (> 0) of q.
    mu_p, sigma_p : Tensor of shape (..., D)
        Mean and standard deviation (> 0) of p. The leading dimensions of the
        four arguments broadcast against each other: q of shape (4, 1, D) and p
        of shape (3, D) give a KL of shape (4, 3).

    Returns
    -------
    Tensor of shape broadcast(leading shapes)
        The KL in nats, summed over the last dimension (>= 0, and 0 when q = p).
        It must stay finite for means and standard deviations as large as 1e200
        or as small as 1e-200 (float64).
    """
    ratio = sigma_q / sigma_p
    # Form the ratios before squaring: sigma^2 overflows float64 for sigma ~ 1e200.
    shift = (mu_q - mu_p) / sigma_p
    return (0.5 * (ratio**2 + shift**2 - 1) - torch.log(ratio)).sum(-1)


def _reference(mu_q, sigma_q, mu_p, sigma_p) -> torch.Tensor:
    q = Independent(Normal(mu_q, sigma_q, validate_args=False), 1, validate_args=False)
    p = Independent(Normal(mu_p, sigma_p, validate_args=False), 1, validate_args=False)
    return kl_divergence(q, p)


def _mistakes(mu_q, sigma_q, mu_p, sigma_p):
    """What each known mistake returns on these inputs (terms formed as ratios, like the reference)."""
    r = sigma_q / sigma_p
    t = (mu_q - mu_p) / sigma_p
    log_r = torch.log(r)

    def total(per_dim):
        return lambda: per_dim().sum(-1)

    d = mu_q.shape[-1]
    return [
        ("it is KL(p || q): the roles of q and p are swapped (the expectation is under q)",
         lambda: _reference(mu_p, sigma_p, mu_q, sigma_q)),
        ("twice the expected KL: the factor 1/2 is missing", total(lambda: (r**2 + t**2 - 1) - 2 * log_r)),
        ("the fraction (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 is missing its factor 1/2",
         total(lambda: r**2 + t**2 - 0.5 - log_r)),
        ("the variance ratio sigma_q^2 / sigma_p^2 is missing its factor 1/2",
         total(lambda: r**2 + 0.5 * t**2 - 0.5 - log_r)),
        ("the term (mu_q - mu_p)^2 / sigma_p^2 is missing its factor 1/2",
         total(lambda: 0.5 * r**2 + t**2 - 0.5 - log_r)),
        ("the constant is -1/2 per dimension, not -1 (the 1/2 multiplies the -1 too)",
         total(lambda: 0.5 * (r**2 + t**2) - 1 - log_r)),
        ("the constant -1/2 per dimension is missing (KL(q || q) must be 0)",
         lambda: _reference(mu_q, sigma_q, mu_p, sigma_p) + d / 2),
        ("the standard deviations were used as variances (sigma is a standard deviation)",
         total(lambda: 0.5 * (r + (mu_q - mu_p) ** 2 / sigma_p - 1) - 0.5 * log_r)),
        ("the log term is halved: log(sigma_p / sigma_q) = (1/2) log(sigma_p^2 / sigma_q^2)",
         total(lambda: 0.5 * (r**2 + t**2 - 1) - 0.5 * log_r)),
        ("the log term is doubled: log(sigma_p / sigma_q) = (1/2) log(sigma_p^2 / sigma_q^2)",
         total(lambda: 0.5 * (r**2 + t**2 - 1) - 2 * log_r)),
        ("the log term has the wrong sign (log(sigma_p / sigma_q), not log(sigma_q / sigma_p))",
         total(lambda: 0.5 * (r**2 + t**2 - 1) + log_r)),
        ("the squared mean difference must be divided by the variance of p, not of q",
         total(lambda: 0.5 * (r**2 + ((mu_q - mu_p) / sigma_q) ** 2 - 1) - log_r)),
        ("averaged over the last dimension instead of summed",
         lambda: _reference(mu_q, sigma_q, mu_p, sigma_p) / d),
    ]


def _terms(mu_q, sigma_q, mu_p, sigma_p) -> torch.Tensor:
    """The magnitude of the terms the KL adds up (rounding is relative to them, not to the KL)."""
    r = sigma_q / sigma_p
    t = (mu_q - mu_p) / sigma_p
    return (0.5 * (r**2 + t**2 + 1) + torch.log(r).abs()).sum(-1)


_OVERFLOW = ("the result overflowed: squaring a number near 1e200 (or dividing by one near 1e-200) "
             "leaves float64's range; form the ratios before squaring")
_RTOL, _ATOL = 1e-6, 1e-10


def _shape_hints(batch: tuple[int, ...], d: int) -> dict:
    hints = {(*batch, d): "the KL is not summed over the last dimension (D)",
             (): "everything was summed, including the leading (batch) dimensions; sum the last only"}
    if batch:
        hints.setdefault(tuple(batch[1:]) + (d,), "summed over the first axis instead of the last")
        hints.setdefault(tuple(batch[1:]), "summed over the first axis as well as the last")
    return hints


def _value_case(g: Grader, fn, name, mu_q, sigma_q, mu_p, sigma_p, *, hint=""):
    with g.case(name) as case:
        want = _reference(mu_q, sigma_q, mu_p, sigma_p)
        out = case.call(fn, mu_q, sigma_q, mu_p, sigma_p)
        batch = tuple(want.shape)
        got = case.tensor(out, "the KL", batch, _shape_hints(batch, mu_q.shape[-1]))
        case.compare(got, want, "the KL", rtol=_RTOL, atol=_ATOL, scale=_terms(mu_q, sigma_q, mu_p, sigma_p),
                     mistakes=_mistakes(mu_q, sigma_q, mu_p, sigma_p), nonfinite_hint=hint)


@register(reference=gaussian_kl, lesson="01_elbo_anatomy",
          title="KL(q || p) between diagonal Gaussians, summed over the last dimension")
def grade_gaussian_kl(fn, g: Grader) -> None:
    shape = (5, 3)
    _value_case(g, fn, "random q and p of shape (5, 3)", 2 * g.randn(*shape), g.uniform(0.3, 3, *shape),
                2 * g.randn(*shape), g.uniform(0.3, 3, *shape))

    with g.case("KL(q || q) = 0 and KL >= 0 (200 random pairs, D = 4)") as case:
        mu, sigma = g.randn(200, 4), g.uniform(0.2, 5, 200, 4)
        same = case.tensor(case.call(fn, mu, sigma, mu, sigma), "KL(q || q)", (200,),
                           _shape_hints((200,), 4))
        case.compare(same, torch.zeros(200, dtype=torch.float64), "KL(q || q) (which must be 0)", rtol=_RTOL,
                     atol=_ATOL, scale=_terms(mu, sigma, mu, sigma), mistakes=_mistakes(mu, sigma, mu, sigma))
        worst = float(same.abs().max())
        mu_p, sigma_p = 3 * g.randn(200, 4), g.uniform(0.2, 5, 200, 4)
        kl = case.tensor(case.call(fn, mu, sigma, mu_p, sigma_p), "the KL", (200,),
                         _shape_hints((200,), 4))
        case.finite(kl, "the KL")
        slack = _ATOL + case.slack * _terms(mu, sigma, mu_p, sigma_p)
        case.require(bool((kl >= -slack).all()),
                     f"the KL is negative for {int((kl < -slack).sum())} of 200 pairs "
                     f"(min {float(kl.min()):.3g}); a KL divergence is never negative")
        case.note = f"|KL(q || q)| <= {worst:.1e}, min KL over 200 pairs {float(kl.min()):.3g} >= 0"

    _value_case(g, fn, "broadcasting: q of shape (4, 1, 2) against p of shape (3, 2) -> (4, 3)",
                g.randn(4, 1, 2), g.uniform(0.3, 3, 4, 1, 2), g.randn(3, 2), g.uniform(0.3, 3, 3, 2))
    _value_case(g, fn, "batch shape (2, 3, 4) with one dimension (D = 1)",
                g.randn(2, 3, 4, 1), g.uniform(0.3, 3, 2, 3, 4, 1), g.randn(2, 3, 4, 1),
                g.uniform(0.3, 3, 2, 3, 4, 1))
    _value_case(g, fn, "large magnitudes: means and sigmas near 1e200 (float64)",
                1e200 * g.randn(6, 3), 1e200 * g.uniform(0.5, 2, 6, 3), 1e200 * g.randn(6, 3),
                1e200 * g.uniform(0.5, 2, 6, 3), hint=_OVERFLOW)
    _value_case(g, fn, "tiny magnitudes: means and sigmas near 1e-200 (float64)",
                1e-200 * g.randn(6, 3), 1e-200 * g.uniform(0.5, 2, 6, 3), 1e-200 * g.randn(6, 3),
                1e-200 * g.uniform(0.5, 2, 6, 3), hint=_OVERFLOW)
