"""Figures for the discrete-latent and wake-sleep lessons (tutorials 07 and 08).

Every function takes ``ax=None`` (current axes when omitted), returns what it
drew, and only arranges numbers it is given: gradient variances, bounds and
code counts are computed by :mod:`vitoolkit.vae` before they get here.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import NullFormatter

from .style import color, get_ax, to_float
from .style import to_numpy as _np

__all__ = [
    "plot_grouped_bars",
    "plot_sweep",
    "plot_codebook_usage",
    "plot_curves_xy",
    "plot_ratio_bars",
]


def _legend_outside(ax, **kwargs):
    """A legend off the data: below a figure's only axes, else to the right of ``ax``.

    Below, as a figure legend placed by constrained layout, the axes keep the
    figure's width (a legend beside a lone axes squeezes it under its own title).
    """
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    fig = ax.figure
    if len(fig.get_axes()) == 1 and isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        handles, labels = ax.get_legend_handles_labels()
        return fig.legend(handles, labels, loc="outside lower center", fontsize="small",
                          ncols=min(len(labels), 2), **kwargs)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                     borderaxespad=0.0, **kwargs)


def plot_grouped_bars(values: dict, *, ax=None, log: bool = True, ylabel: str = "",
                      title: str = "", errors: dict | None = None, legend: bool = True):
    """Bars grouped along x: ``values[group][series]`` (e.g. checkpoint -> estimator -> variance).

    Parameters
    ----------
    values : dict of group label -> dict of series label -> float
        Every group must have the same series, in the same order.
    log : bool
        Logarithmic y axis (for quantities spanning orders of magnitude).
    errors : dict shaped like ``values``, optional
        Standard errors, drawn as error bars.
    legend : bool
        Draw the legend off the data (``False``: the caller adds more and draws it).

    Returns
    -------
    list of BarContainer, one per series.
    """
    ax = get_ax(ax)
    groups = list(values)
    series = list(values[groups[0]])
    if any(list(values[g]) != series for g in groups):
        raise ValueError("every group must list the same series in the same order")
    width = 0.8 / len(series)
    pos = np.arange(len(groups), dtype=float)
    drawn = []
    for i, name in enumerate(series):
        heights = np.array([float(values[g][name]) for g in groups])
        err = None if errors is None else np.array([float(errors[g][name]) for g in groups])
        drawn.append(ax.bar(pos + (i - (len(series) - 1) / 2) * width, heights, width,
                            yerr=err, color=color(i), label=name, capsize=2))
    ax.set_xticks(pos, groups)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        _legend_outside(ax)
    return drawn


def plot_sweep(x, series: dict, *, ax=None, errors: dict | None = None, logx: bool = True,
               logy: bool = True, xlabel: str = "", ylabel: str = "", title: str = "",
               legend: bool = True):
    """One line with markers per named sequence over a common ``x`` (e.g. a temperature ladder).

    Parameters
    ----------
    x : array-like of shape (m,)
    series : dict of name -> array-like of shape (m,)
    errors : dict of name -> array-like of shape (m,), optional (error bars)

    Returns
    -------
    list of the drawn containers (one per series).
    """
    ax = get_ax(ax)
    x = to_float(x, "x")
    drawn = []
    for i, (name, values) in enumerate(series.items()):
        err = None if errors is None or name not in errors else to_float(errors[name], f"errors[{name!r}]")
        drawn.append(ax.errorbar(x, to_float(values, f"series[{name!r}]"), yerr=err, marker="o",
                                 color=color(i), label=name, capsize=2))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend and len(series) > 1:
        ax.legend(loc="best", fontsize="small")
    return drawn


def plot_codebook_usage(counts: dict, *, ax=None, title: str = "",
                        ylabel: str = "share of selections"):
    """Code frequencies, most used first, one step line per model.

    Parameters
    ----------
    counts : dict of name -> array-like of shape (K,), selections per code

    Returns
    -------
    list of Line2D.
    """
    ax = get_ax(ax)
    lines = []
    for i, (name, c) in enumerate(counts.items()):
        c = np.sort(to_float(c, f"counts[{name!r}]"))[::-1]
        share = c / c.sum()
        (line,) = ax.step(np.arange(1, len(c) + 1), share, where="mid", color=color(i),
                          label=name, lw=2)
        lines.append(line)
    ax.set_xlabel("code rank (most used first)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    if title:
        ax.set_title(title)
    if len(counts) > 1:
        _legend_outside(ax)
    return lines


def plot_curves_xy(curves: dict, *, ax=None, styles: dict | None = None, logx: bool = False,
                   xlabel: str = "", ylabel: str = "", title: str = "", legend: str = "best",
                   ylim=None):
    """Lines through (x, y) pairs: ``curves[name] = (x, y)``.

    Parameters
    ----------
    curves : dict of name -> (array-like (m,), array-like (m,))
    styles : dict of name -> dict of Line2D keyword arguments, optional
        Default: the palette in order, solid lines.
    legend : {"best", "outside", "none"}
    ylim : (low, high), optional

    Returns
    -------
    list of Line2D.
    """
    ax = get_ax(ax)
    lines = []
    for i, (name, (x, y)) in enumerate(curves.items()):
        style = {"color": color(i)}
        if styles and name in styles:
            style.update(styles[name])
        xs, ys = to_float(x, f"curves[{name!r}] x"), to_float(y, f"curves[{name!r}] y")
        (line,) = ax.plot(xs, ys, label=name, **style)
        lines.append(line)
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: no crowding
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend == "outside":
        _legend_outside(ax)
    elif legend == "best" and len(curves) > 1:
        ax.legend(loc="best", fontsize="small")
    return lines


def plot_ratio_bars(names, ratios, *, ax=None, references: dict | None = None,
                    errors=None, ylabel: str = "", title: str = ""):
    """Bars of one ratio per setting with labelled horizontal reference levels.

    Parameters
    ----------
    names : sequence of str
    ratios : array-like of shape (len(names),)
    references : dict of label -> float, optional
        Dashed horizontal lines (e.g. 1 = the true posterior's width).
    errors : array-like of shape (len(names),), optional

    Returns
    -------
    BarContainer.
    """
    ax = get_ax(ax)
    ratios = to_float(ratios, "ratios")
    bars = ax.bar(range(len(ratios)), ratios, yerr=None if errors is None else _np(errors),
                  color=[color(i) for i in range(len(ratios))], capsize=3)
    for j, (label, level) in enumerate((references or {}).items()):
        ax.axhline(float(level), color="0.2", ls=["--", ":", "-."][j % 3], lw=1.5, label=label)
    ax.set_xticks(range(len(ratios)), list(names), rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    top = max(float(ratios.max()), *(float(v) for v in (references or {}).values()), 0.0)
    ax.set_ylim(0, 1.15 * top)
    if title:
        ax.set_title(title)
    if references:
        _legend_outside(ax)
    return bars
