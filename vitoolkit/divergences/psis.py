r"""Pareto k-hat: is a Monte Carlo average's standard error worth anything?

A Monte Carlo average :math:`\frac1S \sum_s f_s` comes with the standard error
:math:`\mathrm{sd}(f) / \sqrt S`, which is only meaningful when f has a finite variance.
Importance ratios :math:`r = p/q` drawn from a q narrower than p, and the terms of estimators built on them,
can have an infinite variance: the average is still unbiased, but the sample
standard error is confidently wrong (it is computed from draws that have not yet
visited the tail that carries the variance).

Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto smoothed importance sampling"
(JMLR 25(72), 2024), diagnose this by fitting a generalised Pareto distribution
(GPD) to the largest :math:`M = \lceil \min(0.2 S, 3 \sqrt S) \rceil` draws (their
section 3; exceedances over the (M+1)-th largest draw). Its shape k governs the moments:
:math:`E[r^a]` is finite exactly for :math:`a < 1/k`, so

- :math:`k < 1/2`: finite variance, the central limit theorem and the standard error apply;
- :math:`1/2 \le k < 0.7`: infinite variance, but the estimate is still usable in practice
  (with Pareto smoothing); the plain standard error already understates the error;
- :math:`k \ge 0.7` (``KHAT_THRESHOLD``): the estimate and its standard error are
  unreliable (the paper's section 3.2.4; the sample-size-dependent bound
  :math:`\min(1 - 1/\log_{10} S, 0.7)` is only stricter for S < 2200);
- :math:`k \ge 1`: not even the mean is finite.

The shape is fitted with the profile-likelihood empirical Bayes method of Zhang &
Stephens (2009, Technometrics 51, section 4; 30 + floor(sqrt(M)) grid points), and then
shrunk towards 0.5 with the weakly informative prior of Vehtari et al. (2024,
appendix; prior weight 10), :math:`\hat k \leftarrow (M \hat k + 10 \cdot 0.5) / (M + 10)`,
as in the ``loo`` R package's ``gpdfit(wip=TRUE)``.
"""

from __future__ import annotations

import math

import torch

from ..distributions import as_param, check_positive_tensor
from ..exceptions import UnreliableEstimateWarning  # re-exported: one class, defined there
from ..validation import check_bool, check_choice, check_int
from ._checks import check_dim

__all__ = [
    "KHAT_THRESHOLD",
    "UnreliableEstimateWarning",
    "fit_generalized_pareto",
    "normal_ratio_tail_shape",
    "pareto_khat",
    "pareto_smooth",
    "tail_khat",
    "tail_length",
]

#: Above this Pareto k-hat a Monte Carlo estimate and its standard error are unreliable
#: (Vehtari et al. 2024, section 3.2.4).
KHAT_THRESHOLD = 0.7

#: The weakly informative prior on k: weight (in tail draws) and centre (Vehtari et al. 2024).
_PRIOR_WEIGHT = 10.0
_PRIOR_CENTRE = 0.5
#: Fewer tail draws than this and no shape is fitted (k-hat is NaN), as in ``loo``.
_MIN_TAIL = 5
#: Elements of the (batch, grid, tail) work array evaluated at once.
_CHUNK_ELEMENTS = 4_000_000


def tail_length(num_samples: int) -> int:
    r"""How many of S draws form the fitted Pareto tail (Vehtari et al. 2024, section 3).

    .. math::

        M = \big\lceil \min(0.2 S, 3 \sqrt S) \big\rceil
    """
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    return int(math.ceil(min(0.2 * num_samples, 3.0 * math.sqrt(num_samples))))


