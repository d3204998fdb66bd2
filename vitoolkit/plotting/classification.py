"""Figures for Bayesian classification (tutorial 09): posteriors over weights, predictive
surfaces, posterior moments against a reference, reliability diagrams and costs.

Every function takes ``ax=None`` (the current axes when omitted), receives numbers already
computed by :mod:`vitoolkit.fitting` and :mod:`vitoolkit.calibration`, and returns what it
drew.
"""

from __future__ import annotations

import numpy as np

from .fitting import covariance_ellipse
from .style import color, get_ax, to_float
from .style import to_numpy as _np

__all__ = [
    "plot_posterior_2d",
    "plot_surface",
    "plot_std_vs_reference",
    "plot_mean_offsets",
    "plot_reliability",
    "plot_costs",
]


def plot_posterior_2d(axes, density, fits, *, reference_mean=None, ax=None, n_std: float = 2.0,
                      levels: int = 8, xlabel: str = "$w_1$", ylabel: str = "$w_2$"):
    """Contours of a 2-D posterior on a grid, with the ``n_std`` ellipse of each Gaussian.

    Parameters
    ----------
    axes : pair of array-like of shapes (m1,) and (m2,), the grid's coordinates
    density : array-like of shape (m1, m2), the density at the grid points (``indexing="ij"``)
    fits : dict label -> (loc (2,), covariance (2, 2))
    reference_mean : array-like of shape (2,), optional, marked with a black cross
    n_std : float

    Returns
    -------
    (QuadContourSet, dict label -> Ellipse). The legend goes outside the axes, on the right.
    """
    ax = get_ax(ax)
    x1, x2 = _np(axes[0]), _np(axes[1])
    dens = _np(density).T  # contour wants (rows = y, columns = x)
    cs = ax.contourf(x1, x2, dens, levels=levels, cmap="Greys")
    ellipses = {}
    for i, (label, (loc, cov)) in enumerate(fits.items()):
        ellipses[label] = covariance_ellipse(loc, cov, n_std=n_std, ax=ax, edgecolor=color(i),
                                             linewidth=2.2, label=label)
        m = _np(loc)
        ax.plot(m[0], m[1], marker="o", color=color(i), markersize=5, linestyle="none")
    if fits:  # one legend entry for the dots, drawn in each fit's colour
        ax.plot([], [], marker="o", color="0.45", markersize=5, linestyle="none",
                label="each fit's mean (dot)")
    if reference_mean is not None:
        m = _np(reference_mean)
        ax.plot(m[0], m[1], marker="x", color="k", markersize=9, mew=2, linestyle="none",
                label="exact posterior mean")
    ax.set_xlim(x1[0], x1[-1])
    ax.set_ylim(x2[0], x2[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return cs, ellipses


def plot_surface(x1, x2, values, *, X=None, y=None, ax=None, levels=None, cmap: str = "RdBu_r",
                 vmin=None, vmax=None, boundary=None, title: str = ""):
    """Filled contours of a function of the 2-D input, with the labelled data on top.

    Parameters
    ----------
    x1, x2 : array-like of shapes (m1,) and (m2,), the plotting grid's coordinates
    values : array-like of shape (m2, m1), the function at (x1[j], x2[i]) (``indexing="xy"``)
    X : array-like of shape (n, 2), optional, inputs; y : array-like of shape (n,), labels 0/1
    levels, cmap, vmin, vmax : passed to ``contourf``
    boundary : array-like of shape (m2, m1), optional; its 0.5 contour is drawn as a black
        line (e.g. the predictive probability, to show the decision boundary)

    The markers carry the labels "class 0 (y = 0)" and "class 1 (y = 1)" and the boundary
    "p = 0.5 (decision boundary)", so ``ax.legend()`` or a figure legend from
    ``ax.get_legend_handles_labels()`` names them.

    Returns
    -------
    QuadContourSet (for a colour bar).
    """
    ax = get_ax(ax)
    cs = ax.contourf(_np(x1), _np(x2), _np(values), levels=levels, cmap=cmap, vmin=vmin, vmax=vmax)
    if boundary is not None:
        ax.contour(_np(x1), _np(x2), _np(boundary), levels=[0.5], colors="k", linewidths=1.5)
        ax.plot([], [], color="k", lw=1.5, label="p = 0.5 (decision boundary)")  # legend entry
    if X is not None:
        X, y = _np(X), _np(y)
        for label, marker, face in ((0, "o", "white"), (1, "^", "k")):
            sel = y == label
            ax.scatter(X[sel, 0], X[sel, 1], marker=marker, s=22, facecolor=face, edgecolor="k",
                       linewidths=0.8, zorder=3, label=f"class {label} (y = {label})")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize="small")
    return cs


def plot_std_vs_reference(reference_std, stds, *, ax=None, xlabel: str = "reference posterior std",
                          ylabel: str = "approximation's std"):
    """Each approximation's marginal std against the reference's, one point per coordinate.

    Log axes and the line y = x: points below it underestimate the posterior's spread.

    Parameters
    ----------
    reference_std : array-like of shape (D,)
    stds : dict label -> array-like of shape (D,)

    Returns
    -------
    dict label -> PathCollection (and "y = x" -> Line2D)
    """
    ax = get_ax(ax)
    ref = to_float(reference_std, "reference_std")
    out = {}
    markers = ["o", "s", "D", "^", "v"]
    sizes = [60, 30, 18, 12, 8]
    for i, (label, s) in enumerate(stds.items()):
        # hollow markers of decreasing size: coinciding points of two methods stay visible
        out[label] = ax.scatter(ref, _np(s), s=sizes[i % len(sizes)], marker=markers[i % len(markers)],
                                facecolor="none", edgecolor=color(i), linewidths=1.4, label=label,
                                zorder=3)
    every = np.concatenate([ref] + [to_float(s, f"stds[{k!r}]") for k, s in stds.items()])
    lo, hi = every.min() / 1.25, every.max() * 1.25
    (out["y = x"],) = ax.plot([lo, hi], [lo, hi], color="0.3", lw=1.2, ls="--", label="y = x",
                              zorder=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    _log_ticks(ax.xaxis, lo, hi)
    _log_ticks(ax.yaxis, lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return out


def _log_ticks(axis, lo: float, hi: float) -> None:
    """Plain-number ticks at 1-2-5 steps on a log axis (no overlapping 10^x minor labels)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    candidates = [m * 10.0**e for e in range(-4, 5) for m in (1, 2, 5)]
    ticks = [t for t in candidates if lo <= t <= hi]
    if len(ticks) < 3:
        candidates = [m * 10.0**e for e in range(-4, 5) for m in (1, 2, 3, 5, 7)]
        ticks = [t for t in candidates if lo <= t <= hi]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_mean_offsets(offsets, *, ax=None, xlabel: str = "(mean - reference mean) / reference std"):
    """A strip per approximation of its mean's offset from the reference mean, per coordinate,
    in units of the reference's posterior std (0 = on target).

    Parameters
    ----------
    offsets : dict label -> array-like of shape (D,)

    Returns
    -------
    dict label -> PathCollection
    """
    ax = get_ax(ax)
    out = {}
    labels = list(offsets)
    for i, label in enumerate(labels):
        v = to_float(offsets[label], f"offsets[{label!r}]")
        row = len(labels) - 1 - i
        jitter = np.linspace(-0.18, 0.18, v.size) if v.size > 1 else np.zeros(1)
        out[label] = ax.scatter(v, row + jitter, s=20, color=color(i), edgecolor="k",
                                linewidths=0.4, alpha=0.85, zorder=3)
    ax.axvline(0.0, color="0.3", lw=1.2, ls="--", zorder=1)
    ax.set_yticks(range(len(labels)), labels[::-1])
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_xlabel(xlabel)
    return out


def plot_reliability(curves, *, ax=None, counts=None):
    """Reliability diagram: fraction of positives against mean predicted probability per bin.

    Parameters
    ----------
    curves : dict label -> (prob_pred, prob_true), e.g. from ``calibration_curve`` (which
        returns ``prob_true, prob_pred``: mind the order)
    counts : dict label -> array-like of the cases per bin, optional; marker areas are then
        proportional to the counts, so a point resting on two cases does not look like one
        resting on a hundred

    Returns
    -------
    dict label -> Line2D (and "perfectly calibrated" -> Line2D)
    """
    ax = get_ax(ax)
    out = {}
    (out["perfectly calibrated"],) = ax.plot([0, 1], [0, 1], color="0.3", lw=1.2, ls="--",
                                             label="perfectly calibrated", zorder=1)
    markers = ["o", "s", "D", "^", "v"]
    total = None
    if counts is not None:
        total = max(float(np.sum(_np(c))) for c in counts.values())
    for i, (label, (pred, true)) in enumerate(curves.items()):
        marker = markers[i % len(markers)]
        (out[label],) = ax.plot(_np(pred), _np(true), marker=marker, lw=1.2, ms=4, color=color(i),
                                label=label, alpha=0.9)
        if counts is not None:
            size = 10 + 400 * to_float(counts[label], f"counts[{label!r}]") / total
            ax.scatter(_np(pred), _np(true), s=size, marker=marker, facecolor="none",
                       edgecolor=color(i), linewidths=1.0, alpha=0.9, zorder=3)
    ax.set_xlim(-0.04, 1.04)
    ax.set_ylim(-0.04, 1.04)
    ax.set_aspect("equal")
    ax.set_xlabel("mean predicted probability (per bin)")
    ax.set_ylabel("fraction of positives (per bin)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return out


def plot_costs(labels, seconds, *, ax=None, xlabel: str = "wall time (seconds, log scale)"):
    """A dot per method at its cost, on a log axis (a dot, not a bar: on a log axis a bar's
    length depends on where the axis starts), each annotated with its value.

    Parameters
    ----------
    labels : sequence of str
    seconds : array-like of shape (len(labels),)

    Returns
    -------
    PathCollection
    """
    ax = get_ax(ax)
    sec = to_float(seconds, "seconds")
    pos = np.arange(len(labels))[::-1]
    dots = ax.scatter(sec, pos, s=70, c=[color(i) for i in range(len(labels))], edgecolor="k",
                      linewidths=0.6, zorder=3)
    ax.set_xscale("log")
    ax.set_xlim(sec.min() / 3, sec.max() * 10)
    for p, s in zip(pos, sec, strict=True):
        ax.annotate(f"{s:.3g} s", (s, p), xytext=(8, 0), textcoords="offset points", va="center",
                    fontsize="small")
    ax.set_yticks(pos, labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_xlabel(xlabel)
    return dots
