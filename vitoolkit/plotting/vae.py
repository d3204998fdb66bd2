"""Figures for the VAE lesson: image grids, reconstructions, latent scatter, manifold, curves.

Every function takes ``ax=None`` (current axes when omitted), returns what it
drew, and only arranges numbers it is given: images are already decoded,
codes already encoded, histories already recorded.
"""

from __future__ import annotations

import matplotlib
import matplotlib.ticker
import numpy as np

from .images import image_shape_of as _image_shape
from .images import plot_image_grid, tile_images
from .style import color, get_ax, to_float
from .style import to_numpy as _np

_color = color

__all__ = [
    "tile_images",
    "plot_image_grid",
    "plot_reconstructions",
    "plot_latent_scatter",
    "plot_manifold",
    "plot_training_curves",
    "plot_metric_bars",
    "plot_curves",
    "plot_density_contours",
    "plot_correlation_matrix",
]


def plot_reconstructions(originals, reconstructions: dict, image_shape=None, *, ax=None,
                         title: str = ""):
    """One row of originals, then one row per entry of ``reconstructions`` (label -> (n, H*W)).

    Returns the ``AxesImage``; rows are labelled on the y axis.
    """
    ax = get_ax(ax)
    originals = _np(originals)
    rows = [originals] + [_np(r) for r in reconstructions.values()]
    n = originals.shape[0]
    if any(r.shape != originals.shape for r in rows):
        raise ValueError("every reconstruction must have the originals' shape "
                         f"{originals.shape}")
    im = plot_image_grid(np.concatenate(rows), image_shape, ncols=n, ax=ax, title=title)
    h, _ = _image_shape(image_shape, originals.shape[1])
    labels = ["data", *reconstructions.keys()]
    ax.set_yticks([(h + 1) * i + h / 2 - 0.5 for i in range(len(labels))])
    ax.set_yticklabels(labels)
    return im


def plot_latent_scatter(codes, labels=None, *, ax=None, title: str = "", dims=(0, 1),
                        size: float = 8.0, legend="outside", color=None,
                        label: str | None = None):
    """Scatter two latent coordinates of ``codes`` (n, latent_dim), coloured by ``labels``.

    Without ``labels`` every point takes ``color`` (default the first palette
    colour) and the legend entry ``label``. ``legend`` is ``"outside"`` (default:
    to the right of the axes, where it hides no point), ``"best"`` / ``True``
    (inside, matplotlib's least crowded corner), or ``False``. Returns the list
    of ``PathCollection`` (one per label value).
    """
    ax = get_ax(ax)
    codes = _np(codes)
    if codes.ndim != 2 or codes.shape[1] < 2 and dims != (0, 0):
        raise ValueError(f"codes must have shape (n, >=2), got {codes.shape}")
    a, b = dims
    drawn = []
    if labels is None:
        drawn.append(ax.scatter(codes[:, a], codes[:, b], s=size, alpha=0.7, linewidths=0,
                                color=_color(0) if color is None else color, label=label))
    else:
        labels = _np(labels)
        cmap = matplotlib.colormaps["tab10"]
        for i, value in enumerate(np.unique(labels)):
            sel = labels == value
            drawn.append(ax.scatter(codes[sel, a], codes[sel, b], s=size, alpha=0.7,
                                    color=cmap(i % 10), label=str(value), linewidths=0))
    ax.set_xlabel(f"z[{a}]")
    ax.set_ylabel(f"z[{b}]")
    # At most 5 ticks per axis, so long labels (collapsed codes: -0.0025) never overlap.
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
    if title:
        ax.set_title(title)
    if legend and (len(drawn) > 1 or label):
        where = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0) \
            if legend == "outside" else dict(loc="best")
        ax.legend(markerscale=2, fontsize="x-small", ncol=1 if legend == "outside" else 2,
                  title=None if labels is None else "label", **where)
    return drawn


def plot_manifold(images, grid_values, image_shape=None, *, ax=None, title: str = "",
                  cmap: str = "gray_r"):
    """The decoded 2-D latent grid (Kingma & Welling 2013, Fig. 4).

    Parameters
    ----------
    images : array of shape (g * g, H*W)
        Decoded means, row-major over (z[1] from high to low, z[0] from low to high).
    grid_values : array of shape (g,)
        The z values of the grid along each axis (ascending).
    """
    ax = get_ax(ax)
    grid_values = _np(grid_values)
    g = len(grid_values)
    images = _np(images)
    if images.shape[0] != g * g:
        raise ValueError(f"images must have g*g = {g * g} rows for {g} grid values, "
                         f"got {images.shape[0]}")
    mosaic = tile_images(images, image_shape, ncols=g, pad=0)
    lo, hi = float(grid_values[0]), float(grid_values[-1])
    half = (hi - lo) / (g - 1) / 2 if g > 1 else 0.5
    im = ax.imshow(mosaic, cmap=cmap, vmin=0, vmax=1, interpolation="nearest",
                   extent=(lo - half, hi + half, lo - half, hi + half))
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return im


