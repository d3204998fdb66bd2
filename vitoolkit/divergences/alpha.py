r"""Alpha (Minka) and Renyi divergences, closed form for Gaussians, Monte Carlo otherwise.

Minka's alpha-divergence (Minka 2005, MSR-TR-2005-173, eq. 2), for normalised p and q:

.. math::

    D_\alpha(p \,\|\, q) = \frac{1}{\alpha (1 - \alpha)}
        \int \big[\alpha p + (1 - \alpha) q - p^\alpha q^{1-\alpha}\big] \, dx
      = \frac{1 - A_\alpha}{\alpha (1 - \alpha)}, \qquad
    A_\alpha = \int p^\alpha q^{1-\alpha} \, dx.

:math:`\alpha \to 0` gives :math:`\mathrm{KL}(q \,\|\, p)` (the VI objective,
mode-seeking), :math:`\alpha \to 1` gives :math:`\mathrm{KL}(p \,\|\, q)`
(mass-covering), :math:`\alpha = 1/2` gives :math:`2 \int (\sqrt p - \sqrt q)^2 \, dx`
(four times the squared Hellinger distance).

Renyi's divergence of order alpha (Renyi 1961; Li & Turner 2016, eq. 1):

.. math::

    D^R_\alpha(p \,\|\, q) = \frac{\log A_\alpha}{\alpha - 1}, \qquad
    \lim_{\alpha \to 1} D^R_\alpha(p \,\|\, q) = \mathrm{KL}(p \,\|\, q).

Gaussian closed form (e.g. Gil, Alajaji & Linder 2013): with
:math:`\Delta = m_p - m_q` and :math:`S_\alpha = \alpha S_q + (1 - \alpha) S_p`,

.. math::

    \log A_\alpha = -\frac{\alpha (1 - \alpha)}{2} \Delta^\top S_\alpha^{-1} \Delta
        - \frac12 \log\det S_\alpha + \frac{1 - \alpha}{2} \log\det S_p
        + \frac{\alpha}{2} \log\det S_q,

finite if and only if :math:`\alpha \Lambda_p + (1 - \alpha) \Lambda_q` is positive
definite (always for :math:`0 < \alpha < 1`; :math:`\Lambda = S^{-1}`).

Monte Carlo. With draws from the sampler s (q or p, ``sample_from``), the ratio
:math:`w = \text{other}/s` and the exponent e (alpha when sampling q, 1 - alpha when
sampling p), :math:`A_\alpha = E_s[w^e]`, and two unbiased per-draw estimators of
:math:`D_\alpha`, with the same mean because :math:`E_s[w] = 1`:

- ``"plain"``: :math:`(1 - w^e) / (\alpha (1 - \alpha))`. Near e = 1 the numerator is
  about :math:`(1 - e)(w - 1)` to first order, so the terms' variance grows like
  :math:`\mathrm{Var}(w) / (1 - e)^2`.
- ``"self_normalised"``: :math:`(w^e - 1 - e (w - 1)) / (e (e - 1))`, the Amari-alpha
  Csiszar function with :math:`f'(1) = 0` (Cichocki & Amari 2010; TensorFlow Probability's
  ``tfp.vi.amari_alpha(..., self_normalized=True)``). This is not self-normalised
  importance sampling: the term :math:`e (w - 1)` is a control variate with mean zero,
  which cancels that first-order part; the variance stays bounded as :math:`e \to 1`
  (the terms tend to :math:`w \log w - (w - 1)`). It needs :math:`E_s[w^2]` finite,
  which the plain terms only need for e > 1: when s is much narrower than the other
  density (heavy-tailed w) it can be far worse.
- ``"auto"`` (the default) takes, per batch entry, the one with the smaller standard
  error on the same draws (both are computed; the choice only adds a bias of the order
  of the correlation between a sample mean and its sample variance, O(1/S)), except
  that the self-normalised terms are not chosen when their tail (the Pareto k-hat of w)
  is clearly heavier than the plain terms' (of :math:`w^e`; by more than 0.1) and above
  1/4: their fourth moment is then infinite and their small sample standard error may be
  luck.

The Renyi divergence uses the same two estimates of :math:`A_\alpha`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..distributions import sample
from ..validation import check_choice, check_memory, check_num_samples
from ._checks import MIN_SAMPLES, check_alpha, check_no_overflow, check_pair
from ._gaussian import gaussian_params
from .closed_form import kl_divergence
from .importance import importance_estimate_unchecked
from .monte_carlo import Estimate, plan_draws
from .psis import pareto_khat

__all__ = ["alpha_divergence", "renyi_divergence", "log_alpha_affinity", "ALPHA_ESTIMATORS"]

_METHODS = ("auto", "closed_form", "monte_carlo")
#: Monte Carlo estimators of the alpha and Renyi divergences.
ALPHA_ESTIMATORS = ("auto", "plain", "self_normalised")
#: Tail shape below which the terms' fourth moment is finite, so their sample standard
#: error is itself a sound estimate (used by ``estimator="auto"``).
_SE_TRUST_KHAT = 0.25
#: How much heavier (in k-hat) the self-normalised terms' tail may look before "auto"
#: distrusts their standard error (k-hat's own sampling error is a few hundredths).
_KHAT_MARGIN = 0.1


def log_alpha_affinity(p, q, alpha: float) -> torch.Tensor:
    r"""The log alpha-affinity of two Gaussians, in closed form.

    .. math::

        \log A_\alpha = \log \int p(x)^\alpha q(x)^{1-\alpha} \, dx

    (Gil, Alajaji & Linder 2013; see the module docstring), evaluated in p's whitened
    coordinates: with :math:`S_p = L L^\top`, :math:`K = L^{-1} S_q L^{-\top} - I` and
    :math:`\delta = L^{-1} (m_p - m_q)`, :math:`S_\alpha = L (I + \alpha K) L^\top` and

    .. math::

        \log A_\alpha = -\frac{\alpha (1 - \alpha)}{2} \delta^\top (I + \alpha K)^{-1} \delta
            - \frac12 \log\det(I + \alpha K) + \frac{\alpha}{2} \log\det(I + K),

    every term :math:`O(\alpha)`, so
    :math:`D_\alpha = -\operatorname{expm1}(\log A_\alpha) / (\alpha (1 - \alpha))` keeps
    its precision as :math:`\alpha \to 0` (:math:`\log\det(I + \alpha K)` by its series
    when :math:`\alpha \lVert K \rVert` is small); :math:`\alpha > 1/2` uses
    :math:`A_\alpha(p, q) = A_{1 - \alpha}(q, p)`, so :math:`\alpha \to 1` does too.
    Differentiable in the parameters.

    Parameters
    ----------
    p, q : torch.distributions.Distribution
        Two Gaussians (``Normal``, a batch of 1-D ones; ``Independent(Normal, 1)``;
        ``MultivariateNormal``) with broadcastable batch shapes and the same dimension.
    alpha : float
        Any real number.

    Returns
    -------
    Tensor
        :math:`\log A_\alpha`, of the broadcast batch shape.

    Raises
    ------
    ValueError
        Naming ``alpha`` when the integral diverges
        (:math:`\alpha \Lambda_p + (1 - \alpha) \Lambda_q` not positive definite, i.e.
        :math:`I + \alpha K` not).
    """
    check_pair(p, q)
    alpha = check_alpha(alpha)
    gp, gq = gaussian_params(p), gaussian_params(q)
    if gp is None or gq is None:
        raise NotImplementedError(
            f"closed-form alpha affinity needs two Gaussians, got {type(p).__name__} and "
            f"{type(q).__name__}; use method='monte_carlo' with num_samples"
        )
    (mp, sp), (mq, sq) = gp, gq
    a = alpha
    if a > 0.5:  # symmetric: A_a(p, q) = A_{1-a}(q, p)
        (mp, sp), (mq, sq), a = (mq, sq), (mp, sp), 1.0 - a
    mp, mq = torch.broadcast_tensors(mp, mq)
    sp, sq = torch.broadcast_tensors(sp, sq)
    chol = torch.linalg.cholesky(sp)
    half = torch.linalg.solve_triangular(chol, sq, upper=False)
    k = torch.linalg.solve_triangular(chol, half.mT, upper=False)
    eye = torch.eye(k.shape[-1], dtype=k.dtype, device=k.device)
    k = 0.5 * (k + k.mT) - eye
    m_a = eye + a * k
    chol_a, info = torch.linalg.cholesky_ex(m_a)
    if bool((info != 0).any()):
        raise ValueError(
            f"alpha={alpha} gives an infinite divergence for these Gaussians: "
            "alpha * Lambda_p + (1 - alpha) * Lambda_q is not positive definite "
            "(0 < alpha < 1 is always finite; alpha > 1 needs q wider than p, alpha < 0 p wider than q)"
        )
    delta = torch.linalg.solve_triangular(chol, (mp - mq).unsqueeze(-1), upper=False)
    white = torch.linalg.solve_triangular(chol_a, delta, upper=False)
    quad = white.pow(2).sum((-2, -1))
    out = (-0.5 * a * (1 - a) * quad - 0.5 * _log_det_eye_plus(k, a, chol_a)
           + 0.5 * a * _log_det_eye_plus(k, 1.0, None))
    return check_no_overflow(out, "alpha", alpha)


def _log_det_eye_plus(k: torch.Tensor, a: float, chol) -> torch.Tensor:
    """log det(I + a K) for symmetric K: its series when |a| ||K||_F <= 1/8, else Cholesky.

    The series sum_j (-1)^(j+1) a^j tr(K^j) / j keeps full relative precision for tiny a,
    where 1 + a lambda rounds to 1; 16 terms leave an error below (1/8)^17 of the first.
    """
    if chol is None:  # I + K = L^-1 S_q L^-T is positive definite
        chol = torch.linalg.cholesky(torch.eye(k.shape[-1], dtype=k.dtype, device=k.device) + a * k)
    direct = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    small = abs(a) * torch.linalg.matrix_norm(k) <= 0.125
    if not bool(small.any()):
        return direct
    series = torch.zeros(k.shape[:-2], dtype=k.dtype, device=k.device)
    power = k
    for j in range(1, 17):
        series = series + ((-1) ** (j + 1)) * a**j * torch.diagonal(power, dim1=-2, dim2=-1).sum(-1) / j
        power = power @ k
    return torch.where(small, series, direct)


def _mc_log_ratios(p, q, num_samples, generator, sample_from, batch):
    """log w = log other(x) - log sampler(x) for x ~ sampler, shape (S, *batch), drawn in chunks."""
    sampler, other = (q, p) if sample_from == "q" else (p, q)
    chunk = plan_draws(num_samples, batch, p.event_shape, what=f"Monte Carlo draws from {sample_from}")
    # Only the log ratios (S values per batch entry) are kept, with about six arrays of
    # that size for the two estimators: refuse before drawing if they would not fit.
    check_memory(num_samples * math.prod(batch) * 8 * 6, "num_samples", num_samples,
                 "the log importance ratios and the estimators' terms")
    if sampler.batch_shape != batch:
        sampler = sampler.expand(batch)
    parts = []
    with torch.no_grad():
        for start in range(0, num_samples, chunk):
            x = sample(sampler, (min(chunk, num_samples - start),), generator=generator)
            parts.append(torch.broadcast_to(other.log_prob(x) - sampler.log_prob(x),
                                            (x.shape[0], *batch)))
    log_w = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
    if bool(torch.isnan(log_w).any()):
        raise ValueError("log densities of p or q were NaN on the Monte Carlo samples")
    return log_w


class _Forms(NamedTuple):
    """The two Monte Carlo estimates of one quantity, each with its standard error."""

    plain: torch.Tensor
    plain_se: torch.Tensor
    normalised: torch.Tensor
    normalised_se: torch.Tensor


def _choose(forms: _Forms, estimator: str, khat_plain, khat_normalised) -> Estimate:
    """The estimator asked for; for "auto" see the module docstring (per entry)."""
    if estimator == "plain":
        return Estimate(forms.plain, forms.plain_se, khat_plain)
    if estimator == "self_normalised":
        return Estimate(forms.normalised, forms.normalised_se, khat_normalised)
    usable = torch.isfinite(forms.normalised) & torch.isfinite(forms.normalised_se)
    # A sample standard error is itself trustworthy when the terms' fourth moment is
    # finite (tail shape k < 1/4). The self-normalised terms contain w as well as w^e,
    # so their tail can be heavier than the plain terms' (0 < e < 1); then their smaller
    # sample standard error may be luck, and they are chosen only if that tail is light.
    tail_ok = ((khat_normalised <= khat_plain + _KHAT_MARGIN) | (khat_normalised < _SE_TRUST_KHAT)
               | torch.isnan(khat_normalised))
    better = usable & tail_ok & ~(forms.plain_se < forms.normalised_se)
    return Estimate(torch.where(better, forms.normalised, forms.plain),
                    torch.where(better, forms.normalised_se, forms.plain_se),
                    torch.where(better, khat_normalised, khat_plain))


def _mean_se(terms):
    n = terms.shape[0]
    return terms.mean(0), terms.std(0, unbiased=True) / math.sqrt(n)


def _mc_alpha(log_w, e, scale, estimator) -> Estimate:
    """D_alpha from draws of the sampler, log w = log(other/sampler), w^e the affinity integrand.

    D = (1 - A) / scale with A = E[w^e], scale = alpha (1 - alpha) = e (1 - e). Plain terms
    (1 - w^e) / scale; self-normalised terms (w^e - 1 - e (w - 1)) / (e (e - 1)), the same
    mean because E[w] = 1. At e = 0 and e = 1 the limits: -log w and w - 1 - log w (a KL
    over the sampler), w log w and w log w - (w - 1) (the importance-weighted KL).
    """
    dtype = log_w.dtype
    khat_w = pareto_khat(log_w, dim=0).to(dtype)
    if e in (0.0, 1.0):
        plain_terms = -log_w if e == 0.0 else torch.exp(log_w) * log_w
        normalised_terms = plain_terms + torch.expm1(log_w) * (1.0 if e == 0.0 else -1.0)
        khat_plain = khat_w
    else:
        elw = e * log_w
        # A_hat = mean of w^e, in log space; its relative stderr is the delta-method stderr
        # of log A_hat, and its k-hat that of the weights w^e (the core's importance summary)
        plain = importance_estimate_unchecked(elw)
        log_a, rel_se, khat_plain = plain.value, plain.stderr, plain.khat
        a_plain = Estimate(-torch.expm1(log_a) / scale, torch.exp(log_a) * rel_se / abs(scale))
        normalised_terms = (torch.expm1(elw) - e * torch.expm1(log_w)) / (e * (e - 1))
        khat_plain = khat_plain.to(dtype)
        plain_terms = None
    nv, nse = _mean_se(normalised_terms)
    if plain_terms is not None:
        a_plain = Estimate(*_mean_se(plain_terms))
    forms = _Forms(a_plain.value, a_plain.stderr, nv, nse)
    return _choose(forms, estimator, khat_plain, torch.maximum(khat_plain, khat_w))


def _mc_renyi(log_w, e, alpha, estimator) -> Estimate:
    """D^R_alpha = log A / (alpha - 1) from the plain or the self-normalised estimate of A."""
    dtype = log_w.dtype
    elw = e * log_w
    plain = importance_estimate_unchecked(elw)  # log mean w^e, its delta-method se
    log_a, rel_se, khat_plain = plain.value, plain.stderr, plain.khat
    c_mean, c_se = _mean_se(torch.expm1(elw) - e * torch.expm1(log_w))  # A_sn - 1
    a_sn = 1 + c_mean
    k = abs(alpha - 1)
    # A_sn can be <= 0 (its terms are not positive): then only the plain form is usable.
    positive = a_sn > 0
    normalised = torch.where(positive, torch.log1p(c_mean.clamp_min(-1 + 1e-300)),
                             torch.full_like(c_mean, math.nan)) / (alpha - 1)
    forms = _Forms(log_a / (alpha - 1), rel_se / k, normalised,
                   torch.where(positive, c_se / (a_sn.abs() * k), torch.full_like(c_se, math.nan)))
    if estimator == "self_normalised" and not bool(positive.all()):
        raise ValueError(
            "estimator='self_normalised': the self-normalised estimate of the affinity "
            "A_alpha is not positive for some entries (its terms can be negative), so its log "
            "is undefined; use estimator='plain' or 'auto', or more num_samples")
    khat_w = pareto_khat(log_w, dim=0).to(dtype)
    khat_plain = khat_plain.to(dtype)
    return _choose(forms, estimator, khat_plain, torch.maximum(khat_plain, khat_w))


def _mc(p, q, alpha, num_samples, generator, sample_from, estimator, batch, renyi):
    sample_from = check_choice(sample_from, ("q", "p"), "sample_from")
    estimator = check_choice(estimator, ALPHA_ESTIMATORS, "estimator")
    if num_samples is None:
        raise ValueError("num_samples is required for method='monte_carlo'")
    num_samples = check_num_samples(num_samples, minimum=MIN_SAMPLES)
    log_w = _mc_log_ratios(p, q, num_samples, generator, sample_from, batch)
    e = alpha if sample_from == "q" else 1.0 - alpha  # A_alpha = E_sampler[w^e]
    est = (_mc_renyi(log_w, e, alpha, estimator) if renyi
           else _mc_alpha(log_w, e, alpha * (1 - alpha), estimator))
    check_no_overflow(est.value, "alpha", alpha)
    return est


def _resolve(p, q, method, num_samples, sample_from, estimator):
    check_choice(sample_from, ("q", "p"), "sample_from")
    check_choice(estimator, ALPHA_ESTIMATORS, "estimator")
    method = check_choice(method, _METHODS, "method")
    gaussian = gaussian_params(p) is not None and gaussian_params(q) is not None
    if method == "auto":
        if gaussian:
            return "closed_form"
        if num_samples is None:
            raise ValueError(
                f"no closed form for {type(p).__name__} and {type(q).__name__}: pass "
                "num_samples for a Monte Carlo estimate (or use grid_divergence in 1-D/2-D)"
            )
        return "monte_carlo"
    if method == "closed_form" and not gaussian:
        raise NotImplementedError(
            f"closed form needs two Gaussians, got {type(p).__name__} and {type(q).__name__}; "
            "use method='monte_carlo' with num_samples"
        )
    return method


def alpha_divergence(p, q, alpha: float, *, method: str = "auto", num_samples: int | None = None,
                     generator: torch.Generator | None = None, sample_from: str = "q",
                     estimator: str = "auto"):
    r"""Minka's alpha-divergence of p from q, in closed form for Gaussians, else by Monte Carlo.

    .. math::

        D_\alpha(p \,\|\, q) = \frac{1 - \int p^\alpha q^{1-\alpha} \, dx}{\alpha (1 - \alpha)}

    (Minka 2005, MSR-TR-2005-173, eq. 2; the module docstring gives the Gaussian closed
    form and the Monte Carlo estimators).

    Parameters
    ----------
    p, q : torch.distributions.Distribution
    alpha : float
        Any real number; 0 and 1 return :math:`\mathrm{KL}(q \,\|\, p)` and
        :math:`\mathrm{KL}(p \,\|\, q)`.
    method : {"auto", "closed_form", "monte_carlo"}
        ``"auto"`` uses the closed form for two Gaussians, Monte Carlo otherwise.
    num_samples : int >= 2, needed for Monte Carlo.
        Refused before drawing (``ResourceLimitError``) when the draws would not fit
        (:func:`~vitoolkit.divergences.monte_carlo.plan_draws`).
    generator : torch.Generator, optional
    sample_from : {"q", "p"}
        Which distribution the Monte Carlo draws come from:
        :math:`A_\alpha = E_q[(p/q)^\alpha] = E_p[(q/p)^{1-\alpha}]`.
    estimator : {"auto", "plain", "self_normalised"}
        The Monte Carlo terms (see the module docstring). ``"plain"`` averages
        :math:`(1 - w^e) / (\alpha (1 - \alpha))`; ``"self_normalised"`` adds the zero-mean
        control variate :math:`e (w - 1)` (TFP's ``amari_alpha(self_normalized=True)``), whose
        variance stays bounded as the exponent :math:`e \to 1` where the plain one grows like
        :math:`1/(1 - e)^2`;
        ``"auto"`` (default) returns, entry by entry, the one of the two with the smaller
        standard error on the same draws.

    Returns
    -------
    Tensor (closed form) or Estimate (Monte Carlo), of the broadcast batch shape. The
    Monte Carlo estimate carries ``khat``: the Pareto k-hat (Vehtari et al. 2024) of the
    heaviest importance ratio its terms average (:math:`w^e` for the plain form, also w for
    the self-normalised one); above 0.7 its standard error cannot be trusted. No warning is
    issued here.
    """
    batch = check_pair(p, q)
    alpha = check_alpha(alpha)
    how = _resolve(p, q, method, num_samples, sample_from, estimator)
    if how == "monte_carlo":
        return _mc(p, q, alpha, num_samples, generator, sample_from, estimator, batch, renyi=False)
    if alpha in (0.0, 1.0):
        a, b = (q, p) if alpha == 0.0 else (p, q)
        return kl_divergence(a, b)
    return check_no_overflow(-torch.expm1(log_alpha_affinity(p, q, alpha)) / (alpha * (1 - alpha)),
                               "alpha", alpha)


def renyi_divergence(p, q, alpha: float, *, method: str = "auto", num_samples: int | None = None,
                     generator: torch.Generator | None = None, sample_from: str = "q",
                     estimator: str = "auto"):
    r"""Renyi divergence of order alpha, in closed form for Gaussians, else by Monte Carlo.

    .. math::

        D^R_\alpha(p \,\|\, q) = \frac{\log A_\alpha}{\alpha - 1}, \qquad
        A_\alpha = \int p^\alpha q^{1-\alpha} \, dx

    (Renyi 1961; Li & Turner 2016, eq. 1); :math:`\alpha = 1` returns
    :math:`\mathrm{KL}(p \,\|\, q)`. Arguments as in :func:`alpha_divergence`; the
    Monte Carlo standard error is the delta-method one,
    :math:`\mathrm{se}(\hat A) / (\hat A \, \lvert \alpha - 1 \rvert)` (the estimate of
    :math:`\log A` is biased low by Jensen, by O(1/num_samples)). The
    self-normalised estimate of A can be <= 0 (its terms are not all positive): ``"auto"``
    then uses the plain one, and ``estimator="self_normalised"`` raises a ``ValueError``.
    """
    batch = check_pair(p, q)
    alpha = check_alpha(alpha)
    how = _resolve(p, q, method, num_samples, sample_from, estimator)
    if how == "monte_carlo":
        if alpha == 1.0:
            return _mc(p, q, alpha, num_samples, generator, sample_from, estimator, batch, renyi=False)
        return _mc(p, q, alpha, num_samples, generator, sample_from, estimator, batch, renyi=True)
    if alpha == 1.0:
        return kl_divergence(p, q)
    return log_alpha_affinity(p, q, alpha) / (alpha - 1)
