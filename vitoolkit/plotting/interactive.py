"""Interactive figures (Plotly) that need no server and no network.

Like the rest of :mod:`vitoolkit.plotting`, these functions only draw numbers the
topic modules computed; they return a ``plotly.graph_objects.Figure``. Save one
with ``Tutorial.save_interactive(fig, name)``, which writes a self-contained HTML
file (plotly.js embedded, so it opens from ``file://``) and shows the figure
inline in a notebook and in the course book (whose pages share one copy of plotly.js).

Each figure keeps its axis ranges fixed across its slider's steps (so a step that
changes the fit does not seem to change the target), places its legend outside the
plotting area, and scales to the width of the page.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..validation import as_float_array, check_real
from .style import PALETTE

__all__ = ["alpha_dial", "elbo_explorer"]

#: Layout shared by the figures: the width follows the page (no fixed width), margins small
#: enough for a phone, the legend in a row above the plotting area (never over the data).
_LAYOUT = {"template": "plotly_white", "autosize": True,
           "margin": {"l": 55, "r": 20, "t": 105, "b": 40},
           "legend": {"orientation": "h", "x": 0.0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"}}


def _range(values, pad: float = 0.05, floor: float | None = None) -> list[float]:
    """``[lo, hi]`` spanning the finite ``values`` with ``pad`` of the span on each side."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    lo, hi = lo - pad * span, hi + pad * span
    return [max(lo, floor) if floor is not None else lo, hi]


def _go():
    import plotly.graph_objects as go

    return go


def alpha_dial(x, target_density, alphas: Sequence[float], fitted_densities, *,
               locs=None, scales=None, title: str = "The alpha dial") -> object:
    """A slider over alpha showing the Gaussian fitted at each alpha against the target.

    Parameters
    ----------
    x : array-like of shape (n,)
        Grid on which the densities were evaluated.
    target_density : array-like of shape (n,)
        The target p(x) on the grid.
    alphas : sequence of float, length m
        The alpha of each fit (Minka's convention: alpha -> 0 is KL(q||p), 1 is KL(p||q)).
    fitted_densities : array-like of shape (m, n)
        q_alpha(x) of each fit on the grid.
    locs, scales : array-like of shape (m,), optional
        The fitted mean and standard deviation, shown in each step's legend entry.
    """
    go = _go()
    x = as_float_array(x, "x", ndim=1)
    target = as_float_array(target_density, "target_density", ndim=1)
    fitted = np.atleast_2d(as_float_array(fitted_densities, "fitted_densities", ndim=(1, 2)))
    alphas = [float(a) for a in as_float_array(alphas, "alphas", ndim=1)]
    if locs is not None:
        locs = as_float_array(locs, "locs", ndim=1)
    if scales is not None:
        scales = as_float_array(scales, "scales", ndim=1)
    for name, values in (("locs", locs), ("scales", scales)):
        if values is not None and values.size != len(alphas):
            raise ValueError(f"alpha_dial: {name} must have shape ({len(alphas)},) like alphas, "
                             f"got {values.shape}")
    if fitted.shape != (len(alphas), x.size) or target.shape != x.shape:
        raise ValueError(f"alpha_dial: fitted_densities must have shape ({len(alphas)}, {x.size}) "
                         f"and target_density shape ({x.size},); got {fitted.shape} and {target.shape}")

    def label(i: int) -> str:
        text = f"alpha = {alphas[i]:g}"
        if locs is not None and scales is not None:
            text += f": q = N({locs[i]:.2f}, {scales[i]:.2f}^2)"
        return text


    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=target, name="target p(x)", mode="lines",
                             line={"color": "black", "width": 2}))
    for i in range(len(alphas)):
        fig.add_trace(go.Scatter(x=x, y=fitted[i], name=label(i), mode="lines", visible=(i == 0),
                                 line={"color": PALETTE[0], "width": 3}))
    steps = []
    for i in range(len(alphas)):
        visible = [True] + [j == i for j in range(len(alphas))]
        steps.append({"method": "update", "label": f"{alphas[i]:g}",
                      "args": [{"visible": visible}, {"title.text": title}]})
    fig.update_layout(
        # the step's fit is named in the legend (above the plot) and the slider's readout
        title={"text": title, "x": 0.0, "xanchor": "left"},
        # fixed ranges: every step is drawn on the same axes as the target
        xaxis={"title": {"text": "x"}, "range": [float(x.min()), float(x.max())], "autorange": False},
        yaxis={"title": {"text": "density"}, "autorange": False,
               "range": _range(np.concatenate([target, fitted.ravel()]), floor=0.0)},
        sliders=[{"active": 0, "currentvalue": {"prefix": "alpha = "}, "steps": steps,
                  "pad": {"t": 40}}],
        height=500, **_LAYOUT,
    )
    return fig


