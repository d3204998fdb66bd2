"""The divergence at a fitted Gaussian, by the most exact route available.

Closed form for a Gaussian target (``kl_divergence``, ``alpha_divergence``);
trapezoidal quadrature (``grid_divergence``) after a quadrature or moments fit in
1-D/2-D; otherwise Monte Carlo on fresh draws, with its standard error
(``monte_carlo_kl`` from q or p, ``alpha_divergence`` from q, or self-normalised
importance sampling from the proposal).
"""

from __future__ import annotations

import torch

from ..divergences import alpha_divergence, gaussian_params, grid_divergence, kl_divergence, monte_carlo_kl
from . import objectives as obj

__all__ = ["evaluate_fit"]


def evaluate_fit(target, q_dist, kind, alpha, method, grid_spec, proposal, n, generator):
    """(value, stderr, value_method) of the divergence at the fitted q."""
    p = target.dist
    gaussian_target = gaussian_params(p) is not None
    if n == 0 and not (gaussian_target or method in ("quadrature", "moments")):
        return None, None, "none"
    try:
        if gaussian_target:
            if kind == "reverse":
                return float(kl_divergence(q_dist, p)), None, "closed_form"
            if kind == "forward":
                return float(kl_divergence(p, q_dist)), None, "closed_form"
            return float(alpha_divergence(p, q_dist, alpha)), None, "closed_form"
    except (NotImplementedError, ValueError):
        pass  # e.g. D_alpha infinite in closed form: fall through to the numerical routes
    if grid_spec is not None and method in ("quadrature", "moments"):
        bounds, num_points = grid_spec
        a, b = (q_dist, p) if kind == "reverse" else (p, q_dist)
        div = "kl" if kind != "alpha" else "alpha"
        value = grid_divergence(a, b, div, alpha=alpha, bounds=bounds, num_points=num_points)
        return float(value), None, "quadrature"
    if kind == "reverse":
        est = monte_carlo_kl(q_dist, p, n, generator=generator)
        return float(est.value), float(est.stderr), "monte_carlo"
    if kind == "alpha":
        est = alpha_divergence(p, q_dist, alpha, method="monte_carlo", num_samples=n,
                               generator=generator, sample_from="q")
        return float(est.value), float(est.stderr), "monte_carlo"
    if target.can_sample:
        est = monte_carlo_kl(p, q_dist, n, generator=generator)
        return float(est.value), float(est.stderr), "monte_carlo"
    if proposal is not None:
        x = proposal.sample(n, generator)
        log_r = proposal.log_prob(x, during="SNIS evaluation", allow_neg_inf=False)
        log_p = target.log_prob(x, during="SNIS evaluation", allow_neg_inf=True)
        w, _ = obj.snis_weights(log_p, log_r)
        arg = x[..., 0] if target.scalar_event else x
        log_q = q_dist.log_prob(arg)
        f = torch.where(w > 0, log_p - log_q, torch.zeros_like(log_q))
        value = (w * f).sum()
        # delta-method standard error of a self-normalised estimate (Owen 2013, ch. 9)
        stderr = (w.pow(2) * (f - value).pow(2)).sum().sqrt()
        return float(value), float(stderr), "snis"
    return None, None, "none"
