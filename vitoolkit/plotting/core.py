"""Figures for the core lessons: the ELBO decomposition, ELBO surfaces, Monte Carlo error bars."""

from __future__ import annotations

import numpy as np

from .style import color, get_ax
from .style import to_numpy as _np

__all__ = [
    "plot_elbo_decomposition",
    "plot_surface",
    "plot_estimates_vs_samples",
    "plot_bound_curves",
]


def plot_elbo_decomposition(labels, elbo, kl, log_evidence, ax=None):
    """Stacked bars ELBO(q) + KL(q || p(z|x)) against the line log p(x).

    Parameters
    ----------
    labels : sequence of str, one per q.
    elbo, kl : array-like of shape (n_q,)
    log_evidence : float
    ax : matplotlib Axes, optional

    Returns
    -------
    dict with the ``elbo`` and ``kl`` bar containers and the ``evidence`` line.
    """
    ax = get_ax(ax)
    elbo, kl = _np(elbo), _np(kl)
    pos = np.arange(len(labels))
    base = min(float(elbo.min()), float(log_evidence)) - 1.0
    bars_elbo = ax.bar(pos, elbo - base, bottom=base, color=color(0), label="ELBO(q)")
    bars_kl = ax.bar(pos, kl, bottom=elbo, color=color(1), label="KL(q || p(z|x))")
    line = ax.axhline(float(log_evidence), color="k", ls="--", lw=1.5, label="log p(x) (exact)")
    ax.set_xticks(pos, labels, rotation=20, ha="right")
    span = float(log_evidence) - base
    ax.set_ylim(base, float(log_evidence) + 0.15 * span)
    ax.set_ylabel("nats")
    ax.set_title("ELBO + KL = log p(x) for every q")
    ax.legend(loc="upper right", ncols=3, fontsize="small")
    return {"elbo": bars_elbo, "kl": bars_kl, "evidence": line}


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


def plot_estimates_vs_samples(num_samples, estimates, exact, *, ax=None, ylabel="nats",
                              title="", z: float = 2.0):
    """Monte Carlo estimates with +/- z standard-error bars against the number of samples.

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
    ns = _np(num_samples).astype(float)
    out = {}
    k = len(estimates)
    for i, (name, (vals, errs)) in enumerate(estimates.items()):
        shift = ns * (1 + 0.08 * (i - (k - 1) / 2))  # side by side on a log axis
        out[name] = ax.errorbar(shift, _np(vals), yerr=z * _np(errs), fmt="o-", capsize=3,
                                color=color(i), label=f"{name} (+/- {z:g} s.e.)")
    out["exact"] = ax.axhline(float(exact), color="k", ls="--", label="closed form")
    ax.set_xscale("log")
    ax.set_xlabel("number of samples (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return out


def plot_bound_curves(theta, log_evidence, bounds, *, ax=None, xlabel="", title=""):
    """log p(x; theta) and lower bounds ELBO(q; theta) for several fixed q, against theta.

    Parameters
    ----------
    theta : array-like of shape (m,)
    log_evidence : array-like of shape (m,)
    bounds : dict label -> array-like of shape (m,)

    Returns
    -------
    dict label -> Line2D, with ``"log p(x)"`` for the evidence.
    """
    ax = get_ax(ax)
    th = _np(theta)
    out = {"log p(x)": ax.plot(th, _np(log_evidence), color="k", lw=2.5, label="log p(x)")[0]}
    for i, (label, values) in enumerate(bounds.items()):
        out[label] = ax.plot(th, _np(values), color=color(i), lw=1.8, ls="--", label=label)[0]
    ax.set_xlabel(xlabel)
    ax.set_ylabel("nats")
    ax.set_title(title)
    ax.legend()
    return out
