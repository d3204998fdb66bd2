r"""The experiments of tutorial 04, as data: each returns plain NumPy arrays in dicts.

- :func:`variance_vs_k` / :func:`mohamed_sweep`: per-sample variance of every
  estimator against the cost parameter k, for :math:`\partial_\mu` and
  :math:`\partial_\sigma` at :math:`\mu = \sigma = 1` (Mohamed, Rosca, Figurnov & Mnih, JMLR 2020, section 3,
  figures 2-3), with the exact gradient and the closed-form variances.
- :func:`variance_vs_dimension`: :math:`q = \mathcal N(\mu \mathbf 1, \sigma^2 I_D)`,
  score-function growth
  vs pathwise flatness (the closed form derived from Mohamed et al. 2020, section 3).
- :func:`variance_vs_num_samples`: variance and signal-to-noise ratio of the
  averaged estimator against the number of draws.
- :func:`estimator_table`: mean, standard error, bias z-score, variance and SNR
  of a list of estimators on one cost (the effect of each baseline).
- :func:`gumbel_softmax_sweep`: bias and variance of the relaxation against
  temperature, next to REINFORCE.
- :func:`bbvi_comparison`: black-box VI runs that differ only in the estimator.

Every sweep is a loop over *settings*; the draws within a setting come from
one batched call (and a whole sweep over k is one call, through a batch
dimension of k).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..validation import as_float_array, check_int, check_memory, check_positive, check_real
from .bbvi import run_bbvi
from .costs import Cost, _cost_by_name
from .discrete import discrete_gradients, exact_discrete_gradient
from .exact import exact_gaussian_gradient
from .gaussian import gaussian_gradients

__all__ = [
    "MOHAMED_COSTS",
    "MOHAMED_ESTIMATORS",
    "gradient_statistics",
    "variance_vs_k",
    "mohamed_sweep",
    "variance_vs_dimension",
    "variance_vs_num_samples",
    "estimator_table",
    "gumbel_softmax_sweep",
    "bbvi_comparison",
]

#: The three costs of Mohamed et al.'s figures.
MOHAMED_COSTS = ("quadratic", "gaussian", "cosine")
#: The four estimator families compared in those figures.
MOHAMED_ESTIMATORS = ("score", "pathwise", "measure_valued", "measure_valued_coupled")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def gradient_statistics(samples: torch.Tensor, exact: torch.Tensor | None = None) -> dict:
    r"""Mean, standard error, variance and SNR over dim 0 (and the bias z-score if ``exact``).

    ``snr`` is :math:`\lvert \bar g \rvert / s` of one sample; the SNR of an average of n
    draws is :math:`\sqrt n` times it. ``variance_stderr`` is the standard error of the
    sample variance,

    .. math::

        \mathrm{se}(s^2) = \sqrt{\frac{m_4 - \frac{n - 3}{n - 1} s^4}{n}},

    with :math:`m_4` the fourth central moment (Cramer 1946, eq. 27.7.2), so two Monte Carlo variances are
    compared with a margin that respects
    their sampling error (heavy-tailed estimators have large ``variance_stderr``).
    """
    n = samples.shape[0]
    mean = samples.mean(0)
    var = samples.var(0, unbiased=True)
    std = var.sqrt()
    m4 = ((samples - mean) ** 4).mean(0)
    var_se = ((m4 - (n - 3) / max(n - 1, 1) * var**2).clamp_min(0.0) / n).sqrt()
    out = {
        "mean": _np(mean),
        "stderr": _np(std / math.sqrt(n)),
        "variance": _np(var),
        "variance_stderr": _np(var_se),
        "snr": _np(mean.abs() / std.clamp_min(1e-300)),
    }
    if exact is not None:
        bias = mean - exact
        out["bias"] = _np(bias)
        out["bias_z"] = _np(bias / (std / math.sqrt(n)).clamp_min(1e-300))
    return out


def _closed_form(cost: Cost, estimator: str, loc, scale):
    try:
        v_loc, v_scale = cost.estimator_variance(estimator, loc, scale)
    except NotImplementedError:
        return None
    return v_loc, v_scale


def variance_vs_k(cost: str, ks, *, estimators=MOHAMED_ESTIMATORS, num_samples: int = 100_000,
                  loc: float = 1.0, scale: float = 1.0, generator=None) -> dict:
    r"""Per-sample variance of each estimator against k, for d/d mu and d/d sigma (1-D q).

    The whole sweep is one call per estimator: k has shape (K, 1) and broadcasts
    against a batch of K one-dimensional problems.

    Returns
    -------
    dict
        ``k`` (K,), ``cost``, ``formula``, ``exact`` {"loc", "scale"} (K,),
        ``variance``/``variance_stderr``/``mean``/``stderr`` {estimator: {"loc", "scale"}} (K,),
        ``closed_form`` {estimator: {"loc", "scale"}} where a closed form exists,
        ``skipped`` {estimator: reason} (e.g. pathwise on a step).
    """
    k = torch.from_numpy(as_float_array(ks, "ks", ndim=(0, 1))).reshape(-1, 1)
    f = _cost_by_name(cost, k, name="cost")
    mu = torch.full_like(k, check_real(loc, "loc"))
    sigma = torch.full_like(k, check_positive(scale, "scale"))
    g_loc, g_scale = exact_gaussian_gradient(f, mu, sigma)
    out = {"k": _np(k[:, 0]), "cost": cost, "formula": f.formula,
           "exact": {"loc": _np(g_loc[:, 0]), "scale": _np(g_scale[:, 0])},
           "variance": {}, "variance_stderr": {}, "mean": {}, "stderr": {}, "closed_form": {},
           "skipped": {}}
    for est in estimators:
        if est == "pathwise" and not f.differentiable:
            out["skipped"][est] = f"{f.formula} is not differentiable"
            continue
        s = gaussian_gradients(f, mu, sigma, estimator=est, num_samples=num_samples,
                               generator=generator)
        for key, stats in (("loc", gradient_statistics(s.loc[..., 0])),
                           ("scale", gradient_statistics(s.scale[..., 0]))):
            for field in ("variance", "variance_stderr", "mean", "stderr"):
                out[field].setdefault(est, {})[key] = stats[field]
        closed = _closed_form(f, est, mu, sigma)
        if closed is not None:
            out["closed_form"][est] = {"loc": _np(closed[0][:, 0]), "scale": _np(closed[1][:, 0])}
    return out


def mohamed_sweep(ks=None, *, costs=MOHAMED_COSTS, estimators=MOHAMED_ESTIMATORS,
                  num_samples: int = 100_000, generator=None) -> dict:
    """:func:`variance_vs_k` for each cost of Mohamed et al.'s figures at mu = sigma = 1.

    ``ks`` defaults to 25 values from 0.1 to 10, evenly spaced in log k.
    """
    ks = np.geomspace(0.1, 10.0, 25) if ks is None else ks
    return {c: variance_vs_k(c, ks, estimators=estimators, num_samples=num_samples,
                             generator=generator) for c in costs}


def variance_vs_dimension(dims, *, cost: str = "linear", k: float = 1.0,
                          estimators=("score", "score_loo", "pathwise", "measure_valued_coupled"),
                          num_samples: int = 20_000, loc: float = 1.0, scale: float = 1.0,
                          generator=None) -> dict:
    r"""Per-sample variance of the gradient estimates against the dimension D.

    For :math:`q = \mathcal N(\mu \mathbf 1, \sigma^2 I_D)`, the estimates of
    :math:`\partial_{\mu_i}` and :math:`\partial_{\sigma_i}`; variances are averaged over
    the D coordinates (they are exchangeable). For :math:`f = \sum_d x_d` the score
    function's is :math:`(D \mu)^2 / \sigma^2 + D + 1` (the Linear cost's closed form)
    and the pathwise one is 0. ``variance_stderr`` is the mean over coordinates of
    each coordinate's standard error (:func:`gradient_statistics`): an upper bound
    on the standard error of the average, whatever the coordinates' correlation.

    Returns
    -------
    dict
        ``dims`` (M,), ``variance``, ``variance_stderr`` and ``closed_form``
        {estimator: {"loc", "scale"}} (M,).
    """
    dims = [check_int(d, f"dims[{i}]", minimum=1) for i, d in enumerate(dims)]
    loc, scale = check_real(loc, "loc"), check_positive(scale, "scale")
    f = _cost_by_name(cost, k, name="cost")
    out = {"dims": np.asarray(dims), "cost": cost, "formula": f.formula,
           "variance": {}, "variance_stderr": {}, "closed_form": {}}
    for est in estimators:
        v_loc, v_scale, c_loc, c_scale, se_loc, se_scale = [], [], [], [], [], []
        for d in dims:
            mu = torch.full((d,), float(loc), dtype=torch.float64)
            sigma = torch.full((d,), float(scale), dtype=torch.float64)
            s = gaussian_gradients(f, mu, sigma, estimator=est, num_samples=num_samples,
                                   generator=generator)
            st_loc, st_scale = gradient_statistics(s.loc), gradient_statistics(s.scale)
            v_loc.append(float(st_loc["variance"].mean()))
            v_scale.append(float(st_scale["variance"].mean()))
            se_loc.append(float(st_loc["variance_stderr"].mean()))
            se_scale.append(float(st_scale["variance_stderr"].mean()))
            closed = _closed_form(f, est, mu, sigma)
            if closed is not None:
                c_loc.append(float(closed[0].mean()))
                c_scale.append(float(closed[1].mean()))
        out["variance"][est] = {"loc": np.asarray(v_loc), "scale": np.asarray(v_scale)}
        out["variance_stderr"][est] = {"loc": np.asarray(se_loc), "scale": np.asarray(se_scale)}
        if c_loc:
            out["closed_form"][est] = {"loc": np.asarray(c_loc), "scale": np.asarray(c_scale)}
    return out


def variance_vs_num_samples(cost: str, num_samples, *, k: float = 1.0,
                            estimators=("score", "score_loo", "pathwise", "measure_valued_coupled"),
                            replicates: int = 500, loc: float = 1.0, scale: float = 1.0,
                            generator=None) -> dict:
    r"""Variance and SNR of the n-draw average against n (d/d mu, 1-D q).

    One call per estimator draws ``replicates`` x max(n) per-sample estimates;
    the n-draw averages use the first n of each replicate. The variance of an
    average of n independent draws is :math:`\mathrm{Var}/n` and its SNR
    :math:`\sqrt n \, \lvert E g \rvert / \mathrm{sd}(g)`,
    returned as ``theory`` from the per-sample variance of all draws.

    Returns
    -------
    dict
        ``num_samples`` (M,), ``exact`` (float), per estimator {"variance", "snr",
        "theory_variance", "theory_snr"} (M,).
    """
    if isinstance(num_samples, (str, bytes)) or not hasattr(num_samples, "__iter__"):
        raise TypeError(f"num_samples must be a sequence of integers >= 1, got {num_samples!r}")
    ns = np.asarray([check_int(n, f"num_samples[{i}]", minimum=1) for i, n in enumerate(num_samples)])
    if ns.size == 0:
        raise ValueError("num_samples must hold at least one sample size")
    replicates = check_int(replicates, "replicates", minimum=2)
    check_memory(8 * 8 * replicates * int(ns.max()), "replicates x max(num_samples)",
                 f"{replicates} x {int(ns.max())}", "the per-sample estimates")
    f = _cost_by_name(cost, k, name="cost")
    mu = torch.tensor([check_real(loc, "loc")], dtype=torch.float64)
    sigma = torch.tensor([check_positive(scale, "scale")], dtype=torch.float64)
    exact = float(exact_gaussian_gradient(f, mu, sigma)[0][0])
    n_max = int(ns.max())
    out = {"num_samples": ns, "cost": cost, "formula": f.formula, "exact": exact, "results": {}}
    for est in estimators:
        s = gaussian_gradients(f, mu, sigma, estimator=est, num_samples=replicates * n_max,
                               generator=generator).loc[:, 0].reshape(replicates, n_max)
        per_var = float(s.var())
        per_mean = float(s.mean())
        var, snr = [], []
        for n in ns:
            avg = s[:, :n].mean(1)
            var.append(float(avg.var()))
            snr.append(abs(float(avg.mean())) / max(float(avg.std()), 1e-300))
        out["results"][est] = {
            "variance": np.asarray(var), "snr": np.asarray(snr),
            "theory_variance": per_var / ns,
            "theory_snr": np.sqrt(ns) * abs(per_mean) / max(math.sqrt(per_var), 1e-300),
        }
    return out


def estimator_table(cost: str, *, k: float = 1.0, estimators=None, num_samples: int = 100_000,
                    loc: float = 1.0, scale: float = 1.0, generator=None) -> dict:
    """Bias, variance and SNR of each estimator on one 1-D cost.

    Returns ``{"exact": {"loc", "scale"}, "cost", "formula", "estimators":
    {estimator: {param: stats}}}``; each stats dict holds ``mean``, ``stderr``,
    ``variance``, ``snr``, ``bias``, ``bias_z`` for "loc" and "scale" (floats).
    """
    from .gaussian import GAUSSIAN_ESTIMATORS

    f = _cost_by_name(cost, k, name="cost")
    estimators = GAUSSIAN_ESTIMATORS if estimators is None else estimators
    mu = torch.tensor([check_real(loc, "loc")], dtype=torch.float64)
    sigma = torch.tensor([check_positive(scale, "scale")], dtype=torch.float64)
    g_loc, g_scale = exact_gaussian_gradient(f, mu, sigma)
    table = {"exact": {"loc": float(g_loc[0]), "scale": float(g_scale[0])},
             "cost": cost, "formula": f.formula, "estimators": {}}
    for est in estimators:
        if est == "pathwise" and not f.differentiable:
            continue
        s = gaussian_gradients(f, mu, sigma, estimator=est, num_samples=num_samples,
                               generator=generator)
        table["estimators"][est] = {
            p: {key: float(v[0]) for key, v in gradient_statistics(x, ex).items()}
            for p, x, ex in (("loc", s.loc, g_loc), ("scale", s.scale, g_scale))
        }
    return table


def gumbel_softmax_sweep(cost, logits, temperatures, *, family: str = "categorical",
                         num_samples: int = 50_000, generator=None,
                         reference=("score", "score_loo")) -> dict:
    r"""Bias and variance of the Gumbel-softmax estimator against temperature.

    Bias is measured against the exact gradient by enumeration: ``bias_norm`` is
    the Euclidean norm of (mean - exact) and ``bias_stderr`` its Monte Carlo standard error (delta
    method); ``variance`` is the per-sample variance summed over the logits, the mean of
    ``||g - mean(g)||^2`` over the draws, and ``variance_stderr`` the standard error of that mean.

    Returns
    -------
    dict
        ``temperatures`` (M,), ``exact`` (logits' shape), ``gumbel_softmax``
        {"bias_norm", "bias_stderr", "variance", "variance_stderr"} (M,), and the same
        (scalars) for each ``reference`` estimator.
    """
    logits = torch.from_numpy(as_float_array(logits, "logits"))
    exact = exact_discrete_gradient(cost, logits, family=family)
    temps = as_float_array(temperatures, "temperatures", ndim=1)

    def summarise(g):
        mean = g.mean(0)
        bias = mean - exact
        norm = float(bias.norm())
        # Delta method: se of ||b|| is se of the projection of the mean on b's direction.
        direction = bias / max(norm, 1e-300)
        proj = (g * direction).reshape(g.shape[0], -1).sum(-1)
        n = g.shape[0]
        # Summed variance = mean of the squared deviations (times n / (n - 1)); its error is
        # that of a mean of n values.
        sq = (g - mean).pow(2).reshape(n, -1).sum(-1) * (n / (n - 1))
        return (norm, float(proj.std() / math.sqrt(n)), float(g.var(0).sum()),
                float(sq.std() / math.sqrt(n)))

    out = {"temperatures": temps, "exact": exact.numpy(), "family": family}
    rows = [summarise(discrete_gradients(cost, logits, family=family, estimator="gumbel_softmax",
                                         num_samples=num_samples, generator=generator,
                                         temperature=float(t))) for t in temps]
    names = ("bias_norm", "bias_stderr", "variance", "variance_stderr")
    out["gumbel_softmax"] = {name: np.asarray([r[i] for r in rows]) for i, name in enumerate(names)}
    for est in reference:
        out[est] = dict(zip(names, summarise(discrete_gradients(
            cost, logits, family=family, estimator=est, num_samples=num_samples,
            generator=generator)), strict=True))
    return out


def bbvi_comparison(model, estimators=("pathwise", "stl", "score", "score_baseline"), *,
                    num_iterations: int = 500, num_samples: int = 8,
                    learning_rate: float = 0.05, seed: int = 0, **kwargs) -> dict:
    """Run :func:`~vitoolkit.gradients.bbvi.run_bbvi` once per estimator, same seed and step.

    Returns ``{estimator: BBVIResult}``.
    """
    return {
        est: run_bbvi(model, estimator=est, num_iterations=num_iterations,
                      num_samples=num_samples, learning_rate=learning_rate,
                      generator=torch.Generator().manual_seed(seed), **kwargs)
        for est in estimators
    }
