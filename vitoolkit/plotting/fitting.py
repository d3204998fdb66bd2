"""Figures for forward vs reverse KL fits: densities, covariance ellipses, sweeps.

Each function takes ``ax=None`` (the current axes when omitted) and returns what
it drew. They evaluate densities on a plotting grid but never fit anything: the
fits come from :func:`vitoolkit.fitting.fit_gaussian`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.patches import Ellipse

from ..validation import as_float_array, check_int, check_memory, check_positive, check_real
from .style import color, get_ax

__all__ = [
    "plot_density_1d",
    "plot_fits_1d",
    "plot_density_2d",
    "covariance_ellipse",
    "plot_fits_2d",
    "plot_separation_sweep",
    "plot_alpha_row",
    "plot_histories",
]


def _numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def _interval(value, name: str) -> tuple[float, float]:
    """A pair ``(lo, hi)`` of finite numbers with ``lo < hi``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be a pair (lo, hi), got {value!r}")
    lo, hi = check_real(value[0], f"{name}[0]"), check_real(value[1], f"{name}[1]")
    if not lo < hi:
        raise ValueError(f"{name} must have lo < hi, got {value!r}")
    return lo, hi


def _log_prob(dist, points: np.ndarray) -> np.ndarray:
    x = torch.as_tensor(points, dtype=torch.float64)
    with torch.no_grad():
        return dist.log_prob(x).double().numpy()


def plot_density_1d(dist, bounds, *, ax=None, num_points: int = 600, fill: bool = False,
                    **kwargs):
    """The density of a 1-D distribution (event shape ()) over ``bounds = (lo, hi)``.

    Returns the ``Line2D`` (and fills under it when ``fill``).
    """
    lo, hi = _interval(bounds, "bounds")
    num_points = check_int(num_points, "num_points", minimum=2)
    check_memory(8 * 4 * num_points, "num_points", num_points, "the density grid")
    ax = get_ax(ax)
    x = np.linspace(lo, hi, num_points)
    y = np.exp(_log_prob(dist, x))
    (line,) = ax.plot(x, y, **kwargs)
    if fill:
        ax.fill_between(x, y, color=line.get_color(), alpha=0.25, linewidth=0)
    return line


def plot_fits_1d(target, fits, labels, bounds, *, ax=None, xlabel: str = "x"):
    """A 1-D target (shaded) with the densities of fitted Gaussians.

    Parameters
    ----------
    target : torch distribution with event shape ()
    fits : sequence of GaussianFit
    labels : sequence of str, one per fit
    bounds : (lo, hi)

    Returns
    -------
    list of Line2D (target first).

    The y-axis gets head-room above the highest density, where the legend goes, so
    the legend never covers a curve.
    """
    ax = get_ax(ax)
    lines = [plot_density_1d(target, bounds, ax=ax, fill=True, color="0.45", label="target p")]
    for i, (fit, label) in enumerate(zip(fits, labels, strict=True)):
        lines.append(plot_density_1d(fit.distribution, bounds, ax=ax, color=color(i),
                                     linewidth=2.2, label=label))
    top = max(float(np.max(line.get_ydata())) for line in lines)
    ax.set_ylim(-0.02 * top, (1.2 + 0.12 * len(lines)) * top)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize="small", loc="upper center")
    return lines


def plot_density_2d(dist, bounds, *, ax=None, num_points: int = 160, levels: int = 12,
                    cmap: str = "Greys"):
    """Filled contours of a 2-D density over ``bounds = [(x_lo, x_hi), (y_lo, y_hi)]``."""
    if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__len__") or len(bounds) != 2:
        raise ValueError(f"bounds must be [(x_lo, x_hi), (y_lo, y_hi)], got {bounds!r}")
    x_bounds, y_bounds = _interval(bounds[0], "bounds[0]"), _interval(bounds[1], "bounds[1]")
    num_points = check_int(num_points, "num_points", minimum=2)
    levels = check_int(levels, "levels", minimum=1)
    # the grid, its points (2 columns) and the densities, float64
    check_memory(8 * 6 * num_points**2, "num_points", num_points, "the 2-D density grid")
    ax = get_ax(ax)
    xs = np.linspace(*x_bounds, num_points)
    ys = np.linspace(*y_bounds, num_points)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    dens = np.exp(_log_prob(dist, np.stack([gx, gy], -1)))
    return ax.contourf(gx, gy, dens, levels=levels, cmap=cmap)


