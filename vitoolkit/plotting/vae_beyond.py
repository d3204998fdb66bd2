"""Figures for "beyond the plain VAE": latent usage, bounds, gaps, factors, image grids.

Each function takes numbers already computed (by :mod:`vitoolkit.vae.diagnostics`,
:mod:`vitoolkit.vae.latent` or the model's bounds), draws on ``ax`` (the current
axes when None) and returns what it drew. Titles are passed in by the caller, so
that they can state the finding of the run.
"""

from __future__ import annotations

import numpy as np

from .images import plot_image_grid, square_shape
from .style import color, get_ax, to_float

__all__ = [
    "plot_active_units",
    "plot_bound_gaps",
    "plot_bounds_vs_samples",
    "plot_curves",
    "plot_factor_matrix",
    "plot_gaps",
    "plot_image_grid",
    "plot_khat",
    "plot_kl_per_dimension",
    "square_shape",
]


def _legend(ax, loc: str | None):
    """A legend at ``loc``; "outside" puts it right of the axes, "below" under them, None: none."""
    if loc is None:
        return None
    if loc == "outside":
        return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                         fontsize="small")
    if loc == "below":
        return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), borderaxespad=0.0,
                         fontsize="small")
    return ax.legend(loc=loc, fontsize="small")


def plot_kl_per_dimension(kl_per_dim: dict, *, threshold: float | None = None, ax=None,
                          title: str = "Rate per latent unit, largest first",
                          legend_loc: str | None = "outside"):
    """Average KL(q(z_d|x) || p(z_d)) of each unit, sorted, one line per model.

    Parameters
    ----------
    kl_per_dim : dict of name -> array-like of shape (latent_dim,), nats
    threshold : float, optional
        Drawn as a horizontal line (e.g. a free-bits floor).
    ax : matplotlib Axes, optional
    title : str
    legend_loc : str or None
        A matplotlib location, ``"outside"`` (right of the axes, the default: the
        lines fill the axes), ``"below"``, or None for no legend.

    Returns
    -------
    list of Line2D, one per model.
    """
    ax = get_ax(ax)
    lines = []
    for i, (name, values) in enumerate(kl_per_dim.items()):
        v = np.sort(to_float(values, f"kl_per_dim[{name!r}]"))[::-1]
        (line,) = ax.plot(np.arange(1, len(v) + 1), np.maximum(v, 1e-4), marker="o", ms=4,
                          color=color(i), label=name)
        lines.append(line)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls=":", lw=1, label=f"{threshold:g} nats")
    ax.set_yscale("log")
    ax.set_xlabel("latent unit (sorted by KL)")
    ax.set_ylabel("mean KL per unit (nats, floored at 1e-4)")
    ax.set_title(title)
    _legend(ax, legend_loc)
    return lines


