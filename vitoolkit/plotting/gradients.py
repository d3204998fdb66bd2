"""Figures for gradient estimators (tutorial 04). Each function takes ``ax=None``,
draws numbers computed by :mod:`vitoolkit.gradients.experiments`, and returns what it drew.

Functions that draw several estimators take ``legend=True``; a multi-panel figure passes
``legend=False`` and calls :func:`figure_legend` once, so one legend sits outside the
panels and never covers their data.
"""

from __future__ import annotations

import numpy as np

from .style import PALETTE, get_ax, to_float

__all__ = [
    "estimator_color",
    "plot_variance_vs_k",
    "plot_variance_vs_dimension",
    "plot_variance_vs_num_samples",
    "plot_estimator_variances",
    "plot_gumbel_softmax",
    "plot_bbvi",
    "plot_gradient_histograms",
    "figure_legend",
]

_ORDER = (
    "score", "score_baseline", "score_loo", "score_optimal_cv", "pathwise",
    "measure_valued", "measure_valued_coupled", "stl", "gumbel_softmax", "straight_through",
)
_LABELS = {
    "score": "score function",
    "score_baseline": "score + baseline",
    "score_loo": "score + leave-one-out",
    "score_optimal_cv": "score + optimal CV",
    "pathwise": "pathwise",
    "measure_valued": "measure-valued",
    "measure_valued_coupled": "measure-valued, coupled",
    "stl": "sticking the landing",
    "gumbel_softmax": "Gumbel-softmax",
    "straight_through": "straight-through",
}
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "h", "<")
_PARAM = {"loc": r"$\mu$", "scale": r"$\sigma$"}


# Okabe-Ito indices (style.PALETTE): the score family in blues, pathwise orange,
# measure-valued greens/purple, STL black, relaxations vermillion.
_COLOR_INDEX = {
    "score": 0, "score_baseline": 5, "score_loo": 5, "score_optimal_cv": 5,
    "pathwise": 4, "measure_valued": 2, "measure_valued_coupled": 3, "stl": 7,
    "gumbel_softmax": 1, "straight_through": 3,
}


def estimator_color(name: str) -> str:
    """A fixed colour per estimator, so every figure of the tutorial agrees."""
    return PALETTE[_COLOR_INDEX.get(name, 6) % len(PALETTE)]


def _style(name: str) -> dict:
    i = _ORDER.index(name) if name in _ORDER else 0
    return {"color": estimator_color(name), "marker": _MARKERS[i % len(_MARKERS)],
            "label": _LABELS.get(name, name)}


def _floor(values, floor=1e-12):
    # Log axes cannot show an exact zero (pathwise on a linear cost); draw it at the floor.
    return np.maximum(to_float(values, "values"), floor)


def _positive(values):
    # A variance that is exactly zero at isolated points (e.g. coupled measure-valued
    # estimates where f(mu + R) - f(mu - R) vanishes) is left as a gap on log axes.
    v = to_float(values, "values")
    scale = np.nanmax(np.abs(v)) if v.size else 0.0
    return np.where(v > 1e-12 * max(scale, 1e-300), v, np.nan)


def plot_variance_vs_k(result: dict, param: str = "loc", ax=None, title: str | None = None,
                       legend: bool = True):
    """Per-sample variance against k on log-log axes, closed forms as dashed lines.

    ``result`` is :func:`~vitoolkit.gradients.experiments.variance_vs_k`'s output.
    Returns the list of lines drawn.
    """
    ax = get_ax(ax)
    lines = []
    for est, by_param in result["variance"].items():
        st = _style(est)
        lines += ax.plot(result["k"], _positive(by_param[param]), ls="-", ms=4, **st)
        if est in result["closed_form"]:
            lines += ax.plot(result["k"], _floor(result["closed_form"][est][param]), ls="--",
                             color=st["color"], lw=2, alpha=0.7, label=f"{st['label']} (closed form)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cost parameter k")
    ax.set_ylabel(f"variance of one estimate of d/d{_PARAM[param]}")
    ax.set_title(title or f"f(x) = {result['formula']}: d/d{_PARAM[param]}")
    if legend:
        ax.legend(fontsize="x-small", loc="best")
    return lines