def covariance_ellipse(loc, covariance, *, n_std: float = 2.0, ax=None, **kwargs) -> Ellipse:
    """The ``n_std``-standard-deviation ellipse of N(loc, covariance) in 2-D.

    Axes along the covariance's eigenvectors, half-lengths n_std sqrt(eigenvalue).
    """
    loc = as_float_array(loc, "loc", ndim=1)
    cov = as_float_array(covariance, "covariance", ndim=2)
    if loc.shape != (2,) or cov.shape != (2, 2):
        raise ValueError(f"loc and covariance must have shapes (2,) and (2, 2), got {loc.shape} "
                         f"and {cov.shape}")
    if not np.allclose(cov, cov.T, rtol=1e-8, atol=1e-12 * max(1.0, float(np.abs(cov).max()))):
        raise ValueError("covariance must be symmetric")
    n_std = check_positive(n_std, "n_std")
    ax = get_ax(ax)
    vals, vecs = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vecs[1, -1], vecs[0, -1]))
    width, height = 2 * n_std * np.sqrt(np.clip(vals[::-1], 0, None))
    kwargs.setdefault("fill", False)
    ell = Ellipse(tuple(loc), width, height, angle=angle, **kwargs)
    ax.add_patch(ell)
    return ell


def plot_fits_2d(target, fits, labels, bounds, *, ax=None, n_std: float = 2.0,
                 show_means: bool = True, legend_outside: bool = False):
    """A 2-D target's contours with the ``n_std`` ellipse (and mean) of each fit.

    ``legend_outside`` puts the legend to the right of the axes (where it cannot
    cover the density or an ellipse) instead of in its upper right corner.

    Returns ``(contour_set, [Ellipse, ...])``.
    """
    ax = get_ax(ax)
    cs = plot_density_2d(target, bounds, ax=ax)
    ellipses = []
    for i, (fit, label) in enumerate(zip(fits, labels, strict=True)):
        ellipses.append(covariance_ellipse(fit.loc, fit.covariance, n_std=n_std, ax=ax,
                                           edgecolor=color(i), linewidth=2.2, label=label))
        if show_means:
            m = _numpy(fit.loc)
            ax.plot(m[0], m[1], marker="x", color=color(i), markersize=8, linestyle="none")
    ax.set_xlim(*bounds[0])
    ax.set_ylim(*bounds[1])
    ax.set_aspect("equal")  # a circle looks like a circle: widths compare across axes
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if any(labels):
        if legend_outside:
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      borderaxespad=0)
        else:
            ax.legend(fontsize="small", loc="upper right")
    return cs, ellipses


def plot_separation_sweep(separations, series: dict, *, ax=None, ylabel: str = "fitted std"):
    """Lines of a fitted quantity (e.g. std) against the mode separation.

    ``series`` maps a label to values, one per separation. Returns the lines.
    """
    ax = get_ax(ax)
    s = _numpy(separations)
    lines = []
    for i, (label, values) in enumerate(series.items()):
        (line,) = ax.plot(s, _numpy(values), marker="o", markersize=4, color=color(i),
                          label=label)
        lines.append(line)
    ax.set_xlabel("separation between the two modes")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    return lines


def plot_alpha_row(target, fits, bounds, axes, *, n_std: float = 2.0, ylabel: str | None = None):
    """One panel per alpha: the 2-D target and the alpha fit's ellipse.

    ``axes`` is a sequence of Axes, one per fit (in the order of ``fits``).
    Returns the list of ellipses.
    """
    ellipses = []
    for i, (ax, fit) in enumerate(zip(axes, fits, strict=True)):
        plot_density_2d(target, bounds, ax=ax, num_points=110, levels=10)
        hue = color(1) if fit.alpha < 0.5 else color(0)
        ellipses.append(covariance_ellipse(fit.loc, fit.covariance, n_std=n_std, ax=ax,
                                           edgecolor=hue, linewidth=2.2))
        ax.set_title(f"alpha = {fit.alpha:g}", fontsize="small")
        ax.set_xlim(*bounds[0])
        ax.set_ylim(*bounds[1])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("$x_1$", fontsize="small")
        if i == 0:
            ax.set_ylabel(ylabel or "$x_2$", fontsize="small")
    return ellipses


def plot_histories(fits, labels, *, ax=None, relative: bool = True):
    """Objective per optimiser step for several fits.

    With ``relative``, plots objective - final objective (log scale), which shows
    the convergence rate. Returns the lines.
    """
    ax = get_ax(ax)
    lines = []
    for i, (fit, label) in enumerate(zip(fits, labels, strict=True)):
        h = np.asarray(fit.history, dtype=float)
        if h.size == 0:
            raise ValueError(f"fit {label!r} has an empty history (method={fit.method!r} "
                             "fits in closed form, with no optimiser steps)")
        y = np.maximum(h - h[-1], 1e-16) if relative else h
        (line,) = ax.plot(np.arange(1, len(h) + 1), y, color=color(i), label=label)
        lines.append(line)
    if relative:
        ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("objective - final" if relative else "objective")
    ax.legend(fontsize="small")
    return lines
