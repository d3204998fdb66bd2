"""Figures of lesson 10 (richer variational families and the Pareto k-hat verdict).

Pure drawing: each function takes ``ax`` (or creates one) and the numbers to draw.
"""

from __future__ import annotations

import numpy as np

from .discrete import plot_grouped_bars
from .style import color, get_ax

__all__ = ["plot_density", "plot_khat_bars", "plot_std_ratios"]


def _np(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def plot_density(x, y, density, *, ax=None, reference: bool = False, title: str = "",
                 xlabel: str = "$x_1$", ylabel: str = "$x_2$", levels: int = 12):
    """Filled contours of a 2-D density on a grid (grey for the target, blue for a fit).

    Parameters
    ----------
    x, y : arrays of shape (n, m), the grid (``meshgrid(..., indexing="xy")``)
    density : array of shape (n, m)

    Returns
    -------
    The ``QuadContourSet``.
    """
    ax = get_ax(ax)
    cs = ax.contourf(_np(x), _np(y), _np(density), levels=levels,
                     cmap="Greys" if reference else "Blues")
    ax.set_title(title, fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return cs


def plot_khat_bars(khat: dict, *, threshold: float = 0.7, ax=None, title: str = ""):
    """Grouped bars of k-hat per target (groups) and family (bars), with the threshold line.

    Parameters
    ----------
    khat : dict of family -> dict of target -> k-hat (every family the same targets)

    Returns
    -------
    list of BarContainers, one per family.
    """
    ax = get_ax(ax)
    families = list(khat)
    targets = list(khat[families[0]])
    by_target = {t: {fam: khat[fam][t] for fam in families} for t in targets}
    bars = plot_grouped_bars(by_target, ax=ax, log=False, legend=False,
                             ylabel=r"Pareto $\hat k$ of $p/q$ under $q$", title=title)
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"{threshold}: unreliable above")
    ax.tick_params(axis="x", labelsize="small")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(families) + 1,
              fontsize="small")
    return bars


def plot_std_ratios(ratios: dict, labels, *, ax=None, title: str = ""):
    """Posterior std / exact std per parameter: q's own (circles) and PSIS-corrected (crosses).

    Parameters
    ----------
    ratios : dict of family -> (q ratios (P,), PSIS ratios (P,))
    labels : list of P parameter names

    Returns
    -------
    list of the drawn lines.
    """
    ax = get_ax(ax)
    pos = np.arange(len(labels))
    lines = []
    for j, (fam, (own, psis)) in enumerate(ratios.items()):
        lines += ax.plot(pos, _np(own), "o-", color=color(j), label=f"{fam}: q")
        lines += ax.plot(pos, _np(psis), "x:", color=color(j), label=f"{fam}: PSIS")
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xticks(pos, labels, rotation=45)
    ax.set_ylabel("posterior std / exact std")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize="x-small")
    ax.set_title(title)
    return lines