def plot_variance_vs_dimension(result: dict, param: str = "loc", ax=None, title: str | None = None,
                               legend: bool = True):
    """Per-coordinate variance against dimension D (log-log), closed forms dashed."""
    ax = get_ax(ax)
    lines = []
    for est, by_param in result["variance"].items():
        st = _style(est)
        values = to_float(by_param[param], f"result['variance'][{est!r}][{param!r}]")
        if np.all(values == 0):
            # Exactly zero cannot sit on a log axis: say it in the axes (top left, above the
            # data of growing curves) instead of drawing nothing.
            lines.append(ax.text(0.03, 0.97, f"{st['label']}: variance exactly 0 at every D",
                                 transform=ax.transAxes, va="top", ha="left", color=st["color"],
                                 fontsize="small"))
            continue
        lines += ax.plot(result["dims"], _positive(values), ls="-", ms=5, **st)
        if est in result["closed_form"]:
            lines += ax.plot(result["dims"], _floor(result["closed_form"][est][param]), ls="--",
                             color=st["color"], lw=2, alpha=0.7, label=f"{st['label']} (closed form)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("dimension D")
    ax.set_ylabel(f"variance of one estimate of d/d{_PARAM[param]}$_i$")
    ax.set_title(title or f"f(x) = sum_d {result['formula']}: variance against D")
    if legend:
        ax.legend(fontsize="x-small", loc="best")
    return lines


def plot_variance_vs_num_samples(result: dict, quantity: str = "variance", ax=None,
                                 title: str | None = None, legend: bool = True):
    """Variance or SNR of the n-draw average against n; theory (Var/n, sqrt(n) SNR) dashed."""
    if quantity not in ("variance", "snr"):
        raise ValueError(f"quantity must be 'variance' or 'snr', got {quantity!r}")
    ax = get_ax(ax)
    lines = []
    ns = result["num_samples"]
    for est, r in result["results"].items():
        st = _style(est)
        lines += ax.plot(ns, _floor(r[quantity]), ls="-", ms=5, **st)
        lines += ax.plot(ns, _floor(r[f"theory_{quantity}"]), ls="--", color=st["color"],
                         alpha=0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of samples n averaged")
    ax.set_ylabel("variance of the average" if quantity == "variance"
                  else "signal-to-noise ratio |mean| / std")
    ax.set_title(title or f"f(x) = {result['formula']}: {quantity} against n (dashed: theory)")
    if legend:
        ax.legend(fontsize="x-small", loc="best")
    return lines


def plot_estimator_variances(table: dict, param: str = "loc", ax=None, title: str | None = None):
    """Per-sample variance of each estimator as a dot on a log axis, bias z-score annotated.

    ``table`` is :func:`~vitoolkit.gradients.experiments.estimator_table`'s output.
    Returns the list of artists drawn (stems and dots).
    """
    ax = get_ax(ax)
    rows = table["estimators"]
    names = list(rows)
    values = _floor([rows[k][param]["variance"] for k in names])
    y = np.arange(len(names))
    left = values.min() / 4
    drawn = [ax.hlines(y, left, values, colors=[estimator_color(k) for k in names], lw=3)]
    drawn.append(ax.scatter(values, y, s=60, zorder=3, c=[estimator_color(k) for k in names]))
    ax.set_yticks(y, [_LABELS.get(k, k) for k in names])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(left, values.max() * 20)
    for i, k in enumerate(names):
        ax.annotate(f"  {values[i]:.3g}, bias {rows[k][param]['bias_z']:+.1f} s.e.",
                    (values[i], i), va="center", fontsize="x-small")
    ax.set_xlabel(f"variance of one estimate of d/d{_PARAM[param]} (log scale)")
    ax.set_title(title or f"f(x) = {table['formula']}: variance by estimator")
    return drawn


def plot_gumbel_softmax(sweep: dict, quantity: str = "bias", ax=None, title: str | None = None,
                        legend: bool = True):
    """Gumbel-softmax bias (with 2 s.e. band) or variance against temperature; REINFORCE lines.

    The reference estimators (score function, with baselines) are unbiased: on the bias
    panel their dashed line is their 2 s.e. noise floor, the smallest bias the same number
    of draws could detect.
    """
    if quantity not in ("bias", "variance"):
        raise ValueError(f"quantity must be 'bias' or 'variance', got {quantity!r}")
    ax = get_ax(ax)
    t = sweep["temperatures"]
    gs = sweep["gumbel_softmax"]
    st = _style("gumbel_softmax")
    drawn = []
    if quantity == "bias":
        bias, se = np.asarray(gs["bias_norm"]), np.asarray(gs["bias_stderr"])
        drawn += ax.plot(t, _floor(bias), ls="-", **st)
        # Where bias - 2 s.e. <= 0 the band reaches zero, i.e. the bottom of the log axis.
        drawn.append(ax.fill_between(t, np.where(bias > 2 * se, bias - 2 * se, 1e-300),
                                     bias + 2 * se, color=st["color"], alpha=0.2,
                                     label="+/- 2 s.e."))
        ax.set_ylabel("bias ||E[estimate] - exact||")
    else:
        drawn += ax.plot(t, _floor(gs["variance"]), ls="-", **st)
        ax.set_ylabel("variance (sum over logits)")
    for est in ("score", "score_baseline", "score_loo"):
        if est in sweep:
            value = sweep[est]["bias_norm" if quantity == "bias" else "variance"]
            if quantity == "bias":
                # Unbiased: its measured "bias" is noise, so draw its 2 s.e. noise floor.
                value = max(value, 2 * sweep[est]["bias_stderr"])
            drawn.append(ax.axhline(value, color=estimator_color(est), ls="--",
                                    label=_LABELS[est]))
    ax.set_xscale("log")
    ax.set_yscale("log")
    key = "bias_norm" if quantity == "bias" else "variance"
    shown = [v for v in np.ravel(gs[key]) if v > 0]
    shown += [sweep[e][key] if quantity == "variance" else 2 * sweep[e]["bias_stderr"]
              for e in ("score", "score_baseline", "score_loo") if e in sweep]
    if shown:
        ax.set_ylim(min(shown) / 5, max(shown) * 3)
    ax.set_xlabel("temperature tau")
    ax.set_title(title or f"Gumbel-softmax {quantity} against temperature")
    if legend:
        ax.legend(fontsize="x-small", loc="best")
    return drawn


def plot_bbvi(results: dict, quantity: str = "elbo", ax=None, reference: float | None = None,
              title: str | None = None, reference_label: str = "log evidence",
              legend: bool = True):
    """ELBO, distance to the posterior or gradient variance against iteration, per estimator."""
    if quantity not in ("elbo", "distance", "grad_variance"):
        raise ValueError(f"quantity must be 'elbo', 'distance' or 'grad_variance', got {quantity!r}")
    ax = get_ax(ax)
    lines = []
    for est, res in results.items():
        values = getattr(res, quantity)
        st = _style(est)
        st.pop("marker")
        values = to_float(values, f"results[{est!r}]")
        if quantity != "elbo":
            values = np.where(values > 0, values, np.nan)  # exact zeros: gaps on a log axis
        lines += ax.plot(np.arange(len(values)), values, lw=1.5, **st)
    if reference is not None:
        lines.append(ax.axhline(reference, color="black", ls=":", label=reference_label))
    if quantity != "elbo":
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel({"elbo": "ELBO (nats)", "distance": "distance to the posterior",
                   "grad_variance": "gradient variance (sum over parameters)"}[quantity])
    ax.set_title(title or f"black-box VI: {quantity}")
    if legend:
        ax.legend(fontsize="x-small", loc="best")
    return lines


def plot_gradient_histograms(samples: dict, exact: float, ax=None, title: str | None = None,
                             bins: int = 80, clip: float = 0.995, legend: bool = True):
    """Histograms of per-sample gradient estimates, one per estimator, and the exact value.

    ``samples`` maps estimator name to a 1-D array; the x range is clipped to the
    central ``clip`` mass of the widest estimator so that heavy tails stay readable.
    """
    ax = get_ax(ax)
    pooled = np.concatenate([np.asarray(v).ravel() for v in samples.values()])
    lo, hi = np.quantile(pooled, [(1 - clip) / 2, (1 + clip) / 2])
    edges = np.linspace(min(lo, exact), max(hi, exact), bins + 1)
    drawn = []
    for est, values in samples.items():
        st = _style(est)
        _, _, patches = ax.hist(np.clip(np.asarray(values).ravel(), edges[0], edges[-1]),
                                bins=edges, density=True, histtype="step", lw=1.8,
                                color=st["color"], label=st["label"])
        drawn.append(patches)
    drawn.append(ax.axvline(exact, color="black", ls=":", label="exact gradient"))
    ax.set_xlabel("one-sample gradient estimate")
    ax.set_ylabel("density")
    ax.set_title(title or "per-sample estimates")
    if legend:
        ax.legend(fontsize="x-small", loc="best")
    return drawn


def figure_legend(fig, axes, *, ncols: int | None = None, fontsize="small"):
    """One legend for a whole figure, outside and below its panels (constrained layout).

    Panels of one figure share their estimators; one legend below them never
    covers data, unlike a legend inside each panel. Entries are collected from
    every axes in ``axes`` (unique by label, in order of appearance).
    Returns the :class:`~matplotlib.legend.Legend`.
    """
    handles, labels = [], []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    ncols = ncols or min(len(labels), 4)
    return fig.legend(handles, labels, loc="outside lower center", ncols=max(ncols, 1),
                      fontsize=fontsize)