def plot_active_units(counts: dict, *, latent_dim: int | None = None, ax=None,
                      xlabel: str = "training setting",
                      title: str = "Active units (Burda et al. 2015)"):
    """Bars of active-unit counts per model.

    Parameters
    ----------
    counts : dict of name -> int
    latent_dim : int, optional
        Drawn as a dashed line (all units active).
    ax : matplotlib Axes, optional
    title : str

    Returns
    -------
    BarContainer
    """
    ax = get_ax(ax)
    names = list(counts)
    pos = np.arange(len(names))
    bars = ax.bar(pos, [counts[k] for k in names], color=[color(i) for i in range(len(names))])
    for p, k in zip(pos, names, strict=True):
        ax.text(p, counts[k], str(counts[k]), ha="center", va="bottom", fontsize="small")
    if latent_dim is not None:
        ax.axhline(latent_dim, color="k", ls="--", lw=1)
    ax.set_xticks(pos, names, rotation=25, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("active units (Cov_x E[z_d] > 0.01)")
    ax.set_title(title)
    return bars


def plot_curves(curves: dict, *, ax=None, xlabel: str = "epoch", ylabel: str = "",
                title: str = "", legend_loc: str | None = "outside"):
    """One line per named sequence (e.g. active units or KL per epoch).

    Parameters
    ----------
    curves : dict of name -> array-like of shape (n_points,)
    legend_loc : str or None
        As in :func:`plot_kl_per_dimension` (drawn only for two or more curves).

    Returns
    -------
    list of Line2D
    """
    ax = get_ax(ax)
    lines = []
    for i, (name, values) in enumerate(curves.items()):
        v = to_float(values, f"curves[{name!r}]")
        (line,) = ax.plot(np.arange(1, len(v) + 1), v, color=color(i), label=name)
        lines.append(line)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(curves) > 1:
        _legend(ax, legend_loc)
    return lines


def plot_bounds_vs_samples(ks, bounds: dict, *, log_likelihood: dict | None = None,
                           stderr: dict | None = None, log_likelihood_stderr: dict | None = None,
                           ax=None, title: str = "ELBO <= IWAE_k <= log p(x)",
                           legend_loc: str | None = "best"):
    """Mean IWAE bound against k (log axis), one line per model, with log p(x) levels.

    Parameters
    ----------
    ks : array-like of shape (m,)
        Numbers of importance samples; k = 1 is the ELBO.
    bounds : dict of name -> array-like of shape (m,), mean L_k in nats
    log_likelihood : dict of name -> float, optional
        The importance-sampled log p(x) of each model, drawn dashed in its colour.
    stderr : dict of name -> array-like of shape (m,), optional
        Standard errors of ``bounds``, drawn as +-2 standard-error bars.
    log_likelihood_stderr : dict of name -> float, optional
        Standard error of each log p(x), drawn as a +-2 standard-error band.
    legend_loc : str or None
        As in :func:`plot_kl_per_dimension`.

    Returns
    -------
    list of Line2D
    """
    ax = get_ax(ax)
    ks = to_float(ks, "ks")
    lines = []
    for i, (name, values) in enumerate(bounds.items()):
        err = (None if stderr is None or name not in stderr
               else 2 * to_float(stderr[name], f"stderr[{name!r}]"))
        cont = ax.errorbar(ks, to_float(values, f"bounds[{name!r}]"), yerr=err, marker="o", color=color(i),
                           capsize=3, label=f"{name}: L_k (+-2 s.e.)" if err is not None
                           else f"{name}: L_k")
        lines.append(cont.lines[0])
        if log_likelihood is not None and name in log_likelihood:
            level = float(log_likelihood[name])
            ax.axhline(level, color=color(i), ls="--", lw=1, label=f"{name}: log p(x)")
            if log_likelihood_stderr is not None and name in log_likelihood_stderr:
                half = 2 * float(log_likelihood_stderr[name])
                ax.axhspan(level - half, level + half, color=color(i), alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("importance samples k")
    ax.set_ylabel("mean bound on test data (nats)")
    ax.set_title(title)
    _legend(ax, legend_loc)
    return lines


def plot_bound_gaps(ks, gaps: dict, *, stderr: dict | None = None, ax=None,
                    title: str = "log p(x) - L_k shrinks as k grows",
                    legend_loc: str | None = "best"):
    """The gap log p(x) - L_k against k, both axes logarithmic, one line per model.

    On a common axis the bounds of two models differ by nats while the last steps
    in k change hundredths; the gap on a log scale shows both.

    Parameters
    ----------
    ks : array-like of shape (m,)
    gaps : dict of name -> array-like of shape (m,), positive, nats
    stderr : dict of name -> array-like of shape (m,), optional
        Drawn as +-2 standard-error bars (clipped at the axis floor).

    Returns
    -------
    list of Line2D
    """
    ax = get_ax(ax)
    ks = to_float(ks, "ks")
    lines = []
    for i, (name, values) in enumerate(gaps.items()):
        v = to_float(values, f"gaps[{name!r}]")
        err = None
        if stderr is not None and name in stderr:
            e = 2 * to_float(stderr[name], f"stderr[{name!r}]")
            err = np.vstack([np.minimum(e, 0.9 * v), e])  # a log axis cannot go below 0
        cont = ax.errorbar(ks, v, yerr=err, marker="o", color=color(i), capsize=3, label=name)
        lines.append(cont.lines[0])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("importance samples k")
    ax.set_ylabel("log p(x) - L_k (nats, mean over test data)")
    ax.set_title(title)
    _legend(ax, legend_loc)
    return lines


def plot_khat(khats: dict, *, threshold: float = 0.7, ax=None,
              title: str = "Pareto k-hat of the importance weights, per example",
              legend_loc: str | None = "best"):
    """Each example's Pareto k-hat, sorted, one line per model, with the 0.7 threshold.

    Parameters
    ----------
    khats : dict of name -> array-like of shape (n,)
        Per-example k-hat (Vehtari et al. 2024); NaN values are dropped.
    threshold : float
        Drawn as a horizontal line: above it an estimate cannot be trusted.

    Returns
    -------
    list of Line2D
    """
    ax = get_ax(ax)
    lines = []
    for i, (name, values) in enumerate(khats.items()):
        v = np.sort(to_float(values, f"khats[{name!r}]"))
        v = v[np.isfinite(v)]
        frac = (np.arange(1, len(v) + 1) - 0.5) / max(len(v), 1)
        (line,) = ax.plot(frac, v, color=color(i), label=name)
        lines.append(line)
    ax.axhline(threshold, color="k", ls=":", lw=1, label=f"k-hat = {threshold:g}")
    ax.set_xlabel("fraction of examples (sorted by k-hat)")
    ax.set_ylabel("Pareto k-hat")
    ax.set_title(title)
    _legend(ax, legend_loc)
    return lines


def plot_gaps(gaps: dict, *, ax=None, xlabel: str = "data",
              title: str = "Inference gap = approximation + amortisation",
              legend_loc: str | None = "below"):
    """Stacked bars of the approximation and amortisation gaps (Cremer et al. 2018, Fig. 2).

    Parameters
    ----------
    gaps : dict of name -> (approximation_gap, amortisation_gap), mean nats
    legend_loc : str or None
        As in :func:`plot_kl_per_dimension`; by default below the axes, because
        the bars fill them.

    Returns
    -------
    dict with the two BarContainers.
    """
    ax = get_ax(ax)
    names = list(gaps)
    pos = np.arange(len(names))
    approx = np.array([float(gaps[k][0]) for k in names])
    amort = np.array([float(gaps[k][1]) for k in names])
    b1 = ax.bar(pos, approx, color=color(0), label="approximation gap  log p(x) - L[q*]")
    b2 = ax.bar(pos, amort, bottom=approx, color=color(1),
                label="amortisation gap  L[q*] - L[q]")
    ax.set_xticks(pos, names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("nats per example")
    ax.set_title(title)
    _legend(ax, legend_loc)
    return {"approximation": b1, "amortisation": b2}


def plot_factor_matrix(matrix, *, unit_labels=None, factor_names=None, ax=None,
                       title: str = "Mutual information: latent units x factors",
                       colorbar_label: str = "I(z_j; v_k) (nats)"):
    """Heatmap of a (latent_dim, num_factors) score matrix, values annotated.

    Returns
    -------
    AxesImage
    """
    ax = get_ax(ax)
    m = to_float(matrix, "matrix")
    im = ax.imshow(m, cmap="viridis", aspect="auto", vmin=0.0)
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize="x-small",
                color="white" if v < 0.6 * m.max() else "black")
    ax.set_xticks(range(m.shape[1]), factor_names or [f"v{k}" for k in range(m.shape[1])])
    ax.set_yticks(range(m.shape[0]), unit_labels or [f"z{j}" for j in range(m.shape[0])])
    ax.set_xlabel("generating factor")
    ax.set_ylabel("latent unit")
    ax.grid(False)
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, label=colorbar_label)
    return im