def plot_training_curves(histories: dict, key: str = "val_elbo", *, ax=None, title: str = "",
                         ylabel: str = "nats per example"):
    """One line per run: ``histories`` maps a label to a History (or a dict of lists).

    Returns the list of ``Line2D``.
    """
    ax = get_ax(ax)
    lines = []
    for i, (label, hist) in enumerate(histories.items()):
        values = hist[key] if isinstance(hist, dict) else getattr(hist, key)
        epochs = hist["epoch"] if isinstance(hist, dict) else hist.epoch
        (line,) = ax.plot(epochs[: len(values)], values, color=color(i), label=label)
        lines.append(line)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(lines) > 1:
        ax.legend(fontsize="small", loc="best")
    return lines


def plot_metric_bars(names, values, errors=None, *, ax=None, title: str = "",
                     ylabel: str = "nats per example"):
    """Bars of one number per setting (``names``), with optional error bars; returns the bars."""
    ax = get_ax(ax)
    values = to_float(values, "values")
    err = None if errors is None else to_float(errors, "errors")
    bars = ax.bar(range(len(values)), values, yerr=err, capsize=4,
                  color=[color(i) for i in range(len(values))])
    ax.set_xticks(range(len(values)))
    # Rotated far enough that long setting names never run into each other.
    ax.set_xticklabels(list(names), rotation=30, ha="right", rotation_mode="anchor",
                       fontsize="small")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return bars


def plot_curves(x, curves: dict, *, ax=None, bands: dict | None = None, title: str = "",
                xlabel: str = "", ylabel: str = "", styles: dict | None = None,
                legend_loc: str = "best"):
    """One line per entry of ``curves`` (label -> y values at ``x``), with optional bands.

    Parameters
    ----------
    x : array of shape (m,), or a dict label -> x values for curves on their own grids
    curves : dict label -> array of shape (m,)
    bands : dict label -> half-width array (m,), optional
        Shaded +/- band around the curve of that label (e.g. 2 standard errors).
    styles : dict label -> dict of ``ax.plot`` keyword arguments, optional
    legend_loc : str
        ``"outside"`` puts the legend to the right of the axes.

    Returns
    -------
    dict label -> Line2D.
    """
    ax = get_ax(ax)
    out = {}
    for i, (label, y) in enumerate(curves.items()):
        xs = to_float(x[label] if isinstance(x, dict) else x, "x")
        ys = to_float(y, f"curves[{label!r}]")
        kw = {"color": color(i), "lw": 2.0}
        kw.update((styles or {}).get(label, {}))
        (out[label],) = ax.plot(xs, ys, label=label, **kw)
        if bands and label in bands:
            half = to_float(bands[label], f"bands[{label!r}]")
            ax.fill_between(xs, ys - half, ys + half, color=out[label].get_color(), alpha=0.2,
                            linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(out) > 1 or (len(out) == 1 and not next(iter(out)).startswith("_")):
        if legend_loc == "outside":
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      borderaxespad=0.0)
        else:
            ax.legend(fontsize="small", loc=legend_loc)
    return out


def plot_density_contours(x, y, density, reference=None, *, ax=None, title: str = "",
                          levels: int = 12, reference_label: str = "reference",
                          colorbar_label: str = "density"):
    """Filled contours of ``density`` (shape (len(y), len(x))), optionally with the line
    contours of a ``reference`` density on the same grid (e.g. the prior).

    Both densities are drawn on the same levels, so a reference that matches the
    filled density has its lines on the colour boundaries. Returns a dict with
    ``filled`` and, when given, ``reference``.
    """
    ax = get_ax(ax)
    d = to_float(density, "density")
    lv = np.linspace(0.0, float(np.nanmax(d)), levels + 1)
    out = {"filled": ax.contourf(_np(x), _np(y), d, levels=lv, cmap="Blues")}
    ax.figure.colorbar(out["filled"], ax=ax, label=colorbar_label, format="%.2f")
    if reference is not None:
        r = to_float(reference, "reference")
        out["reference"] = ax.contour(_np(x), _np(y), r, levels=lv[1::2], colors="k",
                                      linewidths=1.0, linestyles="--")
    ax.set_aspect("equal")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    if title:
        ax.set_title(title)
    return out


def plot_correlation_matrix(corr, labels=None, *, ax=None, title: str = "", annotate: bool = True):
    """A correlation matrix (L, L) as a diverging heat map on [-1, 1], values written in.

    Returns the ``AxesImage``.
    """
    ax = get_ax(ax)
    c = to_float(corr, "corr")
    im = ax.imshow(c, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label="correlation")
    n = c.shape[0]
    names = [f"z[{i}]" for i in range(n)] if labels is None else list(labels)
    ax.set_xticks(range(n), names, rotation=90, fontsize="x-small")
    ax.set_yticks(range(n), names, fontsize="x-small")
    ax.grid(False)
    if annotate:
        for i in range(n):
            for j in range(n):
                if i != j:
                    ax.text(j, i, f"{c[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(c[i, j]) > 0.6 else "black")
    if title:
        ax.set_title(title)
    return im
