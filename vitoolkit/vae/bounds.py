r"""How far a VAE's bound and posterior fall short of log p(x).

- :func:`amortisation_gap`: Cremer, Li & Duvenaud (ICML 2018), "Inference suboptimality in
  variational autoencoders", section 3: the inference gap log p(x) - L[q] splits into the
  approximation gap log p(x) - L[q*] and the amortisation gap L[q*] - L[q].
- :func:`iwae_curve`: the IWAE bounds L_k for several k and the importance-sampled log p(x)
  from one pool of draws, with Monte Carlo standard errors and the Pareto k-hat of the
  weights (Burda, Grosse & Salakhutdinov 2015, eq. (8) and Theorem 1; Vehtari et al. 2024).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.distributions import Normal

from ..distributions import reparameterise
from ..divergences import ImportanceEstimate, kl_divergence
from ..divergences.estimate import warn_if_unreliable
from ..divergences.importance import importance_estimate_unchecked, log_mean_exp_unchecked
from ..exceptions import DivergedError
from ..validation import as_float_tensor, check_int, check_memory, check_real
from ._model_inputs import _check_inputs, _diag_normal, _eval_mode
from .importance import check_num_samples, log_importance_weights, posterior_log_weights
from .latent import _call, _prepare

__all__ = ["AmortisationGap", "BoundCurve", "amortisation_gap", "iwae_curve"]


class AmortisationGap(NamedTuple):
    """Per-example bounds and gaps of :func:`amortisation_gap`, each of shape (n,), in nats."""

    log_likelihood: torch.Tensor  # importance-sampled log p(x) with q* as proposal
    elbo_amortised: torch.Tensor  # L[q], q = the encoder's q(z|x)
    elbo_optimised: torch.Tensor  # L[q*], q* optimised for this x alone
    inference_gap: torch.Tensor  # log p(x) - L[q]
    approximation_gap: torch.Tensor  # log p(x) - L[q*]
    amortisation_gap: torch.Tensor  # L[q*] - L[q]
    elbo_amortised_stderr: torch.Tensor  # Monte Carlo standard error of L[q]
    elbo_optimised_stderr: torch.Tensor  # Monte Carlo standard error of L[q*]
    loc: torch.Tensor  # (n, latent_dim) mean of q*
    scale: torch.Tensor  # (n, latent_dim) standard deviation of q*
    log_likelihood_khat: torch.Tensor  # Pareto k-hat of the q* weights (NaN if log p(x) given)


class BoundCurve(NamedTuple):
    """IWAE bounds for several k and log p(x) from one pool of draws (see :func:`iwae_curve`)."""

    num_samples: tuple  # the k's, ascending
    bounds: torch.Tensor  # (m, n) per-example estimates of L_k, nats
    stderr: torch.Tensor  # (m, n) their Monte Carlo standard errors
    mean: torch.Tensor  # (m,) mean over the examples of bounds
    mean_stderr: torch.Tensor  # (m,) Monte Carlo standard error of mean
    log_likelihood: ImportanceEstimate  # L_S from all S pooled draws: value, stderr, khat (n,)


# -- the amortisation gap ---------------------------------------------------------


#: Log weights (pool x examples) one pass of :func:`iwae_curve` holds at most.
_MAX_POOL_ELEMENTS = 2**24


def _model_dtype(model) -> torch.dtype:
    for p in model.parameters():
        return p.dtype
    return torch.get_default_dtype()


def _randn(shape, like: torch.Tensor, generator):
    # Draw on the CPU from the local generator, so results do not depend on the device.
    eps = torch.randn(shape, generator=generator, dtype=like.dtype)
    return eps.to(like.device)


def amortisation_gap(model, x, y=None, *, steps: int = 300, num_samples: int = 8,
                     lr: float = 0.02, eval_samples: int = 1000, log_likelihood=None,
                     generator: torch.Generator | None = None) -> AmortisationGap:
    r"""Split each example's inference gap into approximation and amortisation gaps.

    Cremer, Li & Duvenaud (2018), section 3 and eq. (3)-(4):

        log p(x) - L[q]  =  (log p(x) - L[q*])  +  (L[q*] - L[q])
        inference gap       approximation gap      amortisation gap

    where q = q(z|x) is the encoder's output and q* = argmax over the same
    family (diagonal Gaussians) of L[q'] for this x alone. As in their section
    5.1, q* is found by gradient ascent on the ELBO of each data point
    separately, starting from the encoder's output (Adam, ``num_samples``
    reparameterised draws and the analytic KL per step, learning rate decayed
    linearly to 5 %). The decoder is held fixed.

    All three quantities are then estimated from the same ``eval_samples``
    standard-normal draws eps_k (common random numbers), pushed through
    q (z = mu + sigma eps) and through q*:
    L[q] = mean_k w_k(q), L[q*] = mean_k w_k(q*), and
    log p(x) = log mean_k exp(w_k(q*)), the importance-sampled estimate with q*
    as proposal (Burda et al. 2015, eq. (8) with k = eval_samples), where
    w = log p(x, z) - log q(z). Because of the common draws, Jensen's inequality
    makes the approximation gap >= 0 exactly, and q* is replaced by q for any
    example where the optimisation did not raise the estimated ELBO (q is in the
    family), so the amortisation gap is >= 0 too. The identity above holds by
    construction.

    Importance sampling estimates log p(x) from below (Burda et al. 2015,
    Theorem 1); when q* is much narrower than the true posterior in some
    direction (a strongly correlated posterior under a diagonal family) the
    weights are heavy-tailed and the estimate, hence the approximation gap, can
    fall noticeably short. Pass ``log_likelihood`` from a better estimator (a
    larger k, annealed importance sampling as in Cremer et al., or a closed
    form) to use it instead; the gaps are then computed from it as given.

    Parameters
    ----------
    model : VAE-like module
    x : Tensor of shape (n, data_dim)
    y : Tensor of shape (n, conditional_dim), optional
    steps : int >= 0
        Optimisation steps for q* (0 gives q* = q).
    num_samples : int >= 1
        Monte Carlo draws per step of the ELBO gradient.
    lr : float > 0
        Initial Adam learning rate on the local means and log standard deviations.
    eval_samples : int >= 2
        Draws for the final estimates.
    log_likelihood : Tensor of shape (n,), optional
        An external estimate of log p(x) to use instead of importance sampling.
    generator : torch.Generator, optional
        Local source of randomness; the global random state is used when None.

    Returns
    -------
    AmortisationGap

    Warns
    -----
    UnreliableEstimateWarning
        When some example's k-hat of the q* weights exceeds 0.7.
    """
    steps = check_int(steps, "steps", minimum=0)
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    eval_samples = check_int(eval_samples, "eval_samples", minimum=2)
    x, y = _check_inputs(model, x, y, needs=("encode", "decode", "prior"))
    # Adam multiplies the model-dtype parameters by lr: it must be representable there.
    lr = check_real(lr, "lr", minimum=0.0, strict_minimum=True,
                    maximum=float(torch.finfo(_model_dtype(model)).max))
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    # The evaluation keeps eval_samples draws (n x latent_dim each) and two sets of weights.
    itemsize = torch.finfo(_model_dtype(model)).bits // 8
    latent = getattr(model, "latent_dim", 1)
    check_memory(eval_samples * x.shape[0] * (latent + 4) * itemsize, "eval_samples",
                 eval_samples, f"the common draws and log weights of {x.shape[0]} examples")
    check_memory(num_samples * x.shape[0] * (latent + 4) * itemsize, "num_samples",
                 num_samples, f"one optimisation step's draws for {x.shape[0]} examples")
    if log_likelihood is not None:
        log_likelihood = as_float_tensor(log_likelihood, "log_likelihood", dtype=torch.float64)
        if log_likelihood.shape != (x.shape[0],):
            raise ValueError(
                f"log_likelihood must have shape ({x.shape[0]},), got {tuple(log_likelihood.shape)}"
            )
        # It is compared in the model's dtype: refuse values that would overflow there.
        largest = float(torch.finfo(_model_dtype(model)).max)
        if log_likelihood.numel() and float(log_likelihood.abs().max()) > largest:
            raise ValueError(
                f"log_likelihood must be representable in the model's dtype "
                f"{_model_dtype(model)} (|value| <= {largest:.3g}), got entries up to "
                f"{float(log_likelihood.abs().max()):.3g}"
            )
    with _eval_mode(model):
        x, y = _prepare(model, x, y)
        with torch.no_grad():
            q = _diag_normal(_call(model.encode, x, y))
            loc0, scale0 = q.loc.detach(), q.scale.detach()
            prior = _diag_normal(model.prior)

        loc = loc0.clone().requires_grad_(True)
        log_scale = scale0.log().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([loc, log_scale], lr=lr)
        for step in range(steps):
            for group in optimiser.param_groups:
                group["lr"] = lr * (1.0 - 0.95 * step / max(1, steps))
            scale = log_scale.exp()
            eps = _randn((num_samples, *loc.shape), loc, generator)
            z = reparameterise(loc, scale, eps)  # Kingma & Welling sec. 2.4
            recon = _call(model.decode, z, y).log_prob(x).mean(0)
            kl = kl_divergence(Normal(loc, scale), prior).sum(-1)
            # Each example's ELBO depends on its own (loc, scale) only, so the sum
            # optimises all of them at once; autograd.grad leaves model grads alone.
            loss = -(recon - kl).sum()
            g_loc, g_scale = torch.autograd.grad(loss, [loc, log_scale])
            loc.grad, log_scale.grad = g_loc, g_scale
            optimiser.step()
            with torch.no_grad():
                new_scale = log_scale.exp()
                ok = bool(torch.isfinite(loc).all()) and bool(torch.isfinite(new_scale).all()) \
                    and bool((new_scale > 0).all())
            if not ok:
                raise DivergedError(f"the optimisation of q* diverged at step {step + 1} with lr={lr!r} "
                                 "(means or scales left the floating-point range); use a smaller lr")

        with torch.no_grad():
            loc_opt, scale_opt = loc.detach(), log_scale.detach().exp()
            eps = _randn((eval_samples, *loc0.shape), loc0, generator)
            w_q = log_importance_weights(model, x, loc0, scale0, eps=eps, y=y)
            w_opt = log_importance_weights(model, x, loc_opt, scale_opt, eps=eps, y=y)
            worse = w_opt.mean(0) < w_q.mean(0)
            w_opt = torch.where(worse, w_q, w_opt)
            loc_opt = torch.where(worse[:, None], loc0, loc_opt)
            scale_opt = torch.where(worse[:, None], scale0, scale_opt)

            elbo_q, elbo_opt = w_q.mean(0), w_opt.mean(0)
            if log_likelihood is None:
                est = importance_estimate_unchecked(w_opt)
                warn_if_unreliable(est, "amortisation_gap: log p(x) with q* as proposal "
                                   f"(eval_samples={eval_samples})", stacklevel=3, importance=True)
                log_px, khat = est.value, est.khat
            else:
                log_px = log_likelihood.to(elbo_q)
                khat = torch.full_like(elbo_q, math.nan)
            se_q = w_q.std(0) / math.sqrt(eval_samples)
            se_opt = w_opt.std(0) / math.sqrt(eval_samples)
    for name, t in (("L[q]", elbo_q), ("L[q*]", elbo_opt), ("log p(x)", log_px)):
        if not bool(torch.isfinite(t).all()):
            raise FloatingPointError(f"{name} is not finite for some examples; check the model")
    return AmortisationGap(
        log_likelihood=log_px,
        elbo_amortised=elbo_q,
        elbo_optimised=elbo_opt,
        inference_gap=log_px - elbo_q,
        approximation_gap=log_px - elbo_opt,
        amortisation_gap=elbo_opt - elbo_q,
        elbo_amortised_stderr=se_q,
        elbo_optimised_stderr=se_opt,
        loc=loc_opt,
        scale=scale_opt,
        log_likelihood_khat=khat,
    )


# -- bounds against the number of importance samples ------------------------------


def iwae_curve(model, x, num_samples, *, pool: int, y=None, batch_size: int = 512,
               generator: torch.Generator | None = None) -> BoundCurve:
    r"""IWAE bounds L_k for several k, and log p(x), from one pool of S draws per example.

    For each example, S = ``pool`` draws z_s ~ q(z|x) give the log weights
    log w_s = log p(x, z_s) - log q(z_s|x). For each k (a divisor of S) the draws
    are split into G = S / k disjoint groups; each group's
    log (1/k) sum_{s in group} w_s is an unbiased estimate of
    L_k = E[log 1/k sum_j w_j] (Burda et al. 2015, eq. (8)), their mean is the
    estimate and their spread / sqrt(G) its standard error (the delta-method
    standard error when G = 1). log p(x) is estimated by L_S from all S draws,
    with its delta-method standard error and the Pareto k-hat of the weights
    (Vehtari et al. 2024; above 0.7 it cannot be trusted).

    Because every k uses the same draws, Jensen's inequality (the concavity of
    log) orders the estimates for every example whenever k divides k':
    L_k <= L_k' <= L_S, the sample version of Burda et al.'s Theorem 1. The
    standard errors say how far each estimate may lie from its expectation.

    Parameters
    ----------
    model : VAE-like module
    x : Tensor of shape (n, data_dim)
    num_samples : sequence of int
        The k's, each a divisor of ``pool``.
    pool : int >= 1
        S, the draws per example.
    y : Tensor of shape (n, conditional_dim), optional
    batch_size : int >= 1
        Examples per pass.
    generator : torch.Generator, optional

    Returns
    -------
    BoundCurve

    Warns
    -----
    UnreliableEstimateWarning
        When some example's k-hat of its S weights exceeds 0.7.
    """
    pool = check_num_samples(pool, "pool")
    if isinstance(num_samples, (str, bytes)) or not hasattr(num_samples, "__iter__"):
        raise TypeError(f"num_samples must be a sequence of integers k, got {num_samples!r}")
    ks = sorted({check_num_samples(k, "num_samples") for k in num_samples})
    if not ks:
        raise ValueError("num_samples must name at least one k")
    bad = [k for k in ks if pool % k]
    if bad:
        raise ValueError(f"every k must divide pool={pool}; {bad} do not")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    x, y = _check_inputs(model, x, y, needs=("encode", "decode", "prior"))
    # Every k regroups the same S draws, so all S log weights of a pass are kept at once
    # (and their grouped copies): refuse a pool that cannot fit even one example.
    itemsize = torch.finfo(_model_dtype(model)).bits // 8
    check_memory(3 * pool * itemsize, "pool", pool, "the log weights of one example")
    batch_size = max(1, min(batch_size, _MAX_POOL_ELEMENTS // pool))
    bounds, stderrs, parts = [], [], []
    with _eval_mode(model), torch.no_grad():
        x, y = _prepare(model, x, y)
        for start in range(0, x.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            yb = None if y is None else y[sl]
            log_w = posterior_log_weights(model, x[sl], yb, pool, generator)
            est = importance_estimate_unchecked(log_w)
            parts.append(est)
            b_rows, s_rows = [], []
            for k in ks:
                groups = pool // k
                lg = log_mean_exp_unchecked(log_w.reshape(groups, k, -1), 1)
                b_rows.append(lg.mean(0))
                if groups > 1:
                    s_rows.append(lg.std(0, unbiased=True) / math.sqrt(groups))
                else:
                    s_rows.append(est.stderr)
            bounds.append(torch.stack(b_rows))
            stderrs.append(torch.stack(s_rows))
    b, se = torch.cat(bounds, dim=1), torch.cat(stderrs, dim=1)
    log_px = ImportanceEstimate.concatenate(parts)
    warn_if_unreliable(log_px, f"iwae_curve: log p(x) from pool={pool} draws", stacklevel=3,
                       importance=True)
    n = b.shape[1]
    return BoundCurve(tuple(ks), b, se, b.mean(1), se.pow(2).sum(1).sqrt() / n, log_px)