def elbo_explorer(means, log_scales, elbo, kl, path_means, path_log_scales, path_elbo, path_kl,
                  log_evidence: float, *, title: str = "q over the ELBO surface") -> object:
    """A slider moving q over the ELBO surface, reading out ELBO, KL and their sum.

    Parameters
    ----------
    means : array-like of shape (a,)
        Grid of q's means (the surface's x axis).
    log_scales : array-like of shape (b,)
        Grid of q's log standard deviations (the y axis).
    elbo, kl : array-like of shape (b, a)
        ELBO(q) and KL(q || p(z|x)) on the grid (``meshgrid(..., indexing="xy")``).
    path_means, path_log_scales, path_elbo, path_kl : array-like of shape (s,)
        The q's the slider visits and their ELBO and KL.
    log_evidence : float
        log p(x); each step shows ELBO + KL against it.
    """
    go = _go()
    means = as_float_array(means, "means", ndim=1)
    log_scales = as_float_array(log_scales, "log_scales", ndim=1)
    # the surface may reach -inf in its far tails; it is clipped below for drawing
    elbo = as_float_array(elbo, "elbo", ndim=2, finite=False)
    kl = as_float_array(kl, "kl", ndim=2, finite=False)
    pm = as_float_array(path_means, "path_means", ndim=1)
    ps = as_float_array(path_log_scales, "path_log_scales", ndim=1)
    pe = as_float_array(path_elbo, "path_elbo", ndim=1)
    pk = as_float_array(path_kl, "path_kl", ndim=1)
    log_evidence = check_real(log_evidence, "log_evidence")
    if elbo.shape != (log_scales.size, means.size) or kl.shape != elbo.shape:
        raise ValueError(f"elbo_explorer: elbo and kl must have shape ({log_scales.size}, {means.size}),"
                         f" got {elbo.shape} and {kl.shape}")
    if not (pm.shape == ps.shape == pe.shape == pk.shape) or pm.ndim != 1 or pm.size == 0:
        raise ValueError("elbo_explorer: the path arrays must be 1-D and of equal, non-zero length")

    def readout(i: int) -> str:
        # three short lines: one long line is cut off on a phone
        return (f"{title}<br><span style='font-size:12px'>ELBO = {pe[i]:.3f}, KL(q || p(z|x)) = "
                f"{pk[i]:.3f},<br>ELBO + KL = {pe[i] + pk[i]:.3f} (log p(x) = {log_evidence:.3f})</span>")

    floor = np.nanmax(elbo) - 40.0  # the interesting range; the far tails go to -inf
    fig = go.Figure()
    fig.add_trace(go.Contour(x=means, y=log_scales, z=np.maximum(elbo, floor), colorscale="Viridis",
                             colorbar={"title": "ELBO"}, contours={"coloring": "heatmap"},
                             name="ELBO(q)"))
    fig.add_trace(go.Scatter(x=pm, y=ps, mode="lines", name="path of q",
                             line={"color": "white", "dash": "dot"}))
    for i in range(pm.size):
        fig.add_trace(go.Scatter(x=[pm[i]], y=[ps[i]], mode="markers", visible=(i == 0),
                                 marker={"size": 14, "color": PALETTE[1], "line": {"color": "white"}},
                                 name=f"q: m = {pm[i]:.2f}, log sigma = {ps[i]:.2f}"))
    steps = []
    for i in range(pm.size):
        visible = [True, True] + [j == i for j in range(pm.size)]
        steps.append({"method": "update", "label": str(i),
                      "args": [{"visible": visible}, {"title.text": readout(i)}]})
    layout = dict(_LAYOUT, margin={"l": 55, "r": 20, "t": 110, "b": 40})
    fig.update_layout(
        title={"text": readout(0), "font": {"size": 14}, "x": 0.0, "xanchor": "left"},
        # fixed ranges: the surface's grid, whatever step is shown
        xaxis={"title": {"text": "mean m of q"}, "autorange": False,
               "range": _range(np.concatenate([means, pm]), pad=0.0)},
        yaxis={"title": {"text": "log sigma of q"}, "autorange": False,
               "range": _range(np.concatenate([log_scales, ps]), pad=0.0)},
        sliders=[{"active": 0, "currentvalue": {"prefix": "step "}, "steps": steps, "pad": {"t": 40}}],
        height=580, showlegend=False, **layout,
    )
    return fig
