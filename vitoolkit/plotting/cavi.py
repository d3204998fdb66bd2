"""Figures for mean-field CAVI on Gaussian mixtures (tutorial 02).

Each function takes ``ax=None``, draws numbers already computed by
:mod:`vitoolkit.cavi` (or any other source), and returns what it drew. Titles
are left to the caller, who knows the finding to state.
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Circle, Ellipse

from .style import color, get_ax, to_float

__all__ = [
    "plot_elbo_steps",
    "plot_mean_intervals",
    "plot_mean_paths_2d",
    "plot_gaussian_ellipses",
    "plot_restart_elbos",
    "plot_evidence_gap",
    "plot_weights",
    "plot_svi_trace",
]


def plot_elbo_steps(step_elbo, ax=None, *, skip_init: bool = True):
    """The ELBO after every coordinate update.

    Parameters
    ----------
    step_elbo : sequence of (iteration, factor, elbo)
        As recorded by ``UnitVarianceGMM(record_steps=True).step_elbo_`` or
        ``BayesianGMM(check_monotonic=True).step_elbo_``.
    skip_init : bool
        Leave out the initial state (its ELBO is often far below the rest).

    Returns
    -------
    list of the Line2D objects drawn (the trace, then one marker series per factor kind).
    """
    ax = get_ax(ax)
    steps = [s for s in step_elbo if not (skip_init and s[1] == "init")]
    if not steps:
        raise ValueError("step_elbo is empty")
    values = np.array([s[2] for s in steps])
    x = np.arange(len(steps))
    drawn = ax.plot(x, values, color="0.6", lw=1, zorder=1)
    kinds = []
    for _, name, _ in steps:
        kind = name.split("_")[0]
        if kind not in kinds:
            kinds.append(kind)
    for i, kind in enumerate(kinds):
        sel = [j for j, s in enumerate(steps) if s[1].split("_")[0] == kind]
        label = {"c": "update q(c) (all points)", "mu": "update a q(mu_k)"}.get(kind,
                                                                              f"update {kind}")
        drawn += ax.plot(x[sel], values[sel], "o", ms=4, color=color(i), label=label, zorder=2)
    starts = [j for j, s in enumerate(steps) if j > 0 and s[0] != steps[j - 1][0]]
    for j in starts:
        ax.axvline(j - 0.5, color="0.85", lw=0.8, zorder=0)
    ax.set_xlabel("coordinate update (grey lines: iteration boundaries)")
    ax.set_ylabel("ELBO (nats)")
    ax.legend(loc="lower right")
    return drawn


def plot_mean_intervals(means_history, variances_history, ax=None, *, width: float = 2.0,
                        reference=None):
    """1-D: each q(mu_k) as m_k +/- width * s_k against the iteration.

    Parameters
    ----------
    means_history : sequence of arrays of shape (K, 1)
    variances_history : sequence of arrays of shape (K,)
    reference : array of shape (R,), optional
        Values to mark with dotted horizontal lines (e.g. the means the data were drawn from),
        in the legend as "true means".

    Returns
    -------
    list of (Line2D, PolyCollection), one per component.

    The legend sits in one row above the data, in head-room added to the y-axis, so
    it never covers a band.
    """
    ax = get_ax(ax)
    means = np.array([np.asarray(m).reshape(-1) for m in means_history])  # (T, K)
    sds = np.sqrt(np.array([np.asarray(v).reshape(-1) for v in variances_history]))
    it = np.arange(means.shape[0])
    drawn = []
    for k in range(means.shape[1]):
        (line,) = ax.plot(it, means[:, k], color=color(k), marker="o", ms=3,
                          label=f"q(mu_{k + 1})")
        band = ax.fill_between(it, means[:, k] - width * sds[:, k],
                               means[:, k] + width * sds[:, k], color=color(k), alpha=0.25)
        drawn.append((line, band))
    lo = float(np.min(means - width * sds))
    hi = float(np.max(means + width * sds))
    if reference is not None:
        for i, r in enumerate(to_float(reference, "reference").reshape(-1)):
            ax.axhline(r, color="0.5", ls=":", lw=1, zorder=0, label="true means" if i == 0 else None)
        lo = min(lo, float(np.min(reference)))
        hi = max(hi, float(np.max(reference)))
    span = hi - lo if hi > lo else 1.0
    # head-room for the legend: one row, or two when the reference lines have an entry
    ax.set_ylim(lo - 0.05 * span, hi + (0.45 if reference is not None else 0.3) * span)
    ax.set_xlabel("CAVI iteration (0 = initialisation)")
    ax.set_ylabel(f"m_k +/- {width:g} s_k")
    ax.legend(loc="upper center", ncols=means.shape[1], fontsize="small", handlelength=1.2,
              columnspacing=1.0)
    return drawn


def plot_mean_paths_2d(X, means_history, variances_history, ax=None, *, width: float = 2.0,
                       show=(0, 1, 2, -1)):
    """2-D: the data, the path of every m_k, and circles of radius width * s_k at the
    iterations in ``show``.

    Parameters
    ----------
    X : array of shape (n, 2)
    means_history : sequence of arrays of shape (K, 2)
    variances_history : sequence of arrays of shape (K,)

    Returns
    -------
    dict with "points" (PathCollection), "paths" (list of Line2D), "circles" (list of Circle).
    """
    ax = get_ax(ax)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (n, 2), got {X.shape}")
    means = np.array(means_history)  # (T, K, 2)
    sds = np.sqrt(np.array(variances_history))  # (T, K)
    points = ax.scatter(X[:, 0], X[:, 1], s=4, color="0.6", alpha=0.5, label="data")
    paths, circles = [], []
    T = means.shape[0]
    for k in range(means.shape[1]):
        (line,) = ax.plot(means[:, k, 0], means[:, k, 1], "-o", ms=3, color=color(k),
                          label=f"path of m_{k + 1}")
        paths.append(line)
        for t in sorted({s % T for s in show}):
            circ = Circle(means[t, k], width * sds[t, k], fill=False, color=color(k),
                          lw=1.5 if t == T - 1 else 0.8, ls="-" if t == T - 1 else "--")
            ax.add_patch(circ)
            circles.append(circ)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    ax.legend(loc="best", fontsize="small")
    return {"points": points, "paths": paths, "circles": circles}


def plot_gaussian_ellipses(X, means, covariances, weights, ax=None, *, min_weight=0.01,
                           n_std: float = 2.0, label=None):
    """The data and one ellipse (n_std standard deviations) per component whose weight is at
    least ``min_weight``; line width grows with the weight.

    Parameters
    ----------
    X : array of shape (n, 2)
    means : array of shape (K, 2)
    covariances : array of shape (K, 2, 2) or (K, 2) (diagonal)
    weights : array of shape (K,)

    Returns
    -------
    list of the Ellipse patches drawn.
    """
    ax = get_ax(ax)
    X, means, weights = np.asarray(X), np.asarray(means), np.asarray(weights)
    cov = np.asarray(covariances)
    if cov.ndim == 2:
        cov = np.stack([np.diag(c) for c in cov])
    ax.scatter(X[:, 0], X[:, 1], s=3, color="0.65", alpha=0.5)
    drawn = []
    for k in np.flatnonzero(weights >= min_weight):
        vals, vecs = np.linalg.eigh(cov[k])
        angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
        ell = Ellipse(means[k], 2 * n_std * np.sqrt(vals[-1]), 2 * n_std * np.sqrt(vals[0]),
                      angle=angle, fill=False, color=color(len(drawn)),
                      lw=0.8 + 6 * weights[k], label=label if not drawn else None)
        ax.add_patch(ell)
        drawn.append(ell)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    return drawn


def plot_restart_elbos(elbos, groups, ax=None):
    """Final ELBO of each restart, coloured by the optimum it landed in.

    Parameters
    ----------
    elbos : array of shape (R,)
    groups : array of shape (R,) of int
        Which optimum each restart reached (e.g. the rank of its rounded ELBO).

    Returns
    -------
    list of PathCollections, one per optimum.
    """
    ax = get_ax(ax)
    elbos, groups = to_float(elbos, "elbos"), np.asarray(groups)
    drawn = []
    for g in np.unique(groups):
        sel = np.flatnonzero(groups == g)
        drawn.append(ax.scatter(sel, elbos[sel], s=40, color=color(int(g)),
                                label=f"optimum {int(g) + 1}: ELBO {elbos[sel].mean():.1f}"))
    ax.set_xlabel("restart (random initialisation)")
    ax.set_ylabel("final ELBO (nats)")
    ax.legend(loc="best", fontsize="small")
    return drawn


def plot_evidence_gap(labels, log_evidence, elbo, ax=None, *, reference=None,
                      reference_label="log K!"):
    """The gap log p(x) - ELBO (= KL(q || posterior)) for several problems.

    Parameters
    ----------
    labels : sequence of str, length P
    log_evidence, elbo : arrays of shape (P,)
    reference : array of shape (P,), optional
        A value to compare each gap with (e.g. log K!), drawn as a marker.

    Returns
    -------
    list: the BarContainer, then the reference Line2D if drawn.
    """
    ax = get_ax(ax)
    x = np.arange(len(labels))
    log_evidence, elbo = np.asarray(log_evidence, float), np.asarray(elbo, float)
    gap = log_evidence - elbo
    drawn = [ax.bar(x, gap, 0.6, color=color(0), label="log p(x) - best ELBO")]
    if reference is not None:
        drawn += ax.plot(x, np.asarray(reference, float), "D", ms=9, color=color(1),
                         label=reference_label)
    tops = gap if reference is None else np.maximum(gap, np.asarray(reference, float))
    for xi, top, ev, lb in zip(x, tops, log_evidence, elbo, strict=True):
        # above both the bar and the reference marker, so the text hides neither
        ax.annotate(f"log p(x) = {ev:.3f}\nELBO = {lb:.3f}", (xi, max(top, 0)),
                    textcoords="offset points", xytext=(0, 8), ha="center", va="bottom",
                    fontsize="x-small")
    ax.set_xticks(x, labels)
    top = max(gap.max(), 0 if reference is None else np.max(reference)) * 1.35 + 0.1
    # a little room below 0, so a marker at a zero gap is drawn whole
    ax.set_ylim(-0.04 * top, top)
    ax.axhline(0, color="0.3", lw=0.8, zorder=0)
    ax.set_ylabel("gap (nats)")
    ax.legend(loc="upper left", fontsize="small")
    return drawn


def plot_weights(weights: dict, ax=None):
    """Grouped bars of mixture weights, one group per component, one colour per method.

    Parameters
    ----------
    weights : dict of name -> array of shape (K,)
        Each sorted as the caller wishes (e.g. decreasing).

    Returns
    -------
    list of BarContainers.
    """
    ax = get_ax(ax)
    names = list(weights)
    K = max(len(np.asarray(w)) for w in weights.values())
    x = np.arange(K)
    width = 0.8 / len(names)
    drawn = []
    for i, name in enumerate(names):
        w = to_float(weights[name], f"weights[{name!r}]")
        drawn.append(ax.bar(x[: len(w)] + (i - (len(names) - 1) / 2) * width, w, width,
                            color=color(i), label=name))
    ax.set_xticks(x, [str(k + 1) for k in x])
    ax.set_xlabel("component (sorted by weight)")
    ax.set_ylabel("mixture weight")
    ax.legend(loc="upper right", fontsize="small")
    return drawn


def plot_svi_trace(points_seen, elbo_per_point, reference, ax=None, *, exact=None,
                   reference_label="batch CAVI", window: int = 20):
    """Stochastic VI's noisy ELBO-per-point estimates against the points streamed.

    Parameters
    ----------
    points_seen : array of shape (T,)
    elbo_per_point : array of shape (T,)
        The per-step estimates (e.g. ``elbo_history_ / total_samples``).
    reference : float
        The batch fit's ELBO per point (horizontal line).
    exact : (array of shape (E,), array of shape (E,)), optional
        Exact ELBO-per-point evaluations at some points of the stream.
    window : int
        Width of the running mean drawn over the estimates.

    Returns
    -------
    list of the artists drawn.
    """
    ax = get_ax(ax)
    x, y = np.asarray(points_seen, float), np.asarray(elbo_per_point, float)
    drawn = ax.plot(x, y, color=color(0), alpha=0.3, lw=0.8, label="SVI mini-batch estimate")
    if len(y) >= window:
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")
        drawn += ax.plot(x[window - 1 :], smooth, color=color(0), lw=2,
                         label=f"running mean ({window} steps)")
    if exact is not None:
        drawn += ax.plot(exact[0], exact[1], "s", color=color(2), label="SVI exact ELBO")
    drawn.append(ax.axhline(reference, color=color(1), ls="--", label=reference_label))
    ax.set_xscale("log")
    ax.set_xlabel("points streamed")
    ax.set_ylabel("ELBO per point (nats)")
    # the noisy estimates fill the axes: the legend goes outside, to the right
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0)
    return drawn