def _zhang_stephens(x: torch.Tensor, prior: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """GPD (k, sigma) for each row of ``x`` (B, n): sorted ascending, positive maximum."""
    n = x.shape[-1]
    m = 30 + int(math.floor(math.sqrt(n)))
    j = torch.arange(1, m + 1, dtype=x.dtype, device=x.device)
    x_max = x[:, -1:]
    x_quartile = x[:, int(math.floor(n / 4 + 0.5)) - 1].unsqueeze(-1)
    # Ties at the threshold (discrete values) leave a zero first quartile: use the
    # smallest positive exceedance instead, which keeps the grid finite.
    smallest_positive = torch.where(x > 0, x, torch.full_like(x, math.inf)).min(-1, keepdim=True).values
    x_quartile = torch.where(x_quartile > 0, x_quartile, smallest_positive)
    # Zhang & Stephens (2009) eq. (9)-(11) with their prior constant 3; theta < 1 / x_max.
    theta = 1 / x_max + (1 - torch.sqrt(m / (j - 0.5))) / (3 * x_quartile)  # (B, m)
    k_grid = torch.log1p(-theta.unsqueeze(-1) * x.unsqueeze(-2)).mean(-1)  # (B, m)
    profile = n * (torch.log(-theta / k_grid) - k_grid - 1)  # profile log-likelihood
    weights = torch.softmax(profile, dim=-1)
    theta_hat = (theta * weights).sum(-1)
    k = torch.log1p(-theta_hat.unsqueeze(-1) * x).mean(-1)
    sigma = -k / theta_hat
    if prior:
        k = (n * k + _PRIOR_WEIGHT * _PRIOR_CENTRE) / (n + _PRIOR_WEIGHT)
    return k, sigma


def fit_generalized_pareto(exceedances, dim: int = -1, *, prior: bool = True):
    r"""Fit a generalised Pareto distribution to non-negative exceedances over a threshold.

    The GPD with shape k and scale :math:`\sigma` has density

    .. math::

        f(y) = \frac1\sigma \Big(1 + \frac{k y}{\sigma}\Big)^{-1/k - 1}, \qquad y \ge 0

    (:math:`k > 0` is a heavy, power-law tail). Zhang & Stephens (2009) estimate, then
    (``prior=True``) the weakly informative prior of Vehtari et al. (2024),
    :math:`\hat k \leftarrow (n \hat k + 5) / (n + 10)`.

    Parameters
    ----------
    exceedances : array-like of shape (..., n, ...), n >= 5 along ``dim``
        Draws y >= 0 of the tail minus the threshold, any order.
    dim : int
        The dimension holding the draws; the result has it removed.
    prior : bool, default True

    Returns
    -------
    (k, sigma) : float64 tensors of the remaining shape. A row whose exceedances are all
    zero has no tail to fit: k = -inf and sigma = 0.
    """
    prior = check_bool(prior, "prior")
    y = as_param(exceedances, "exceedances", dtype=torch.float64, min_ndim=1).detach()
    y = y.movedim(check_dim(dim, y.dim()), -1)
    n = y.shape[-1]
    if n < _MIN_TAIL:
        raise ValueError(f"exceedances needs at least {_MIN_TAIL} draws along dim {dim}, got {n}")
    if bool(torch.isnan(y).any()) or bool((y < 0).any()):
        raise ValueError("exceedances must be non-negative and not NaN")
    batch = y.shape[:-1]
    flat = torch.sort(y.reshape(-1, n), dim=-1).values
    k, sigma = _fit_rows(flat, prior)
    return k.reshape(batch), sigma.reshape(batch)


def _fit_rows(sorted_rows: torch.Tensor, prior: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit each row (sorted ascending, non-negative); scale-free, so rows are divided by their max."""
    rows, n = sorted_rows.shape
    k = torch.full((rows,), -math.inf, dtype=torch.float64, device=sorted_rows.device)
    sigma = torch.zeros_like(k)
    x_max = sorted_rows[:, -1]
    infinite = torch.isinf(x_max)
    k[infinite] = math.inf
    sigma[infinite] = math.inf
    fit = (x_max > 0) & ~infinite
    if not bool(fit.any()):
        return k, sigma
    idx = fit.nonzero().squeeze(-1)
    scaled = sorted_rows[idx] / x_max[idx].unsqueeze(-1)  # the fit is scale-invariant
    m = 30 + int(math.floor(math.sqrt(n)))
    chunk = max(1, _CHUNK_ELEMENTS // (m * n))
    for start in range(0, idx.numel(), chunk):
        sl = slice(start, start + chunk)
        k_c, s_c = _zhang_stephens(scaled[sl], prior)
        k[idx[sl]] = k_c
        sigma[idx[sl]] = s_c * x_max[idx[sl]]
    # A tail spanning more than the float range (quartile underflows) fits to NaN: unreliable.
    k = torch.where(torch.isnan(k), torch.full_like(k, math.inf), k)
    return k, sigma


def _as_rows(values, dim: int, name: str) -> tuple[torch.Tensor, torch.Size]:
    t = as_param(values, name, dtype=torch.float64, finite=False).detach()
    if t.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension (the draws along dim)")
    t = t.movedim(check_dim(dim, t.dim()), -1)
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} contains NaN")
    return t.reshape(-1, t.shape[-1]), t.shape[:-1]


def _right_tail_khat(rows: torch.Tensor, *, log_scale: bool,
                     num_samples: int | None = None) -> torch.Tensor:
    """k-hat of the right tail of each row (B, S); rows in log space when ``log_scale``.

    ``num_samples`` (default S) is the number of draws the rows came from: a caller that
    streams draws in chunks may pass only the largest ones (at least M + 1 per row).
    """
    s = rows.shape[-1] if num_samples is None else num_samples
    m = tail_length(s)
    out = torch.full((rows.shape[0],), math.nan, dtype=torch.float64, device=rows.device)
    if m < _MIN_TAIL or rows.shape[-1] < m + 1:
        return out  # too few draws to fit a tail (S <= 20): unknown, not reliable-by-default
    top = torch.topk(rows, m + 1, dim=-1, largest=True, sorted=True).values.flip(-1)  # ascending
    threshold, tail = top[:, :1], top[:, 1:]
    pos_inf = torch.isposinf(tail[:, -1])
    if log_scale:
        # exp(tail) - exp(threshold), divided by exp(max): every value in [0, 1], no overflow.
        shifted_tail = tail - tail[:, -1:]
        shifted_thr = threshold - tail[:, -1:]
        exceed = torch.exp(shifted_tail) - torch.exp(shifted_thr)
    else:
        exceed = tail - threshold
    exceed = torch.nan_to_num(exceed.clamp_min(0), nan=0.0)
    k, _ = _fit_rows(exceed, prior=True)
    k = torch.where(pos_inf, torch.full_like(k, math.inf), k)
    return k


def pareto_khat(log_ratios, dim: int = 0) -> torch.Tensor:
    r"""Pareto k-hat of importance ratios given on the log scale (PSIS, Vehtari et al. 2024).

    Fits a generalised Pareto to the :math:`M = \lceil \min(0.2 S, 3 \sqrt S) \rceil`
    largest ratios :math:`r_s = \exp(\ell_s)` (:math:`\ell_s` the ``log_ratios``;
    exceedances over the (M+1)-th largest) and returns its shape: :math:`\hat k < 0.5` finite variance;
    :math:`\hat k >` :data:`KHAT_THRESHOLD` (0.7) the importance-sampling estimate and its
    standard error are unreliable.

    Parameters
    ----------
    log_ratios : array-like of shape (..., S, ...)
        log p(z_s) - log q(z_s) (unnormalised is fine: the fit is scale-free) for
        z_s ~ q, S draws along ``dim``. Computed in float64, relative to the row's
        maximum, so log ratios of any size are safe.
    dim : int, default 0
        The dimension of the draws; it is reduced.

    Returns
    -------
    Tensor (float64) of the remaining batch shape. NaN when S <= 20 (fewer than five
    tail draws: too few to fit), -inf when the largest ratios are all equal (no tail),
    +inf when a ratio is infinite.
    """
    rows, batch = _as_rows(log_ratios, dim, "log_ratios")
    return _right_tail_khat(rows, log_scale=True).reshape(batch)


def pareto_smooth(log_ratios) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Pareto-smoothed importance weights (PSIS): the M largest ratios replaced by GPD quantiles.

    Vehtari, Simpson, Gelman, Yao & Gabry (JMLR 2024), section 3, algorithm 1: fit the
    generalised Pareto (shape k, scale :math:`\sigma`) to the exceedances of the
    :math:`M = \lceil \min(0.2 S, 3 \sqrt S) \rceil` largest ratios over the (M+1)-th
    largest, :math:`r_{(S-M)}`, exactly as :func:`pareto_khat` does, and replace the z-th
    smallest of them by the quantile

    .. math::

        r_{(S-M)} + F^{-1}\Big(\frac{z - 1/2}{M}\Big), \qquad
        F^{-1}(p) = \frac{\sigma \big((1 - p)^{-k} - 1\big)}{k},

    truncated at the largest raw ratio. Self-normalised averages with these weights have a finite variance
    and a smaller error than raw importance sampling when k-hat < 0.7; above it k-hat
    says they, too, are unreliable.

    Parameters
    ----------
    log_ratios : array-like of shape (S,)
        log p(z_s) - log q(z_s) for z_s ~ q (unnormalised is fine), finite, S > 20.

    Returns
    -------
    (log_weights, khat) : log_weights of shape (S,), normalised (logsumexp 0), in the order
    of the draws; khat a 0-d tensor. When no tail can be fitted (all top ratios equal:
    k-hat -inf) the raw normalised weights come back.
    """
    t = as_param(log_ratios, "log_ratios", dtype=torch.float64, finite=False).detach()
    if t.dim() != 1:
        raise ValueError(f"log_ratios must have shape (S,) (one log ratio per draw), got shape "
                         f"{tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("log_ratios must be finite (log p - log q at draws of q, where both "
                         "densities are positive)")
    s = t.shape[0]
    m = tail_length(s) if s else 0
    if m < _MIN_TAIL:
        raise ValueError(f"log_ratios must hold more than 20 draws (a tail of at least {_MIN_TAIL}), "
                         f"got S={s}")
    lw = t
    lw = lw - lw.max()
    order = torch.argsort(lw)
    top = order[-m:]  # ascending among the M largest
    cutoff = lw[order[-m - 1]]
    exceed = (lw[top].exp() - cutoff.exp()).clamp_min(0)
    k, sigma = _fit_rows(exceed.unsqueeze(0), prior=True)
    k, sigma = k[0], sigma[0]
    smoothed = lw.clone()
    if torch.isfinite(k) and float(sigma) > 0:
        p = (torch.arange(1, m + 1, dtype=torch.float64) - 0.5) / m
        if abs(float(k)) < 1e-12:
            quantile = -sigma * torch.log1p(-p)
        else:
            quantile = sigma * ((1 - p).pow(-k) - 1) / k
        smoothed[top] = torch.log((cutoff.exp() + quantile).clamp(max=1.0))  # raw max is e^0 = 1
    return smoothed - torch.logsumexp(smoothed, 0), k


def tail_khat(values, dim: int = 0, *, tail: str = "both") -> torch.Tensor:
    r"""Pareto k-hat of the tail(s) of plain Monte Carlo draws f_s, for their average's error bar.

    The diagnostic of Vehtari et al. (2024) applied to the terms of any Monte Carlo
    average (as ``posterior::pareto_khat`` does): the GPD shape of the largest
    (``"right"``), the smallest (``"left"``, the largest of -f) or the worse of both
    (``"both"``) :math:`M = \lceil \min(0.2 S, 3 \sqrt S) \rceil` draws. Above 0.5 the terms have
    infinite variance; above :data:`KHAT_THRESHOLD` the average's standard error
    cannot be trusted.

    Parameters
    ----------
    values : array-like of shape (..., S, ...)
        The draws f_s, S along ``dim`` (reduced).
    dim : int, default 0
    tail : {"both", "right", "left"}

    Returns
    -------
    Tensor (float64) of the remaining batch shape, with the conventions of
    :func:`pareto_khat` (NaN for S <= 20, -inf for a tail with no spread).
    """
    tail = check_choice(tail, ("both", "right", "left"), "tail")
    rows, batch = _as_rows(values, dim, "values")
    ks = []
    if tail in ("both", "right"):
        ks.append(_right_tail_khat(rows, log_scale=False))
    if tail in ("both", "left"):
        ks.append(_right_tail_khat(-rows, log_scale=False))
    k = ks[0] if len(ks) == 1 else torch.maximum(ks[0], ks[1])
    return k.reshape(batch)


def normal_ratio_tail_shape(sampling_scale, other_scale) -> torch.Tensor:
    r"""The exact tail shape k of the ratio of two normal densities, drawn from the denominator.

    For :math:`r = \mathcal N(z; b, s_o^2) / \mathcal N(z; a, s^2)` with
    :math:`z \sim \mathcal N(a, s^2)` (s the ``sampling_scale``, :math:`s_o` the
    ``other_scale``), :math:`\log r` grows like :math:`u (1 - s^2 / s_o^2)` with
    :math:`u = (z - a)^2 / (2 s^2)`, whose tail is exponential, so

    .. math::

        P(r > t) \sim t^{-1/k}, \qquad k = 1 - \frac{s^2}{s_o^2}

    (a sampling distribution narrower than the other one). :math:`E[r^a]` is finite
    exactly for :math:`a < 1/k`, so the ratio has infinite variance once
    :math:`k \ge 1/2`, i.e. :math:`s^2 \le s_o^2 / 2`.
    A sampling distribution at least as wide gives a bounded ratio: no tail, -inf.
    The means do not enter. Arguments broadcast; returns float64.
    """
    a = as_param(sampling_scale, "sampling_scale", dtype=torch.float64)
    b = as_param(other_scale, "other_scale", dtype=torch.float64)
    check_positive_tensor(a, "sampling_scale")
    check_positive_tensor(b, "other_scale")
    k = 1 - a**2 / b**2
    return torch.where(k > 0, k, torch.full_like(k, -math.inf))
