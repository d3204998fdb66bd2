"""Figures for the core lessons (tutorial 01): the ELBO gap, ELBO surfaces, bounds over a
model parameter, evidence estimators and Monte Carlo error bars with their k-hat diagnostic.

Every function takes ``ax=None`` (drawing on the current axes when none is given),
receives numbers already computed by the package, and returns what it drew.
"""

from __future__ import annotations

import numpy as np
from matplotlib import ticker

from .style import color, get_ax, to_float
from .style import to_numpy as _np

__all__ = [
    "plot_densities",
    "plot_gap_bars",
    "plot_surface",
    "plot_gap_curves",
    "plot_lines",
    "plot_measured_vs_exact",
    "plot_estimates_vs_samples",
    "plot_khat_vs_samples",
]


def _plain_log_axis(ax, which: str) -> None:
    """Log scale with plain-text tick labels (1, 10, 100, 1e+04): no mathtext to typeset."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def plot_densities(x, densities, *, ax=None, xlabel="", ylabel="density", title="", fill=True,
                   legend_loc="best"):
    """Curves ``densities[label]`` (each of shape (m,)) against ``x`` (m,), lightly filled.

    Returns a dict label -> Line2D.
    """
    ax = get_ax(ax)
    xs = _np(x)
    out = {}
    for i, (label, values) in enumerate(densities.items()):
        v = _np(values)
        (out[label],) = ax.plot(xs, v, color=color(i), lw=2, label=label)
        if fill:
            ax.fill_between(xs, v, color=color(i), alpha=0.15, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend_loc, fontsize="small")
    return out


def plot_gap_bars(labels, gap, kl, *, ax=None, title="", linthresh: float = 0.1):
    """Horizontal bars of the gap log p(x) - ELBO(q) from zero, one per q, with KL(q || p(z|x)) as points.

    The x axis is symmetric-log (linear below ``linthresh``), so gaps from 0 to ~100 nats
    are all visible; a point sitting at the end of its bar is the identity
    log p(x) - ELBO = KL. Each bar is annotated with its value.

    Parameters
    ----------
    labels : sequence of str, one per q.
    gap, kl : array-like of shape (n_q,), in nats.

    Returns
    -------
    dict with the ``bars`` container and the ``kl`` points.
    """
    ax = get_ax(ax)
    gap, kl = to_float(gap, "gap"), to_float(kl, "kl")
    pos = np.arange(len(labels))[::-1]
    bars = ax.barh(pos, gap, height=0.6, color=color(0), alpha=0.75,
                   label="log p(x) - ELBO(q)  (from the ELBO)")
    (pts,) = ax.plot(kl, pos, "D", color=color(1), mec="k", ms=8, ls="none",
                     label="KL(q || p(z|x))  (closed form)")
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    hi = max(float(np.nanmax(gap)), linthresh)
    ax.set_xlim(0, hi * 12)
    for p, g in zip(pos, gap, strict=True):
        ax.annotate(f"{g:.3g}", (max(g, 0.0), p), xytext=(12, 0), textcoords="offset points",
                    va="center", fontsize="small")
    ax.set_yticks(pos, labels)
    ax.set_ylim(-0.8, len(labels) - 0.2 + 1.3)
    ax.set_xlabel("nats (symmetric log scale)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    return {"bars": bars, "kl": pts}


def plot_surface(x, y, values, *, optimum=None, marker=None, levels=30, ax=None,
                 xlabel="", ylabel="", title="", marker_label="", optimum_label=""):
    """Filled contours of ``values`` (shape (len(y), len(x))) with optional marked points.

    Returns a dict with ``contour`` and, when given, the ``optimum`` and ``marker`` artists.
    """
    ax = get_ax(ax)
    values = _np(values)
    finite = values[np.isfinite(values)]
    lo = np.quantile(finite, 0.05) if finite.size else 0.0
    cs = ax.contourf(_np(x), _np(y), np.clip(values, lo, None), levels=levels, cmap="viridis")
    ax.figure.colorbar(cs, ax=ax, label="nats")
    out = {"contour": cs}
    if optimum is not None:
        (out["optimum"],) = ax.plot(*optimum, "o", color=color(6), mec="k", ms=11,
                                    label=optimum_label)
    if marker is not None:
        (out["marker"],) = ax.plot(*marker, "x", color=color(1), ms=12, mew=3, label=marker_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if optimum is not None or marker is not None:
        ax.legend(loc="lower left")
    return out


def plot_gap_curves(theta, gaps, touch_points, *, ax=None, xlabel="", title=""):
    """Gap curves log p(x; theta) - ELBO(q; theta) against theta, one per fixed q.

    Parameters
    ----------
    theta : array-like of shape (m,)
    gaps : dict label -> array-like of shape (m,), in nats.
    touch_points : dict label -> float, where the q was the exact posterior (gap 0), marked
        (one legend entry for all the markers).

    Returns
    -------
    dict label -> Line2D.
    """
    ax = get_ax(ax)
    th = _np(theta)
    out = {}
    for i, (label, values) in enumerate(gaps.items()):
        (out[label],) = ax.plot(th, _np(values), color=color(i), lw=2, label=label)
        ax.plot([touch_points[label]], [0.0], "o", color=color(i), mec="k", ms=8,
                label="theta0: gap 0 (q is its posterior)" if i == len(gaps) - 1 else None)
    ax.axhline(0.0, color="k", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("log p(x; theta) - ELBO(q; theta)  [nats]")
    ax.set_title(title)
    ax.legend(loc="upper center", fontsize="small")
    return out


def plot_lines(x, series, *, ax=None, xlabel="", ylabel="", title="", logx=False, logy=False,
               styles=None, legend_loc="best"):
    """Several curves ``series[label]`` (each (m,)) against ``x`` (m,); ``styles[label]`` extra kwargs.

    Returns a dict label -> Line2D.
    """
    ax = get_ax(ax)
    xs = _np(x)
    out = {}
    for i, (label, values) in enumerate(series.items()):
        kw = {"color": color(i), "lw": 2}
        kw.update((styles or {}).get(label, {}))
        (out[label],) = ax.plot(xs, _np(values), label=label, **kw)
    if logx:
        _plain_log_axis(ax, "x")
    if logy:
        _plain_log_axis(ax, "y")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend_loc, fontsize="small")
    return out


def plot_measured_vs_exact(x, measured, exact, *, ax=None, xlabel="", ylabel="", title="",
                           logx=True, logy=True, legend_loc="best"):
    """Measured values as markers and exact values as lines, one colour per method.

    Parameters
    ----------
    x : array-like of shape (m,)
    measured, exact : dict method -> array-like of shape (m,) (same keys).

    Returns
    -------
    dict method -> (markers Line2D, exact Line2D).
    """
    ax = get_ax(ax)
    xs = _np(x)
    out = {}
    for i, name in enumerate(measured):
        (m,) = ax.plot(xs, _np(measured[name]), "o", color=color(i), mec="k", ms=7,
                       label=f"{name} (measured)")
        (e,) = ax.plot(xs, _np(exact[name]), "-", color=color(i), lw=1.8, label=f"{name} (exact)")
        out[name] = (m, e)
    if logx:
        _plain_log_axis(ax, "x")
    if logy:
        _plain_log_axis(ax, "y")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend_loc, fontsize="small")
    return out


def plot_estimates_vs_samples(num_samples, estimates, exact, *, ax=None, ylabel="nats",
                              title="", z: float = 2.0, legend_loc="best"):
    """Monte Carlo estimates with +/- z standard-error bars against the number of samples.

    ``legend_loc="below"`` puts the legend under the axes (error bars can fill the panel).

    Parameters
    ----------
    num_samples : array-like of shape (m,)
    estimates : dict name -> (values (m,), stderrs (m,))
    exact : float, drawn as a horizontal line.

    Returns
    -------
    dict name -> ErrorbarContainer, plus ``exact`` -> Line2D.
    """
    ax = get_ax(ax)
    ns = to_float(num_samples, "num_samples")
    out = {}
    k = len(estimates)
    for i, (name, (vals, errs)) in enumerate(estimates.items()):
        shift = ns * (1 + 0.08 * (i - (k - 1) / 2))  # side by side on a log axis
        out[name] = ax.errorbar(shift, _np(vals), yerr=z * _np(errs), fmt="o-", capsize=3,
                                color=color(i), label=f"{name} (+/- {z:g} s.e.)")
    out["exact"] = ax.axhline(float(exact), color="k", ls="--", label="closed form")
    _plain_log_axis(ax, "x")
    ax.set_xlabel("number of samples N (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend_loc == "below":  # error bars can reach anywhere inside the axes
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, fontsize="x-small")
    else:
        ax.legend(loc=legend_loc, fontsize="small")
    return out


def plot_khat_vs_samples(num_samples, khats, *, threshold: float = 0.7, ax=None, title=""):
    """Pareto k-hat against the number of samples, one line per case, with the 0.5 and 0.7 lines.

    Parameters
    ----------
    num_samples : array-like of shape (m,)
    khats : dict label -> array-like of shape (m,) (NaN where too few draws to fit).

    Returns
    -------
    dict label -> Line2D, plus ``threshold`` -> Line2D.
    """
    ax = get_ax(ax)
    ns = to_float(num_samples, "num_samples")
    out = {}
    for i, (label, values) in enumerate(khats.items()):
        (out[label],) = ax.plot(ns, _np(values), "o-", color=color(i + 2), mec="k", lw=2, label=label)
    out["threshold"] = ax.axhline(threshold, color=color(1), ls="--", lw=1.5,
                                  label=f"{threshold:g}: error bars unreliable above")
    ax.axhline(0.5, color="0.4", ls=":", lw=1.2, label="0.5: infinite variance above")
    _plain_log_axis(ax, "x")
    ax.set_xlabel("number of samples N (log scale)")
    ax.set_ylabel("Pareto k-hat of r = p/q")
    ax.set_title(title)
    # Below the axes: k-hat curves can pass anywhere between -2 and 1.5.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, fontsize="x-small")
    return out
